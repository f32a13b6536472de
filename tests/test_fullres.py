"""spiritnet_tf.fullres: the edges rule (zoom that keeps every sample inside the photo),
resampling, and the mask under zoom."""

import numpy as np
import pytest
import tensorflow as tf

from spiritnet_tf import fullres

H, W = 24, 36  # working grid of the flow fixtures


def _radial(strength):
    """Composed flows [1, 2, H, W, 2] whose samples point out of the picture everywhere:
    G(x) = strength * (x - centre), frame 2 twice frame 1 (working-size pixels)."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    field = np.stack([x - (W - 1) / 2, y - (H - 1) / 2], -1) * strength
    return np.stack([field, 2 * field])[None]


def _constant(dx, dy):
    return np.broadcast_to(np.float32([dx, dy]), (1, 3, H, W, 2)).copy()


def _sample_positions(composed, size, zoom, scale):
    """Every sample position [N, H', W', 2] of every frame (frame 0 included)."""
    height, width = size
    grid = np.stack(np.meshgrid(np.arange(width), np.arange(height)), -1).astype(np.float32)
    flows = [fullres.sample_flow(None, size, zoom, scale)]
    flows += [fullres.sample_flow(composed[:, t], size, zoom, scale) for t in range(composed.shape[1])]
    return np.stack([f.numpy()[0] for f in flows]) + grid


def _inside(points, size):
    return ((points[..., 0] >= 0) & (points[..., 0] <= size[1] - 1)
            & (points[..., 1] >= 0) & (points[..., 1] <= size[0] - 1))


@pytest.mark.parametrize("size", [(H, W), (4 * H, 4 * W)], ids=["working-size", "full-resolution"])
@pytest.mark.parametrize("case", ["outward", "sideways", "beyond-max-zoom"])
def test_zoom_keeps_every_sample_inside_and_is_the_smallest(size, case):
    composed = {"outward": _radial(0.03), "sideways": _constant(1.5, -0.5),
                "beyond-max-zoom": _constant(8.0, 0.0)}[case]
    zoom, scale = fullres.fit_zoom(composed, size, max_zoom=1.15)
    zoom_f, scale_f = float(zoom[0]), float(scale[0])
    assert _inside(_sample_positions(composed, size, zoom, scale), size).all()
    # "extend" (no crop) would show content from outside the photo in every case.
    ones = tf.ones([1])
    assert not _inside(_sample_positions(composed, size, ones, ones), size).all()
    if case == "beyond-max-zoom":  # needs more than 1.15: the motion is scaled down to fit
        assert zoom_f == pytest.approx(1.15) and 0.2 < scale_f < 1.0
        more = tf.constant([scale_f * 1.01])
        assert not _inside(_sample_positions(composed, size, zoom, more), size).all()
    else:  # the smallest zoom that fits: a little less does not
        assert 1.0 < zoom_f < 1.15 and scale_f == 1.0
        less = tf.constant([1.0 + (zoom_f - 1.0) * 0.99])
        assert not _inside(_sample_positions(composed, size, less, scale), size).all()


def _fit_zoom_reference(composed, size, max_zoom):
    """`fit_zoom` as it was before `_FitCheck`: both bisections, every question asked of
    `_fits` (which resamples all the samples each time)."""
    composed = tf.convert_to_tensor(composed, tf.float32)
    ones = tf.ones(tf.shape(composed)[:1])
    top = max_zoom * ones

    def bisect(fits, lo, hi):
        for _ in range(fullres._SEARCH_STEPS):
            mid = (lo + hi) / 2
            ok = fits(mid)
            lo, hi = tf.where(ok, lo, mid), tf.where(ok, mid, hi)
        return hi

    zoom = bisect(lambda s: fullres._fits(composed, size, s, ones), ones, top)
    zoom = tf.where(fullres._fits(composed, size, ones, ones), ones, zoom)
    need_less = ~fullres._fits(composed, size, top, ones)
    shrink = bisect(lambda d: fullres._fits(composed, size, top, 1.0 - d), tf.zeros_like(ones), ones)
    return tf.where(need_less, top, zoom), tf.where(need_less, 1.0 - shrink, ones)


@pytest.mark.parametrize("seed", range(4))
def test_fit_check_answers_as_fits_and_fit_zoom_as_before(seed):
    """`_FitCheck` (the resampling shared by the bisections' questions) answers every
    question exactly as `_fits`, K candidates at once as each alone, and fit_zoom (whose
    bisections ask 127 or 3 candidates a call) gives bit for bit what one question at a
    time to `_fits` gave."""
    rng = np.random.default_rng(seed)
    steps, h, w = int(rng.integers(1, 4)), int(rng.integers(20, 50)), int(rng.integers(20, 50))
    size = (int(h * rng.uniform(0.8, 4)), int(w * rng.uniform(0.8, 4)))
    composed = tf.constant(rng.normal(0, rng.uniform(0.3, 3), (1, steps, h, w, 2)), tf.float32)
    check = fullres._FitCheck(composed, size)
    for zoom in np.concatenate([[1.0, 1.15], rng.uniform(1.0, 1.4, 12)]):
        zoom = tf.constant([zoom], tf.float32)
        for m in (None, 1.0, 0.6, float(rng.uniform())):
            scale = tf.constant([1.0 if m is None else m], tf.float32)
            expected = fullres._fits(composed, size, zoom, scale).numpy()
            assert check(zoom, None if m is None else scale).numpy().tolist() == expected.tolist()
    # K candidates in one call ([1, K], as the bisections ask them): each answered as alone.
    zooms = tf.constant(rng.uniform(1.0, 1.4, (1, 9)), tf.float32)
    scales = tf.constant(rng.uniform(0.0, 1.0, (1, 9)), tf.float32)
    for m in (None, scales):
        together = check(zooms, m).numpy()[0].tolist()
        alone = [bool(check(zooms[:, k], None if m is None else m[:, k])[0]) for k in range(9)]
        assert together == alone
    # Many motion scales at one zoom (`_FitCheck.motion`, what the motion search asks).
    at_zoom = check.motion(zooms[:, 0])
    alone = [bool(check(zooms[:, 0], scales[:, k])[0]) for k in range(9)]
    assert at_zoom(scales).numpy()[0].tolist() == alone
    for max_zoom in (1.15, 1.5):
        got = fullres.fit_zoom(composed, size, max_zoom)
        want = _fit_zoom_reference(composed, size, max_zoom)
        assert [float(v[0]) for v in got] == [float(v[0]) for v in want]


def test_fit_zoom_of_a_batch_is_each_item_alone():
    rng = np.random.default_rng(5)
    composed = rng.normal(0, 2, (2, 3, 30, 40, 2)).astype(np.float32)
    together = [v.numpy().tolist() for v in fullres.fit_zoom(composed, (90, 120))]
    alone = [[float(v[0]) for v in fullres.fit_zoom(composed[i:i + 1], (90, 120))] for i in range(2)]
    assert together == [[alone[0][0], alone[1][0]], [alone[0][1], alone[1][1]]]


def test_zoom_one_for_flows_that_stay_inside_and_reverse_option():
    inward = -_radial(0.03)  # samples move towards the centre: nothing to crop
    zoom, scale = fullres.fit_zoom(inward, (H, W))
    assert float(zoom[0]) == 1.0 and float(scale[0]) == 1.0
    zoom, _ = fullres.fit_zoom(inward, (H, W), reverse=True)  # a seamless loop also warps back
    assert float(zoom[0]) > 1.0


def test_resample_is_bilinear_resize_without_zoom_and_crops_with_it():
    rng = np.random.default_rng(0)
    field = rng.random((2, 9, 13, 3)).astype(np.float32)
    ours = fullres.resample(field, (27, 20)).numpy()
    np.testing.assert_allclose(ours, tf.image.resize(field, (27, 20), "bilinear").numpy(), atol=1e-6)
    # A zoom of 2 on an image of its own size shows its centre half, stretched.
    ramp = np.tile(np.arange(41, dtype=np.float32)[None, None, :, None], (1, 5, 1, 1))
    zoomed = fullres.resample(ramp, (5, 41), tf.constant([2.0])).numpy()[0, 0, :, 0]
    np.testing.assert_allclose(zoomed, 10 + np.arange(41) / 2, atol=1e-5)
    box = fullres.crop_box(tf.constant([2.0]), (5, 41)).numpy()[0]
    np.testing.assert_allclose(box, [1.25, 10.25, 2.5, 20.5])


def test_frame_zero_is_the_zoomed_photo_and_frames_are_graph_friendly():
    rng = np.random.default_rng(1)
    photo = rng.random((1, 2 * H, 2 * W, 3)).astype(np.float32)
    small = tf.image.resize(photo, (H, W), "area")
    flows = _constant(0.5, 0.0)  # per-step flows; composed 0.5, 1, 1.5
    model_frames = tf.repeat(small[:, None], 3, axis=1)
    synthesis = tf.zeros_like(model_frames)
    out = tf.function(fullres.frames)(photo, small, model_frames, flows, synthesis, edges="zoom")
    zoom = out["crop"].numpy()[0]
    assert zoom[3] < 2 * W  # cropped horizontally (motion to the left needs it)
    first = fullres.frame(photo, None, None, tf.constant([2 * W / zoom[3]]), tf.ones([1]),
                          sharp=True).numpy()
    expected = np.round(np.clip(first, 0, 1) * 255)
    assert np.abs(out["first_frame"].numpy().astype(float) - expected).max() <= 1
    extend = fullres.frames(photo, small, model_frames, flows, synthesis, edges="extend")
    np.testing.assert_array_equal(extend["first_frame"].numpy(), np.round(photo * 255).astype(np.uint8))
    np.testing.assert_allclose(extend["crop"].numpy()[0], [0, 0, 2 * H, 2 * W])


def test_mask_freezes_its_pixels_under_zoom():
    from spiritnet_tf.animation import Animation

    rng = np.random.default_rng(2)
    photo = rng.random((2 * H, 2 * W, 3)).astype(np.float32)
    small = tf.image.resize(photo[None], (H, W), "area").numpy()
    flows = np.broadcast_to(np.float32([0.8, 0.3]), (3, H, W, 2)).copy()
    mask = np.zeros((2 * H, 2 * W, 1), np.float32)
    mask[:, : W] = 1.0  # left half static
    flows[:, :, : W // 2] = 0.0  # the model keeps static pixels still
    working = np.concatenate([small, np.repeat(small, 3, axis=0)])
    anim = Animation(photo, working, flows, np.ones((H, W, 1), np.float32), mask=mask)
    assert anim.zoom > 1.0 and anim.edges == "zoom"
    frames = anim.frames
    static = fullres.resample(mask[None], (2 * H, 2 * W), tf.constant([anim.zoom])).numpy()[0, ..., 0] > 0.5
    assert 0.3 < static.mean() < 0.7
    for frame in frames[1:]:
        np.testing.assert_array_equal(frame[static], frames[0][static])
    assert np.abs(frames[-1][~static].astype(int) - frames[0][~static]).mean() > 1


def test_bad_edges_and_max_zoom_are_refused():
    from spiritnet_tf.config import check_edges

    with pytest.raises(ValueError, match="unknown edges mode 'crop'.*--edges"):
        check_edges("crop")
    with pytest.raises(ValueError, match="max_zoom.*>= 1"):
        check_edges("zoom", 0.9)


def test_clamp_rule_at_full_resolution_shows_the_edge_and_gives_back_the_model_frames():
    """A model with ``warp_outside="clamp"``: with "extend" edges the full-size frames show
    the photo's edge where samples fall outside (not the pixel itself), and at the working
    size the formula still gives back the model's frames exactly."""
    from spiritnet_tf.ops.flow import bilinear_warp, clamp_to_frame

    rng = np.random.default_rng(3)
    photo = rng.random((1, 2 * H, 2 * W, 3)).astype(np.float32)
    composed = tf.constant(_constant(3.0, 0.0)[:, 0])  # 6 px at full size, to the right
    one = tf.ones([1])
    for rows in (None, (5, 17)):
        flow = fullres.sample_flow(composed, (2 * H, 2 * W), one, one, rows, clamp=True).numpy()
        x = flow[..., 0] + np.arange(2 * W)
        assert x.max() == pytest.approx(2 * W - 1) and x.min() >= 0
    out = fullres.frame(photo, composed, None, one, one, sharp=False, clamp=True).numpy()
    np.testing.assert_allclose(out[0, :, -5:], np.repeat(photo[0, :, -1:], 5, 1), atol=1e-5)
    copy = fullres.frame(photo, composed, None, one, one, sharp=False).numpy()
    np.testing.assert_allclose(copy[0, :, -5:], photo[0, :, -5:], atol=1e-5)
    np.testing.assert_allclose(out[0, :, :-7], copy[0, :, :-7], atol=1e-5)
    # Working size, no zoom: the model's frames come back (frames 1-3 of constant 3 px flows).
    small = photo[:, ::2, ::2]
    flows = _constant(3.0, 0.0)
    model_frames = bilinear_warp(tf.repeat(small[:, None], 3, 1),
                                 clamp_to_frame(tf.constant(np.cumsum(flows, 1))))
    model_frames += 0.01 * rng.random(model_frames.shape).astype(np.float32)
    residuals = fullres.model_residuals(small, model_frames, tf.constant(np.cumsum(flows, 1)), clamp=True)
    back = fullres.frame(small, tf.constant(np.cumsum(flows, 1))[:, 2], residuals[:, 2], one, one,
                         sharp=False, clamp=True)
    np.testing.assert_allclose(back, model_frames[:, 2], atol=1e-5)


@pytest.mark.parametrize("loop", ["none", "boomerang", "seamless"])
def test_small_photos_frame_inputs_made_in_chunks_give_the_same_frames(monkeypatch, loop):
    """`Animation` makes a small photo's frame inputs for a chunk of frames at once
    (`_small_frame_inputs`); every frame, in every loop's order (chunks of 2 of 5 frames,
    so their edges and the way back are crossed), equals the frame made one at a time."""
    from spiritnet_tf import animation
    from spiritnet_tf.animation import Animation

    rng = np.random.default_rng(4)
    photo = rng.random((2 * H, 2 * W, 3)).astype(np.float32)
    small = tf.image.resize(photo[None], (H, W), "area").numpy()
    flows = rng.normal(0.0, 0.6, (5, H, W, 2)).astype(np.float32)
    working = np.concatenate([small, rng.random((5, H, W, 3)).astype(np.float32)])
    residuals = rng.normal(0.0, 0.02, (5, H, W, 3)).astype(np.float32)
    monkeypatch.setattr(animation, "BAND_PIXELS", 2 * (2 * H) * (2 * W))  # 2 frames a chunk
    anim = Animation(photo, working, flows, np.ones((H, W, 1), np.float32), loop=loop,
                     residuals=residuals, warp_outside="clamp")
    chunked = [anim.frame(t) for t in anim.frame_order()]
    assert sorted(anim._input_chunks) == ([-1.0, 1.0] if loop == "seamless" else [1.0])

    def one_at_a_time(t, sign):
        return fullres.frame_inputs(sign * anim._composed[:, t - 1],
                                    None if sign < 0 else anim._residuals[:, t - 1],
                                    anim.size, anim._zoom, anim._scale, clamp=True)

    monkeypatch.setattr(anim, "_small_frame_inputs", one_at_a_time)
    for t, frame in zip(anim.frame_order(), chunked):
        np.testing.assert_array_equal(frame, anim.frame(t), err_msg=f"frame {t}")
