"""Synthetic parallax scenes (exact flow/depth), flips, and the training pipeline contract."""

import cv2
import numpy as np
import pytest
import tensorflow as tf

from spiritnet_tf.data import (
    SyntheticConfig,
    flip_septuplet,
    generate_septuplet,
    read_septuplets,
    synthetic_dataset,
    training_pipeline,
    write_synthetic_records,
)

H, W = 64, 96


def _warp_psnr(frames, flows, layers):
    """PSNR of bilinear-warping frame k to k+1 with F_{k+1->k}, on non-occluded pixels.

    A pixel counts when x + F(x) lies inside frame k and all four bilinear taps
    there show the layer that is visible at x in frame k+1. Returns per-pair PSNRs
    and the share of pixels used.
    """
    frames = frames.astype(np.float32) / 255
    h, w = frames.shape[1:3]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    psnrs, used = [], []
    for k in range(len(flows)):
        mx, my = xs + flows[k, ..., 0], ys + flows[k, ..., 1]
        warped = cv2.remap(frames[k], mx, my, cv2.INTER_LINEAR)
        x0, y0 = np.floor(mx).astype(int), np.floor(my).astype(int)
        valid = (x0 >= 0) & (y0 >= 0) & (x0 < w - 1) & (y0 < h - 1)
        x0, y0 = np.clip(x0, 0, w - 2), np.clip(y0, 0, h - 2)
        for dy in (0, 1):
            for dx in (0, 1):
                valid &= layers[k][y0 + dy, x0 + dx] == layers[k + 1]
        mse = np.mean((warped - frames[k + 1])[valid] ** 2)
        psnrs.append(10 * np.log10(1 / mse))
        used.append(valid.mean())
    return np.array(psnrs), np.array(used)


@pytest.fixture(scope="module")
def scene():
    # Fast motion, so that every flow component matters at this small size.
    s = generate_septuplet(0, H, W, SyntheticConfig(max_speed=0.08, max_acceleration=0.004))
    assert (np.median(np.abs(s["flows"]), axis=(0, 1, 2)) > 0.3).all()
    return s


def test_synthetic_flow_reproduces_next_frame(scene):
    assert scene["frames"].shape == (7, H, W, 3) and scene["frames"].dtype == np.uint8
    assert scene["flows"].shape == (6, H, W, 2) and scene["depth"].shape == (7, H, W, 1)
    psnr, used = _warp_psnr(scene["frames"], scene["flows"], scene["layers"])
    assert (psnr > 35).all(), psnr
    assert (used > 0.6).all(), used
    # The scene really moves (parallax, not a still): flows differ between layers.
    assert np.abs(scene["flows"]).max() > 0.5
    # The reported flow is the one that matches: its negation, or no motion, does not.
    wrong, _ = _warp_psnr(scene["frames"], -scene["flows"], scene["layers"])
    still, _ = _warp_psnr(scene["frames"], 0 * scene["flows"], scene["layers"])
    assert wrong.mean() < psnr.mean() - 10 and still.mean() < psnr.mean() - 10


def test_synthetic_motion_accelerates_and_rotates():
    changes, spreads = [], []
    for seed in range(4):
        s = generate_septuplet(seed, H, W)
        near = s["layers"] == s["layers"].max()  # the nearest layer moves the most
        both = near[1:-1] & near[2:]  # visible in frames k+1 and k+2
        # Constant velocity would give F_{k+2->k+1} == F_{k+1->k} on a layer.
        changes.append(np.abs(s["flows"][1:] - s["flows"][:-1])[both].mean())
        # A rotating layer's flow varies across the layer.
        spreads.append(s["flows"][0][near[1]].std(axis=0).max())
    assert max(changes) > 0.05, changes
    assert max(spreads) > 0.05, spreads


def test_synthetic_depth_follows_layer_order(scene):
    depth, layers = scene["depth"][..., 0], scene["layers"]
    assert depth.min() >= 1e-3 and np.allclose(depth.reshape(7, -1).max(axis=1), 1.0)
    for k in range(7):
        ids = np.unique(layers[k])
        z = [depth[k][layers[k] == i] for i in ids]
        assert all(np.ptp(zi) == 0 for zi in z)  # one flat plane per layer
        assert all(a[0] < b[0] for a, b in zip(z, z[1:]))  # nearer layers (drawn on top): larger z


def test_synthetic_is_seeded_and_streams():
    a, b = generate_septuplet(3, 40, 48), generate_septuplet(3, 40, 48)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["frames"], generate_septuplet(4, 40, 48)["frames"])
    elements = list(synthetic_dataset(2, 40, 48, seed=3))
    assert elements[1]["id"] == b"synthetic/3/1" and elements[1]["frames"].shape == (7, 40, 48, 3)
    np.testing.assert_array_equal(elements[1]["flows"], generate_septuplet([3, 1], 40, 48)["flows"])
    with pytest.raises(ValueError, match="at least 32x32"):
        generate_septuplet(0, 16, 48)


@pytest.mark.parametrize("horizontal,vertical", [(True, False), (False, True), (True, True)])
def test_flip_keeps_frames_and_flows_consistent(scene, horizontal, vertical):
    sample = {k: tf.constant(scene[k]) for k in ("frames", "flows", "depth")}
    flipped = flip_septuplet(sample, horizontal, vertical)
    layers = scene["layers"]
    if horizontal:
        layers = layers[:, :, ::-1]
    if vertical:
        layers = layers[:, ::-1]
    psnr, _ = _warp_psnr(flipped["frames"].numpy(), flipped["flows"].numpy(), layers)
    assert (psnr > 35).all(), psnr
    np.testing.assert_array_equal(
        flipped["depth"].numpy()[..., 0] > 0.999, scene["depth"][..., 0][
            :, ::-1 if vertical else 1, ::-1 if horizontal else 1] > 0.999)
    # Without the sign correction the flipped flows would not match.
    unsigned = flip_septuplet(sample, horizontal, vertical)["flows"].numpy() * np.array(
        [-1.0 if horizontal else 1.0, -1.0 if vertical else 1.0], np.float32)
    bad, _ = _warp_psnr(flipped["frames"].numpy(), unsigned, layers)
    assert bad.mean() < psnr.mean() - 10


def _check_contract(inputs, targets, batch, h, w, depth):
    assert set(inputs) == ({"image", "flow0", "depth"} if depth else {"image", "flow0"})
    assert set(targets) == ({"frames", "flows", "depth"} if depth else {"frames", "flows"})
    shapes = {"image": (batch, h, w, 3), "flow0": (batch, h, w, 2), "depth": (batch, h, w, 1)}
    for k, v in inputs.items():
        assert v.shape == shapes[k] and v.dtype == tf.float32, k
    for k, c in (("frames", 3), ("flows", 2), ("depth", 1)):
        if k in targets:
            assert targets[k].shape == (batch, 5, h, w, c) and targets[k].dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(inputs["image"])) and float(tf.reduce_max(
        targets["frames"])) <= 1.0


def test_pipeline_prediction_mode_contract(tmp_path):
    # Unaugmented, the elements are exactly im2 / F_{2->1} and im3..7 / F_{3->2}..F_{7->6}.
    (path,) = write_synthetic_records(tmp_path, 2, H, W, seed=7, progress=False)
    raw = read_septuplets(path, with_depth=True)
    inputs, targets = next(iter(training_pipeline(
        raw, 1, crop_size=None, flip=False, shuffle=0, repeat=False, deterministic=True)))
    _check_contract(inputs, targets, 1, H, W, depth=True)
    first = generate_septuplet([7, 0], H, W)
    np.testing.assert_allclose(inputs["image"][0], first["frames"][1] / 255, atol=1e-6)
    np.testing.assert_allclose(inputs["flow0"][0], first["flows"][0], atol=1e-2, rtol=1e-3)
    np.testing.assert_allclose(targets["frames"][0], first["frames"][2:] / 255, atol=1e-6)
    np.testing.assert_allclose(targets["flows"][0], first["flows"][1:], atol=1e-2, rtol=1e-3)
    np.testing.assert_allclose(targets["depth"][0], first["depth"][2:], atol=1e-6)
    np.testing.assert_allclose(inputs["depth"][0], first["depth"][1], atol=1e-6)

    # Augmented and batched, without depth (a teacher-flow source).
    no_depth = raw.map(lambda s: {"frames": s["frames"], "flows": s["flows"]})
    ds = training_pipeline(no_depth, 2, crop_size=(32, 48), seed=5, deterministic=True)
    assert ds.element_spec[0]["image"].shape.as_list() == [2, 32, 48, 3]  # static sizes
    batches = [b for b in ds.take(3)]
    for inputs, targets in batches:
        _check_contract(inputs, targets, 2, 32, 48, depth=False)
    again = [b for b in training_pipeline(
        no_depth, 2, crop_size=(32, 48), seed=5, deterministic=True).take(3)]
    for (i1, t1), (i2, t2) in zip(batches, again):
        np.testing.assert_array_equal(i1["image"], i2["image"])
        np.testing.assert_array_equal(t1["flows"], t2["flows"])
    other = next(iter(training_pipeline(
        no_depth, 2, crop_size=(32, 48), seed=6, deterministic=True)))
    assert not np.array_equal(other[0]["image"], batches[0][0]["image"])

    # With history (a flow_history model): one frame later, the flow before flow0 added.
    inputs, targets = next(iter(training_pipeline(
        raw, 1, crop_size=None, flip=False, shuffle=0, repeat=False, deterministic=True,
        history=True)))
    np.testing.assert_allclose(inputs["image"][0], first["frames"][2] / 255, atol=1e-6)
    np.testing.assert_allclose(inputs["flow0"][0], first["flows"][1], atol=1e-2, rtol=1e-3)
    np.testing.assert_allclose(inputs["flow_before"][0], first["flows"][0], atol=1e-2, rtol=1e-3)
    np.testing.assert_allclose(targets["frames"][0], first["frames"][3:] / 255, atol=1e-6)
    np.testing.assert_allclose(targets["flows"][0], first["flows"][2:], atol=1e-2, rtol=1e-3)
    np.testing.assert_allclose(inputs["depth"][0], first["depth"][2], atol=1e-6)
    assert targets["depth"].shape[1] == 4

    with pytest.raises(ValueError, match="need 'frames' and 'flows'"):
        training_pipeline(raw.map(lambda s: {"frames": s["frames"]}), 2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="smaller than the crop size"):
        next(iter(training_pipeline(no_depth, 1, crop_size=(128, 48))))
