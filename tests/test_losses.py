"""Losses of SpiritNet training: values against NumPy references and invariances."""

import numpy as np
import pytest
import tensorflow as tf

from spiritnet_tf import losses

RNG = np.random.default_rng(0)


def test_step_weighted_l1_matches_numpy():
    a = RNG.normal(size=(2, 3, 8, 8, 2)).astype(np.float32)
    b = RNG.normal(size=(2, 3, 8, 8, 2)).astype(np.float32)
    equal = losses.step_weights(3, 0.0)
    np.testing.assert_allclose(equal.numpy(), [1, 1, 1])
    np.testing.assert_allclose(
        losses.step_weighted_l1(a, b, equal).numpy(), np.abs(a - b).mean(), rtol=1e-6)
    # late_weight 1: the last step weighs twice the first, the mean stays 1.
    w = losses.step_weights(3, 1.0).numpy()
    np.testing.assert_allclose(w, np.array([1, 1.5, 2]) / 1.5, rtol=1e-6)
    per_step = np.abs(a - b).mean(axis=(0, 2, 3, 4))
    np.testing.assert_allclose(
        losses.step_weighted_l1(a, b, w).numpy(), (per_step * w).mean(), rtol=1e-6)
    assert losses.step_weights(1, 3.0).numpy().tolist() == [1.0]
    # An error only on the last step costs more with later steps weighted.
    late = np.zeros_like(a)
    late[:, -1] = 1.0
    assert (losses.step_weighted_l1(late, 0 * late, w).numpy()
            > losses.step_weighted_l1(late, 0 * late, equal).numpy())


def test_psnr_loss_is_minus_the_mean_psnr_and_weighs_frames_by_their_own_error():
    target = RNG.uniform(size=(2, 3, 8, 8, 3)).astype(np.float32)
    predicted = np.clip(target + RNG.normal(scale=0.05, size=target.shape), 0, 1).astype(np.float32)
    mse = np.square(predicted - target).mean(axis=(2, 3, 4))
    np.testing.assert_allclose(losses.psnr_loss(predicted, target).numpy(),
                               np.mean(10 * np.log10(mse + 1e-4)), rtol=1e-5)
    # Halving the error of one frame gains the same whether that frame was nearly right or
    # far off (the mean of PSNRs); an L1 or L2 term gains far more on the far-off one.
    errors = np.ones_like(target)
    errors[0, 0] *= 0.02
    errors[1, 2] *= 0.4
    base = losses.psnr_loss(target + errors, target, floor=0.0).numpy()
    for b, t in ((0, 0), (1, 2)):
        halved = errors.copy()
        halved[b, t] *= 0.5
        gain = base - losses.psnr_loss(target + halved, target, floor=0.0).numpy()
        np.testing.assert_allclose(gain, 10 * np.log10(4) / 6, rtol=1e-4)
    # The floor caps what an exact frame earns: 40 dB by default.
    np.testing.assert_allclose(losses.psnr_loss(target, target).numpy(), -40.0, rtol=1e-6)


def test_path_l1_charges_a_bias_that_adds_up():
    target = np.ones((1, 4, 8, 8, 2), np.float32)
    equal = losses.step_weights(4, 0.0)
    # 10 % too short at every step: the per-step error stays 0.1, the path's grows.
    short = 0.9 * target
    np.testing.assert_allclose(losses.step_weighted_l1(short, target, equal).numpy(), 0.1, rtol=1e-5)
    np.testing.assert_allclose(losses.path_l1(short, target, equal).numpy(),
                               np.mean([0.1, 0.2, 0.3, 0.4]), rtol=1e-5)
    # Errors of alternating sign cancel along the path: same per-step L1, smaller path L1.
    alternating = target + 0.1 * np.array([1, -1, 1, -1], np.float32)[None, :, None, None, None]
    np.testing.assert_allclose(losses.path_l1(alternating, target, equal).numpy(), 0.05, rtol=1e-5)
    assert losses.path_l1(target, target, equal).numpy() == 0.0


def test_total_variation_values():
    assert losses.total_variation(np.full((1, 2, 8, 8, 3), 0.3, np.float32)).numpy() == 0.0
    ramp = np.tile(np.arange(8, dtype=np.float32) * 0.1, (2, 8, 1))[..., None].repeat(3, -1)
    np.testing.assert_allclose(losses.total_variation(ramp).numpy(), 0.1, rtol=1e-5)
    x = RNG.random((2, 6, 7, 3)).astype(np.float32)
    ref = np.abs(np.diff(x, axis=1)).mean() + np.abs(np.diff(x, axis=2)).mean()
    np.testing.assert_allclose(losses.total_variation(x).numpy(), ref, rtol=1e-5)


def test_scale_invariant_log_depth():
    t = RNG.uniform(0.05, 1.0, size=(3, 8, 8, 1)).astype(np.float32)
    # Invariant to a per-image scale of z (an offset of log depth).
    scaled = t * np.array([0.5, 0.9, 0.2], np.float32)[:, None, None, None]
    assert losses.scale_invariant_log_depth(scaled, t).numpy() == pytest.approx(0.0, abs=1e-6)
    p = RNG.uniform(0.05, 1.0, size=t.shape).astype(np.float32)
    d = (np.log(p) - np.log(t)).reshape(3, -1)
    ref = ((d**2).mean(1) - d.mean(1) ** 2).mean()
    np.testing.assert_allclose(losses.scale_invariant_log_depth(p, t).numpy(), ref, rtol=1e-4)
    # Pixels without ground truth (target <= 0) are ignored.
    t_holes = t.copy()
    t_holes[:, :2] = 0.0
    d = (np.log(p[:, 2:]) - np.log(t[:, 2:])).reshape(3, -1)
    ref = ((d**2).mean(1) - d.mean(1) ** 2).mean()
    np.testing.assert_allclose(losses.scale_invariant_log_depth(p, t_holes).numpy(), ref, rtol=1e-4)
    # An image without any ground truth (a source without depth in a mixed batch) is
    # left out of the mean, not averaged in as a zero.
    t_none = t.copy()
    t_none[1] = 0.0
    d = (np.log(p[[0, 2]]) - np.log(t[[0, 2]])).reshape(2, -1)
    ref = ((d**2).mean(1) - d.mean(1) ** 2).mean()
    np.testing.assert_allclose(losses.scale_invariant_log_depth(p, t_none).numpy(), ref, rtol=1e-4)
    assert losses.scale_invariant_log_depth(p, np.zeros_like(t)).numpy() == 0.0


def test_gram_matrix_matches_numpy():
    f = RNG.normal(size=(2, 5, 4, 3)).astype(np.float32)
    flat = f.reshape(2, -1, 3)
    ref = np.einsum("npc,npd->ncd", flat, flat) / (5 * 4 * 3)
    np.testing.assert_allclose(losses.gram_matrix(tf.constant(f)).numpy(), ref, rtol=1e-5)


@pytest.fixture(scope="module")
def style():
    return losses.StyleLoss(layers=(("block1_conv1", 1.0), ("block2_conv1", 0.5)), weights=None)


def test_style_loss_zero_for_same_frames_and_differentiable(style):
    a = RNG.random((1, 2, 32, 32, 3)).astype(np.float32)
    b = np.clip(a * 0.5 + 0.4, 0, 1)
    assert style(a, a).numpy() == pytest.approx(0.0, abs=1e-6)
    x = tf.Variable(b)
    with tf.GradientTape() as tape:
        value = style(x, a)
    assert value.numpy() > 0
    assert np.abs(tape.gradient(value, x).numpy()).max() > 0
    # Gram matrices ignore where texture is: a shifted copy costs far less than a changed one.
    shifted = np.roll(a, 3, axis=3)
    assert style(shifted, a).numpy() < 0.5 * value.numpy()


def test_style_loss_vgg_is_frozen_and_not_downloaded(style):
    assert style._features.trainable_weights == []
    with pytest.raises(ValueError, match="download"):
        losses.StyleLoss(weights="imagenet")
    with pytest.raises(ValueError, match="no layer"):
        losses.StyleLoss(layers=(("block9_conv1", 1.0),))


def test_scale_invariant_log_depth_on_raw_log_depth():
    t = RNG.uniform(0.05, 1.0, size=(2, 8, 8, 1)).astype(np.float32)
    log_depth = RNG.normal(0, 0.5, size=t.shape).astype(np.float32)
    nearest = log_depth.min(axis=(1, 2, 3), keepdims=True)
    z = np.exp(nearest - log_depth)  # the model's z, here far above its 1e-3 floor
    np.testing.assert_allclose(
        losses.scale_invariant_log_depth(None, t, predicted_log_depth=log_depth).numpy(),
        losses.scale_invariant_log_depth(z, t).numpy(), rtol=1e-4)
    # One pixel far nearer than the rest floors every other z at 1e-3: no gradient is
    # left through z, but the raw log depth still gets one everywhere.
    log_depth[:, 0, 0] = -60.0
    x = tf.Variable(log_depth)
    with tf.GradientTape(persistent=True) as tape:
        z = tf.maximum(tf.exp(tf.reduce_min(x, axis=[1, 2, 3], keepdims=True) - x), 1e-3)
        via_z = losses.scale_invariant_log_depth(z, t)
        via_log = losses.scale_invariant_log_depth(None, t, predicted_log_depth=x)
    assert not np.abs(tape.gradient(via_z, x).numpy()[:, 1:]).any()
    assert (np.abs(tape.gradient(via_log, x).numpy()) > 0).mean() > 0.9


def test_sharpness_gap_punishes_blur_not_position():
    rng = np.random.default_rng(0)
    # A periodic texture: a circular shift keeps the neighbour differences (but the one
    # across the seam, which the non-circular difference leaves out).
    base = rng.random((1, 32, 32, 3)).astype(np.float32)
    image = np.tile(base, (1, 2, 2, 1))
    shifted = np.roll(image, (3, 5), axis=(1, 2))
    blurred = (image + np.roll(image, 1, 1) + np.roll(image, 1, 2) + np.roll(image, (1, 1), (1, 2))) / 4
    assert float(losses.sharpness_gap(image, image)) == 0.0
    assert float(losses.sharpness_gap(shifted, image)) < 2e-3
    gap = float(losses.sharpness_gap(blurred, image))
    # Per image and channel: |TV(blurred) - TV(image)| with TV = mean |dy| + mean |dx|.
    tv = lambda x: np.abs(np.diff(x, axis=1)).mean((1, 2)) + np.abs(np.diff(x, axis=2)).mean((1, 2))
    assert gap == pytest.approx(np.abs(tv(blurred) - tv(image)).mean(), rel=1e-5) and gap > 0.05
    # Pixel L1 ranks the two the other way round: it prefers the blur to the shift.
    assert np.abs(blurred - image).mean() < np.abs(shifted - image).mean()
    # Batches of sequences [B, T, H, W, C] are compared image by image.
    both = np.stack([image[0], blurred[0]])[None]
    target = np.stack([image[0], image[0]])[None]
    assert float(losses.sharpness_gap(both, target)) == pytest.approx(gap / 2, rel=1e-5)


def _depth_pair(seed=0):
    rng = np.random.default_rng(seed)
    target = rng.uniform(0.1, 1.0, size=(2, 24, 20, 1)).astype(np.float32)
    target[0, :3] = 0.0  # no truth there
    noise = rng.normal(0, 0.2, size=target.shape).astype(np.float32)
    return target, target + noise


def test_relative_depth_losses_invariant_to_scale_and_shift_of_the_prediction():
    target, predicted = _depth_pair()
    ssi = losses.scale_shift_invariant(predicted, target).numpy()
    grad = losses.gradient_matching(predicted, target).numpy()
    assert ssi > 0.05 and grad > 0.05
    for scale, shift in ((3.0, -2.0), (0.1, 5.0), (17.0, 0.0)):
        moved = scale * predicted + shift
        assert losses.scale_shift_invariant(moved, target).numpy() == pytest.approx(ssi, rel=1e-3)
        assert losses.gradient_matching(moved, target).numpy() == pytest.approx(grad, rel=1e-3)
    # the target's own scale and shift do not matter either (normalised per image)
    assert losses.scale_shift_invariant(predicted, 4 * target + (target > 0) * 1.0).numpy() == \
        pytest.approx(losses.scale_shift_invariant(predicted, target + 0.25 * (target > 0)).numpy(), rel=0.3)
    # exact up to scale and shift: zero; reversed order: large
    assert losses.relative_depth(2 * target - 1, target, scale_weight=0.0).numpy() == pytest.approx(0, abs=1e-4)
    assert losses.scale_shift_invariant(-target, target).numpy() > \
        losses.scale_shift_invariant(np.zeros_like(target), target).numpy() > 0.5
    # relative_depth: shift-invariant exactly; its weak scale pull prefers the target's scale
    rel = losses.relative_depth(predicted, target)
    assert losses.relative_depth(predicted + 3.0, target).numpy() == pytest.approx(rel.numpy(), rel=1e-4)


def test_relative_depth_ignores_invalid_pixels_and_images_and_has_gradients():
    target, predicted = _depth_pair(1)
    garbage = predicted.copy()
    garbage[0, :3] = 1e3  # where there is no truth
    assert losses.relative_depth(garbage, target).numpy() == pytest.approx(
        losses.relative_depth(predicted, target).numpy(), rel=1e-4)
    empty = np.concatenate([target, np.zeros_like(target[:1])])
    both = np.concatenate([predicted, predicted[:1]])
    assert losses.relative_depth(both, empty).numpy() == pytest.approx(
        losses.relative_depth(predicted, target).numpy(), rel=1e-4)
    p = tf.Variable(predicted)
    with tf.GradientTape() as tape:
        loss = losses.relative_depth(p, target)
    g = tape.gradient(loss, p).numpy()
    assert np.all(np.isfinite(g)) and np.abs(g).sum() > 0 and np.all(g[0, :3] == 0)


def _edge_map(images):
    import cv2

    grey = images.mean(-1)
    return np.stack([cv2.blur(np.hypot(cv2.Sobel(x, cv2.CV_32F, 1, 0), cv2.Sobel(x, cv2.CV_32F, 0, 1)),
                              (7, 7)) for x in grey])[..., None]


def test_edge_following_scores_an_edge_detector_high_and_depth_low():
    rng = np.random.default_rng(3)
    images = rng.random((2, 32, 40, 3)).astype(np.float32)
    images[:, :, :20] *= 0.1  # a smooth left half, a textured right half
    edges = _edge_map(images)
    high = losses.edge_following(edges, images).numpy()
    assert high > 0.8
    # invariant to scale (either sign) and shift; a map independent of the texture scores ~0
    assert losses.edge_following(-3 * edges + 1, images).numpy() == pytest.approx(high, rel=1e-4)
    ramp = np.tile(np.arange(32, dtype=np.float32)[None, :, None, None], (2, 1, 40, 1))
    assert losses.edge_following(ramp, images).numpy() < 0.02
    # only pixels with truth count: on the textured half alone the edge map follows far less
    target = np.zeros_like(edges)
    target[:, :, 24:] = 1.0
    assert losses.edge_following(edges, images, target).numpy() < high - 0.3
    # a negative target (a real photo without truth) counts like truth here, and the
    # depth loss ignores such an image: the photo's term only, unchanged by its values
    assert losses.edge_following(edges, images, -target).numpy() == pytest.approx(
        losses.edge_following(edges, images, target).numpy(), rel=1e-5)
    truth = ramp + 1.0
    mixed = np.concatenate([truth[:1], -np.ones_like(edges[:1])])
    alone = losses.relative_depth(edges[:1], truth[:1]).numpy()
    assert alone > 0.1
    assert losses.relative_depth(edges, mixed).numpy() == pytest.approx(alone, rel=1e-5)
    # descending it moves an edge-following map away from the edges
    p = tf.Variable(edges + 0.1 * ramp / 32)
    optimizer = tf.keras.optimizers.Adam(0.05)
    for _ in range(30):
        with tf.GradientTape() as tape:
            loss = losses.edge_following(p, images)
        optimizer.apply_gradients([(tape.gradient(loss, p), p)])
    assert losses.edge_following(p, images).numpy() < 0.5 * high


def test_relative_depth_can_be_minimised_from_a_random_start():
    """Gradient descent on a free prediction map learns the target's order and edges."""
    target, _ = _depth_pair(2)
    rng = np.random.default_rng(0)
    p = tf.Variable(rng.normal(size=target.shape).astype(np.float32))
    optimizer = tf.keras.optimizers.Adam(0.05)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = losses.relative_depth(p, target)
        optimizer.apply_gradients([(tape.gradient(loss, p), p)])
        return loss

    start = float(step())
    for _ in range(200):
        step()
    valid = target > 0
    assert float(losses.relative_depth(p, target)) < 0.2 * start
    assert np.corrcoef(p.numpy()[valid], target[valid])[0, 1] > 0.9
