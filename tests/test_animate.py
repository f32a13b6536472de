"""spiritnet_tf.animate and `spiritnet animate`: frames, controls, loops, full resolution, inputs.

The weights are those of a randomly initialised small-preset model (no trained weights
are bundled yet). Such a model is a constant-velocity warp of DAFR's first flow
(test_model.py), so motion, direction, masks and depth are real, testable behaviour.
Small working sizes keep every model run to a few seconds.
"""

import glob
import os
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

import spiritnet_tf
from spiritnet_tf import animate as animate_api
from spiritnet_tf import animation, config
from spiritnet_tf.cli import main
from spiritnet_tf.io import load_image, to_uint8
from spiritnet_tf.limits import MAX_ANIMATION_FRAMES, MAX_REMAP_SIDE

from conftest import REPO

EXAMPLE = os.path.join(REPO, "examples", "coffee.jpg")
WS = 64  # working side of most runs: the example is 600x400, the model runs at 64x43


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    import keras

    from spiritnet_tf.model import SpiritNet

    keras.utils.set_random_seed(0)  # the same random weights in every run
    model = SpiritNet.from_preset("small")
    model.build()
    path = str(tmp_path_factory.mktemp("weights") / "random_small.weights.h5")
    model.save_weights(path)
    return path


@pytest.fixture(scope="module")
def model(weights):
    """The model the CLI loads from `weights` (loaded once: `load_model` caches it)."""
    from spiritnet_tf.animation import load_model

    return load_model(weights)


def _cli(*args):
    return main(["animate", *map(str, args)])


def _read_folder(folder):
    files = sorted(glob.glob(os.path.join(folder, "frame_*.png")))
    return np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])


def _mean_step(a, b):
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


# ----------------------------------------------------------------------------- CLI end to end


def test_cli_example_frames_flows_depth(weights, tmp_path):
    out = tmp_path / "coffee"
    status = _cli(EXAMPLE, "-o", out, "--frames", 3, "--working-side", 96, "--weights", weights,
                  "--save-flows", "--save-depth", "--edges", "extend")
    assert status == 0
    frames = _read_folder(out)
    photo = load_image(EXAMPLE)
    assert frames.shape == (4,) + photo.shape  # N + 1 frames at the input's size
    np.testing.assert_array_equal(frames[0], to_uint8(photo))  # the input first
    assert all(_mean_step(frames[t], frames[0]) > 1 for t in (1, 2, 3))  # it moves
    flows = np.load(tmp_path / "coffee_flows.npy")
    assert flows.shape == (3, 64, 96, 2)  # at the working size
    assert np.linalg.norm(flows, axis=-1).mean() >= 0.5  # px per frame at the working size
    assert len(_read_folder(tmp_path / "coffee_flows")) == 3
    z = np.load(tmp_path / "coffee_depth.npy")
    assert z.shape == (64, 96, 1) and z.min() >= 1e-3 and z.max() == pytest.approx(1.0)
    assert Image.open(tmp_path / "coffee_depth.png").size == (96, 64)


def test_cli_edges_match_animate(model, weights, tmp_path):
    """`--edges` gives the frames of `animate(edges=...)` (one implementation,
    `spiritnet_tf.fullres`); "zoom" crops (frame 0 included), "extend" does not."""
    for edges in ("zoom", "extend"):
        out = tmp_path / edges
        assert _cli(EXAMPLE, "-o", out, "--frames", 2, "--direction", 200, "--working-side", WS,
                    "--weights", weights, "--edges", edges) == 0
        anim = animate_api(EXAMPLE, 2, 0, weights=model, direction=200, working_side=WS, edges=edges)
        assert np.abs(_read_folder(out).astype(int) - anim.frames).max() <= 1
        assert (anim.zoom > 1.0) == (edges == "zoom")
        if edges == "zoom":
            top, left, height, width = anim.crop
            assert 0 < top and 0 < left and height < 400 and width < 600
            assert abs(width / height - 1.5) < 1e-3  # the photo's aspect ratio


def test_cli_seed_gives_identical_bytes_and_overwrite_rule(weights, tmp_path):
    common = ("--frames", 2, "--working-side", WS, "--weights", weights)
    a, b, c = tmp_path / "a.gif", tmp_path / "b.gif", tmp_path / "c.gif"
    assert _cli(EXAMPLE, "-o", a, "--seed", 5, *common) == 0
    assert _cli(EXAMPLE, "-o", b, "--seed", 5, *common) == 0
    assert _cli(EXAMPLE, "-o", c, "--seed", 6, *common) == 0
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    # An existing output is kept without --overwrite and replaced with it.
    before = a.read_bytes()
    assert _cli(EXAMPLE, "-o", a, "--seed", 6, *common) == 1
    assert a.read_bytes() == before
    assert _cli(EXAMPLE, "-o", a, "--seed", 6, "--overwrite", *common) == 0
    assert a.read_bytes() == c.read_bytes()


def test_cli_direction_zero_and_inverse_depth(weights, tmp_path):
    disparity = np.zeros((40, 60), np.uint8)
    disparity[:, 30:] = 250  # right half near (larger = nearer)
    disparity[:, :30] = 25
    Image.fromarray(disparity).save(tmp_path / "disparity.png")
    assert _cli(EXAMPLE, "-o", tmp_path / "d.gif", "--direction", 0, "--frames", 2,
                "--working-side", WS, "--weights", weights, "--save-flows", "--save-depth",
                "--inverse-depth", tmp_path / "disparity.png") == 0
    flows = np.load(tmp_path / "d_flows.npy")
    assert flows[..., 0].mean() < 0  # backward flow dx < 0: content moving right
    assert abs(flows[..., 0].mean()) > 3 * abs(flows[..., 1].mean())
    z = np.load(tmp_path / "d_depth.npy")
    w = z.shape[1]
    assert z[:, -1].min() == pytest.approx(1.0) and z[:, 0].max() == pytest.approx(0.1)
    speed = np.linalg.norm(flows[0], axis=-1)
    assert speed[:, w // 2 + 4:].mean() > 2 * speed[:, : w // 2 - 4].mean()  # near moves more


def test_direction_magnitude_controls(model):
    down = animate_api(EXAMPLE, 2, 0, weights=model, direction=90, working_side=WS)
    assert down.flows[..., 1].mean() < 0  # content moving down: backward dy < 0
    assert abs(down.flows[..., 1].mean()) > 3 * abs(down.flows[..., 0].mean())
    still = animate_api(EXAMPLE, 2, 0, weights=model, direction=90, magnitude=0.0, working_side=WS)
    assert np.abs(still.flows).max() < 1e-3 * np.abs(down.flows).max()


def test_cli_mask_keeps_masked_pixels_in_every_frame(weights, tmp_path):
    photo = load_image(EXAMPLE)
    mask = np.zeros(photo.shape[:2], np.uint8)
    mask[:, : photo.shape[1] // 2] = 255  # left half static
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = tmp_path / "masked"
    assert _cli(EXAMPLE, "-o", out, "--mask", tmp_path / "mask.png", "--frames", 3,
                "--working-side", WS, "--weights", weights) == 0
    frames = _read_folder(out)
    static = mask > 0
    for frame in frames:
        np.testing.assert_array_equal(frame[static], frames[0][static])
    assert _mean_step(frames[-1][~static], frames[0][~static]) > 1  # the rest moves


def test_depth_map_replaces_estimate_and_near_moves_more(model, tmp_path):
    depth = np.full((40, 60), 10.0, np.float32)
    depth[:, 30:] = 1.0  # right half near
    np.save(tmp_path / "depth.npy", depth)
    anim = animate_api(EXAMPLE, 2, 0, weights=model, depth=tmp_path / "depth.npy", working_side=WS)
    h, w = anim.working_size
    assert anim.depth.shape == (h, w, 1)
    assert anim.depth[:, -1].min() == pytest.approx(1.0) and anim.depth[:, 0].max() == pytest.approx(0.1)
    speed = np.linalg.norm(anim.flows[0], axis=-1)
    assert speed[:, w // 2 + 4:].mean() > 2 * speed[:, : w // 2 - 4].mean()


def test_estimated_depth_and_motion_are_the_models_padded_estimate(model):
    """Without a depth map, animate's depth is the depth net on the working image
    reflect-padded to a multiple of 32 and cropped back (the code animate had before
    `SpiritNet.estimate_depth`), and its flows are the model's given that depth."""
    import tensorflow as tf

    photo = cv2.resize(load_image(EXAMPLE), (70, 45), interpolation=cv2.INTER_AREA)
    anim = animate_api(photo, 2, 5, weights=model, working_side=70, edges="extend")
    assert anim.working_size == (45, 70)  # no resizing: both sides need padding
    padded = tf.pad(photo[None], [[0, 0], [0, 19], [0, 26], [0, 0]], mode="REFLECT")
    z_before = model.cell.estimate_depth(padded).numpy()[0, :45, :70]
    np.testing.assert_array_equal(anim.depth, z_before)
    out = model({"image": photo[None], "depth": z_before[None]}, num_frames=2, seed=5)
    np.testing.assert_array_equal(anim.flows, out["flows"].numpy()[0])
    np.testing.assert_array_equal(anim.working_frames[1:], out["frames"].numpy()[0])


# ----------------------------------------------------------------------------- warping maths


def _reference_warp(image, flow):
    """Bilinear ``image(x + flow(x))`` pixel by pixel; outside the picture: copy ``image(x)``."""
    h, w = flow.shape[:2]
    out = np.empty_like(image)
    for y in range(h):
        for x in range(w):
            qx, qy = x + flow[y, x, 0], y + flow[y, x, 1]
            if not (0 <= qx <= w - 1 and 0 <= qy <= h - 1):
                out[y, x] = image[y, x]
                continue
            x0, y0 = min(int(qx), w - 2), min(int(qy), h - 2)
            a, b = qx - x0, qy - y0
            out[y, x] = ((1 - a) * (1 - b) * image[y0, x0] + a * (1 - b) * image[y0, x0 + 1]
                         + (1 - a) * b * image[y0 + 1, x0] + a * b * image[y0 + 1, x0 + 1])
    return out


def test_warp_and_compose_match_reference():
    from spiritnet_tf.animation import opencv_warp
    from spiritnet_tf.ops.flow import bilinear_warp, compose_flows

    rng = np.random.default_rng(1)
    image = rng.random((9, 11, 3)).astype(np.float32)
    flows = rng.uniform(-2.5, 2.5, (2, 9, 11, 2)).astype(np.float32)
    reference = _reference_warp(image, flows[0])
    # OpenCV interpolates with 1/32-pixel weights: compare to that precision.
    np.testing.assert_allclose(opencv_warp(image[None], flows[:1])[0], reference, atol=0.04)
    np.testing.assert_allclose(bilinear_warp(image, flows[0]), reference, atol=1e-5)
    composed = compose_flows(flows[None]).numpy()[0]
    np.testing.assert_array_equal(composed[0], flows[0])
    expected = flows[1] + _reference_warp(flows[0], flows[1])
    np.testing.assert_allclose(composed[1], expected, atol=1e-5)
    constant = np.broadcast_to(np.float32([0.5, -0.25]), (1, 3, 9, 11, 2))
    np.testing.assert_allclose(compose_flows(constant)[0, 2, 3:6, 3:6], np.full((3, 3, 2), [1.5, -0.75]))


# ----------------------------------------------------------------------------- loops


def test_seamless_loop_closes_without_jump(model):
    from spiritnet_tf.animation import Animation

    seamless = animate_api(EXAMPLE, 5, 1, weights=model, direction=30, working_side=WS, loop="seamless",
                           edges="extend")
    frames = seamless.frames
    assert frames.shape[0] == 6
    np.testing.assert_array_equal(frames[0], to_uint8(load_image(EXAMPLE)))
    steps = [_mean_step(frames[t + 1], frames[t]) for t in range(5)]
    closing = _mean_step(frames[0], frames[-1])
    assert closing <= 1.05 * max(steps) and closing <= 1.25 * np.median(steps)
    # Without the loop closer the same motion jumps back by all its steps at once.
    plain = Animation(seamless.image, seamless.working_frames, seamless.flows, seamless.depth,
                      edges="extend")
    assert _mean_step(plain.frames[0], plain.frames[-1]) > 1.5 * closing


def test_boomerang_order_written(model, tmp_path):
    anim = animate_api(EXAMPLE, 3, 0, weights=model, working_side=WS, loop="boomerang")
    assert anim.frame_order() == [0, 1, 2, 3, 2, 1]
    anim.save(tmp_path / "b")
    written = _read_folder(tmp_path / "b")
    np.testing.assert_array_equal(written, anim.frames[[0, 1, 2, 3, 2, 1]])


# ----------------------------------------------------------------------------- full resolution


def test_full_resolution_3000x2000(model):
    rng = np.random.default_rng(0)
    coarse = rng.random((20, 30, 3)).astype(np.float32)
    photo = cv2.resize(coarse, (3000, 2000), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    # The depth mapping these random weights were first tested with ("max"; the percentile
    # mapping spreads z and the motion, which this comparison of resampling does not need).
    anim = animate_api(photo, 2, 0, weights=model.with_config(depth_mapping="max"), working_side=WS,
                       edges="extend")
    assert anim.working_size == (43, 64) and anim.flows.shape == (2, 43, 64, 2)
    frames = list(anim.iter_frames())
    assert [f.shape for f in frames] == [(2000, 3000, 3)] * 3
    np.testing.assert_array_equal(frames[0], to_uint8(photo))
    # Shrunk back to the working size, each full-resolution frame is the model's frame:
    # much closer to it than the input is (flows scaled by 3000/64, residual added).
    for t in (1, 2):
        small = cv2.resize(frames[t].astype(np.float32) / 255, (64, 43), interpolation=cv2.INTER_AREA)
        error = np.abs(small - anim.working_frames[t]).mean()
        motion = np.abs(anim.working_frames[0] - anim.working_frames[t]).mean()
        assert error < 0.3 * motion


def test_frames_made_band_by_band_equal_whole_frames(model, monkeypatch):
    """Large frames are made in row bands (bounded memory): the same values as one band,
    with zoom, a mask and the seamless loop's second warp, bands not dividing the height."""
    from spiritnet_tf import animation

    rng = np.random.default_rng(3)
    photo = cv2.resize(rng.random((15, 20, 3)).astype(np.float32), (200, 150),
                       interpolation=cv2.INTER_CUBIC).clip(0, 1)
    mask = np.zeros((150, 200), np.float32)
    mask[:40, :60] = 1
    anim = animate_api(photo, 3, 1, weights=model, working_side=WS, mask=mask, loop="seamless",
                       magnitude=3.0)
    assert anim.zoom > 1
    monkeypatch.setattr(animation, "BAND_PIXELS", 10**9)
    whole = [anim.frame(t) for t in range(4)]
    monkeypatch.setattr(animation, "BAND_PIXELS", 200 * 7)  # 7-row bands, the last one 3
    for t in range(4):
        np.testing.assert_array_equal(anim.frame(t), whole[t])
    # Freed memory goes back to the system after the model's run, and after each frame
    # of a photo of at least TRIM_AFTER_PIXELS (the 4000x3000 command line's peak
    # 1,940-1,995 -> 1,441 MiB, docs/benchmarks.md); the frames stay the same.
    calls = []
    monkeypatch.setattr(animation, "release_freed_memory", lambda: calls.append(1) or True)
    again = animate_api(photo, 3, 1, weights=model, working_side=WS, mask=mask, loop="seamless",
                        magnitude=3.0)
    assert len(calls) == 1
    again.frame(2)
    assert len(calls) == 1  # 200x150 is below the limit
    monkeypatch.setattr(animation, "TRIM_AFTER_PIXELS", 200 * 150)
    np.testing.assert_array_equal(again.frame(2), whole[2])
    assert len(calls) == 2


def test_large_photos_frames_traced_as_eager(model, monkeypatch):
    """From TRACE_FRAME_PIXELS on, each band's sample flow and resampled residual come
    from one traced graph (`fullres.frame_inputs_traced`), shared by the bands and the
    frames (one trace for frame 0, which has no flow and no residual, one for the others,
    each at most twice: the last band's height differs): the frames stay those of the
    eager operations (uint8 values within 3, almost all equal)."""
    from spiritnet_tf import animation, fullres

    rng = np.random.default_rng(5)
    photo = cv2.resize(rng.random((15, 20, 3)).astype(np.float32), (200, 150),
                       interpolation=cv2.INTER_CUBIC).clip(0, 1)
    anim = animate_api(photo, 3, 1, weights=model, working_side=WS, magnitude=3.0)
    monkeypatch.setattr(animation, "BAND_PIXELS", 200 * 40)  # 40-row bands, the last one 30
    monkeypatch.setattr(animation, "TRACE_FRAME_PIXELS", 10**9)
    calls = []
    traced = fullres.frame_inputs_traced
    monkeypatch.setattr(fullres, "frame_inputs_traced", lambda *a, **k: calls.append(1) or traced(*a, **k))
    eager = np.stack([anim.frame(t) for t in range(4)])
    assert not calls
    monkeypatch.setattr(animation, "TRACE_FRAME_PIXELS", 200 * 150)
    before = fullres._frame_inputs_graph.experimental_get_tracing_count()
    graph = np.stack([anim.frame(t) for t in range(4)])
    assert len(calls) == 4 * 4  # four bands a frame (frame 0 too: it is zoomed)
    assert fullres._frame_inputs_graph.experimental_get_tracing_count() - before <= 4
    diff = np.abs(graph.astype(int) - eager.astype(int))
    assert diff.max() <= 3 and (diff > 0).mean() < 1e-3, (diff.max(), (diff > 0).mean())


def test_release_freed_memory_calls_glibc():
    """`spiritnet_tf.memory`: glibc's malloc_trim is found on these Linux machines (the
    machines the suite runs on use glibc) and called."""
    from spiritnet_tf import memory

    assert memory.malloc_trim() is not None
    assert memory.release_freed_memory() is True


def test_working_size_equal_to_photo_gives_model_frames(model):
    photo = cv2.resize(load_image(EXAMPLE), (96, 64), interpolation=cv2.INTER_AREA)
    anim = animate_api(photo, 2, 0, weights=model, working_side=96, edges="extend")  # no resizing
    assert anim.size == anim.working_size == (64, 96)
    np.testing.assert_allclose(anim.frames / 255.0, anim.working_frames, atol=0.5 / 255 + 1e-5)


def test_full_resolution_adds_the_synthesis_residual_not_the_kernels_blur(weights):
    """docs/design.md §6: above the working size a frame is the photo warped (Lanczos-4) by the
    upsampled flow plus the upsampled synthesis residual. Blurring 4x4 kernels with no
    synthesis residual then give frames as sharp as that warp, while the model's
    own working-size frames blur."""
    from spiritnet_tf.animation import load_model
    from spiritnet_tf.evaluation.metrics import sharpness_ratio
    from spiritnet_tf.ops.flow import compose_flows

    # A copy (the shared fixture stays intact) with the depth mapping this test was written
    # for ("max"; the percentile mapping's larger motion is not what it checks).
    model = load_model(weights).with_config(depth_mapping="max")
    kernels = model.cell.kernels.head
    kernels.kernel.assign(np.zeros(kernels.kernel.shape, np.float32))
    kernels.bias.assign(np.full(16, 0.25, np.float32))  # weights sum to 1: a 4x4 blur
    photo = load_image(EXAMPLE)  # 600x400, model at 96x64
    anim = animate_api(photo, 3, 0, weights=model, working_side=96, edges="extend")
    out = model({"image": anim.working_frames[:1]}, num_frames=3, seed=0,
                return_residuals=True)
    np.testing.assert_allclose(out["frames"].numpy()[0], anim.working_frames[1:], atol=1e-5)
    assert np.abs(out["residuals"].numpy()).max() == 0.0  # zero synthesis head
    assert np.abs(anim.flows).mean() > 0.2
    composed = compose_flows(anim.flows[None]).numpy()[0]
    for t in (1, 3):  # reference: OpenCV's resize and Lanczos-4 remap (copy rule outside)
        flow = cv2.resize(composed[t - 1], (600, 400), interpolation=cv2.INTER_LINEAR) * np.float32(600 / 96)
        map_x = flow[..., 0] + np.arange(600, dtype=np.float32)
        map_y = flow[..., 1] + np.arange(400, dtype=np.float32)[:, None]
        warped = cv2.remap(photo, map_x, map_y, cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REPLICATE)
        outside = (map_x < 0) | (map_x > 599) | (map_y < 0) | (map_y > 399)
        warped[outside] = photo[outside]
        expected = to_uint8(warped)
        assert np.abs(anim.frame(t).astype(int) - expected.astype(int)).max() <= 1
    full = float(sharpness_ratio(anim.frames[3:] / 255.0, anim.frames[:1] / 255.0)[0])
    small = float(sharpness_ratio(anim.working_frames[3:], anim.working_frames[:1])[0])
    assert small < 0.3 * full, (full, small)  # measured: 0.74 full resolution, 0.09 model


# ----------------------------------------------------------------------------- inputs


def _png_header_only(path, width, height):
    """A PNG whose header declares width x height; its pixel data is a few bytes."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


def _gradient(height, width):
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x / width, y / height, (x + y) / (width + height)], -1)


def _write_input(kind, path):
    """Writes an input of ``kind``; returns the uint8 frame 0 it must become."""
    g = _gradient(48, 80)
    if kind == "grayscale":
        gray = (g[..., 0] * 255).astype(np.uint8)
        Image.fromarray(gray, "L").save(path)
        return np.repeat(gray[..., None], 3, -1)
    if kind == "rgba":
        rgba = np.concatenate([(g * 255).astype(np.uint8), np.full((48, 80, 1), 255, np.uint8)], -1)
        rgba[:, :20, 3] = 0  # transparent left strip -> white
        Image.fromarray(rgba, "RGBA").save(path)
        expected = rgba[..., :3].copy()
        expected[:, :20] = 255
        return expected
    if kind == "16bit":
        rgb16 = (g * 65535).astype(np.uint16)
        cv2.imwrite(str(path), rgb16[..., ::-1])
        return np.rint(rgb16 / 65535 * 255).astype(np.uint8)
    if kind == "exif-rotated":
        rgb = (g * 255).astype(np.uint8)
        exif = Image.Exif()
        exif[0x0112] = 6  # rotate 90 degrees clockwise to display
        Image.fromarray(rgb).save(path, quality=95, exif=exif)
        return np.rot90(rgb, -1)  # 80x48 as displayed
    raise AssertionError(kind)


@pytest.mark.parametrize("kind, name", [
    ("grayscale", "gray.png"), ("rgba", "rgba.png"), ("16bit", "deep.png"),
    ("exif-rotated", "rotated.jpg"),
])
def test_cli_converts_inputs(weights, tmp_path, kind, name):
    expected = _write_input(kind, tmp_path / name)
    out = tmp_path / "out"
    assert _cli(tmp_path / name, "-o", out, "--frames", 1, "--working-side", WS,
                "--weights", weights, "--edges", "extend") == 0
    frames = _read_folder(out)
    assert frames.shape == (2,) + expected.shape
    tolerance = 10 if kind == "exif-rotated" else 0  # JPEG is lossy
    assert np.abs(frames[0].astype(int) - expected).max() <= tolerance


@pytest.mark.parametrize("case, message", [
    ("missing", "no such file"),
    ("not-an-image", "not an image"),
    ("10x10", "too small"),
    ("too-many-pixels", "too many pixels"),
    ("unknown-extension", "unknown output extension"),
])
def test_cli_rejects_inputs(tmp_path, capsys, case, message):
    image, out = tmp_path / "in.png", tmp_path / "out.gif"
    if case == "not-an-image":
        image.write_text("hello, I am text")
    elif case == "10x10":
        Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(image)
    elif case == "too-many-pixels":
        _png_header_only(image, 8000, 7000)  # 56 MP > 50 MP
    elif case == "unknown-extension":
        Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(image)
        out = tmp_path / "out.avi"
    # No --weights: these fail before any model is loaded.
    assert _cli(image, "-o", out) == 1
    err = capsys.readouterr().err
    assert message in err and (str(out) if case == "unknown-extension" else str(image)) in err
    assert not out.exists()


class _ModelRequested(Exception):
    """Raised instead of loading a model: the request got past the argument checks."""


def test_cli_and_animate_refuse_one_frame_more_than_the_animation_limit(monkeypatch, tmp_path,
                                                                         capsys):
    """`spiritnet_tf.limits.MAX_ANIMATION_FRAMES` frames pass the checks, one more is refused
    with a message naming the limit, by the API and by the command line, before any model
    is loaded (the model loader is replaced by one that only records the call)."""
    def load_model(*args, **kwargs):
        raise _ModelRequested

    monkeypatch.setattr(animation, "load_model", load_model)
    too_many = MAX_ANIMATION_FRAMES + 1
    message = f"num_frames must be at most {MAX_ANIMATION_FRAMES}, got {too_many}"
    with pytest.raises(ValueError, match=message):
        animate_api(EXAMPLE, too_many)
    with pytest.raises(_ModelRequested):
        animate_api(EXAMPLE, MAX_ANIMATION_FRAMES)

    out = tmp_path / "out.gif"
    with pytest.raises(SystemExit) as exit_info:  # an argument error of --frames
        _cli(EXAMPLE, "-o", out, "--frames", too_many)
    assert exit_info.value.code == 2
    assert f"--frames: expected a whole number >= 1 and <= {MAX_ANIMATION_FRAMES}, got '{too_many}'" \
        in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(_ModelRequested):
        _cli(EXAMPLE, "-o", out, "--frames", MAX_ANIMATION_FRAMES)
    assert not out.exists()


def test_cli_several_images_into_folder(weights, tmp_path):
    other = tmp_path / "other.png"
    Image.fromarray((_gradient(48, 80) * 255).astype(np.uint8)).save(other)
    out = tmp_path / "anims"
    assert _cli(EXAMPLE, other, "-o", out, "--format", "webp", "--frames", 1,
                "--working-side", WS, "--weights", weights) == 0
    assert sorted(os.listdir(out)) == ["coffee.webp", "other.webp"]
    assert _cli(EXAMPLE, other, "-o", tmp_path / "x.gif") == 1  # must be a folder


def test_api_errors(model, monkeypatch, tmp_path):
    monkeypatch.setattr(config, "DEFAULT_WEIGHTS", str(tmp_path / "absent.weights.h5"))
    with pytest.raises(FileNotFoundError, match="bundled default weights.*--weights"):
        animate_api(EXAMPLE)
    with pytest.raises(ValueError, match=f"num_frames must be at most {MAX_ANIMATION_FRAMES}"):
        animate_api(EXAMPLE, MAX_ANIMATION_FRAMES + 1, weights=model)
    with pytest.raises(ValueError, match="num_frames must be at least 1"):
        animate_api(EXAMPLE, 0, weights=model)
    with pytest.raises(ValueError, match="either depth or inverse_depth"):
        animate_api(EXAMPLE, weights=model, depth="a.npy", inverse_depth="b.npy")
    with pytest.raises(ValueError, match="unknown loop mode"):
        animate_api(EXAMPLE, weights=model, loop="pingpong")
    with pytest.raises(ValueError, match="working size 600x17 .* raise working_side"):
        animate_api(np.zeros((40, 1400, 3), np.uint8), weights=model, working_side=600)
    with pytest.raises(ValueError, match=f"33000x32 photo has a side of {MAX_REMAP_SIDE} px or more"):
        animate_api(np.zeros((32, 33000, 3), np.uint8), weights=model)


def test_load_model_resample_mode_copy(model):
    from spiritnet_tf.animation import load_model

    twin = load_model(model, resample_from="previous")
    assert twin is not model and model.config.resample_from == "input"  # the small preset's
    assert twin.config.resample_from == "previous"
    for a, b in zip(twin.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert load_model(model, resample_from="input") is model


def test_keras_model_file_gives_same_animation(model, tmp_path):
    path = tmp_path / "model.keras"
    model.save(path)
    from_file = animate_api(EXAMPLE, 1, 4, weights=path, working_side=WS)
    direct = animate_api(EXAMPLE, 1, 4, weights=model, working_side=WS)
    np.testing.assert_array_equal(from_file.frames, direct.frames)
    (tmp_path / "x.bin").write_bytes(b"weights?")
    with pytest.raises(ValueError, match="must be a .keras model or a .weights.h5 file"):
        animate_api(EXAMPLE, weights=tmp_path / "x.bin")


def test_package_exports_animate():
    assert spiritnet_tf.animate is animate_api and callable(spiritnet_tf.animate)
    assert spiritnet_tf.Animation.__name__ == "Animation"


# ----------------------------------------------------------------------------- bundled weights


def test_cli_bundled_weights_on_the_example(tmp_path):
    """What `make demo` runs: the bundled weights with every default (6 frames, working side 448)."""
    from spiritnet_tf.evaluation.metrics import sharpness_ratio

    out = tmp_path / "coffee"
    assert _cli(EXAMPLE, "-o", out, "--save-flows") == 0
    frames = _read_folder(out)
    photo = load_image(EXAMPLE)
    assert frames.shape == (7,) + photo.shape  # N + 1 frames at the input's size
    flows = np.load(tmp_path / "coffee_flows.npy")
    assert flows.shape[0] == 6 and max(flows.shape[1:3]) == 448
    assert np.linalg.norm(flows, axis=-1).mean() >= 0.5  # px per frame at the working size
    # The quality gate's example check: the last frame keeps >= 0.8 of the input's sharpness.
    last = frames[-1].astype(np.float32) / 255
    assert float(sharpness_ratio(last[None], frames[0][None].astype(np.float32) / 255)[0]) >= 0.8
    # Same seed, same file; another seed, another (a smaller working side: a fraction of
    # the time).
    a, b, c = tmp_path / "a.gif", tmp_path / "b.gif", tmp_path / "c.gif"
    for path, seed in ((a, 3), (b, 3), (c, 4)):
        assert _cli(EXAMPLE, "-o", path, "--seed", seed, "--frames", 2,
                    "--working-side", 128) == 0
    assert a.read_bytes() == b.read_bytes() and a.read_bytes() != c.read_bytes()
