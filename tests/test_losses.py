"""Losses of SpiritNet training: values against NumPy references and invariances."""

import numpy as np
import pytest
import tensorflow as tf

from spiritnet_tf import losses

RNG = np.random.default_rng(0)


def test_flow_l1_matches_numpy():
    a = RNG.normal(size=(2, 3, 8, 8, 2)).astype(np.float32)
    b = RNG.normal(size=(2, 3, 8, 8, 2)).astype(np.float32)
    np.testing.assert_allclose(losses.flow_l1(a, b).numpy(), np.abs(a - b).mean(), rtol=1e-6)


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
