"""Evaluation: metrics against independent computations, baselines, the table and its files."""

import json

import cv2
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from spiritnet_tf.evaluation import (
    BASELINES,
    bilinear_warp,
    constant_velocity,
    copy_frame,
    epe,
    evaluate,
    flow_magnitude,
    flow_ratio,
    oracle,
    psnr,
    quality_gate,
    sharpness,
    sharpness_ratio,
    ssim,
    temporal_consistency,
    write_report,
)


def _texture(height, width, seed):
    noise = np.random.default_rng(seed).random((height, width, 3)).astype(np.float32)
    return cv2.GaussianBlur(noise, (0, 0), 1.5)


def _sequence(seed, height=32, width=48, shifts=((0, 0), (1, 0), (3, 1), (6, 2), (10, 3))):
    """A window sliding over a larger texture: content moves by (sx, sy) px in total.

    Frame k shows canvas(x + origin - s_k), so its backward flow is -(s_k - s_{k-1}).
    Returns inputs (frame 1, flow0 = F_{1->0}) and targets (frames 2.., flows F_{k->k-1}).
    """
    canvas = _texture(height + 20, width + 20, seed)
    frames = [canvas[10 - sy : 10 - sy + height, 10 - sx : 10 - sx + width] for sx, sy in shifts]
    flows = [
        np.broadcast_to(np.array([a[0] - b[0], a[1] - b[1]], np.float32), (height, width, 2))
        for a, b in zip(shifts[:-1], shifts[1:])
    ]
    inputs = {"image": frames[1], "flow0": flows[0]}
    targets = {"frames": np.stack(frames[2:]), "flows": np.stack(flows[1:])}
    return inputs, targets


def _dataset(num=2):
    samples = [_sequence(seed) for seed in range(num)]
    stacked = tf.nest.map_structure(lambda *xs: np.stack(xs), *samples)
    return tf.data.Dataset.from_tensor_slices(stacked).batch(1)


# ----------------------------------------------------------------------------- metrics


def test_psnr_against_tf_and_numpy():
    rng = np.random.default_rng(0)
    a = rng.random((2, 3, 16, 20, 3)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1).astype(np.float32)
    ours = psnr(a, b).numpy()
    assert ours.shape == (2, 3)
    mse = ((a.astype(np.float64) - b) ** 2).mean(axis=(-3, -2, -1))
    np.testing.assert_allclose(ours, 10 * np.log10(1 / mse), rtol=1e-5)
    np.testing.assert_allclose(ours, tf.image.psnr(a, b, max_val=1.0).numpy(), rtol=1e-5)
    assert psnr(a, a).numpy().min() == pytest.approx(100.0)  # floored MSE, not inf


def test_ssim_against_tf_image_ssim():
    rng = np.random.default_rng(1)
    a = np.stack([_texture(24, 30, s) for s in range(4)]).reshape(2, 2, 24, 30, 3)
    b = np.clip(a + rng.normal(0, 0.03, a.shape), 0, 1).astype(np.float32)
    ours = ssim(a, b).numpy()
    assert ours.shape == (2, 2)
    reference = tf.image.ssim(a, b, max_val=1.0).numpy()
    np.testing.assert_allclose(ours, reference, atol=1e-5)
    assert 0.3 < ours.min() and ours.max() < 0.99
    np.testing.assert_allclose(ssim(a, a).numpy(), 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="11x11"):
        ssim(np.zeros((1, 8, 8, 3)), np.zeros((1, 8, 8, 3)))


def test_flow_metrics_against_numpy():
    rng = np.random.default_rng(2)
    p = rng.normal(size=(3, 5, 6, 2)).astype(np.float32)
    t = rng.normal(size=(3, 5, 6, 2)).astype(np.float32)
    np.testing.assert_allclose(
        epe(p, t).numpy(), np.sqrt(((p - t) ** 2).sum(-1)).mean(axis=(1, 2)), rtol=1e-5
    )
    mag_p, mag_t = np.linalg.norm(p, axis=-1).mean(), np.linalg.norm(t, axis=-1).mean()
    np.testing.assert_allclose(flow_magnitude(p).numpy().mean(), mag_p, rtol=1e-5)
    np.testing.assert_allclose(flow_ratio(p, t).numpy(), mag_p / mag_t, rtol=1e-5)
    assert float(flow_ratio(np.zeros_like(p), t)) == 0.0


def test_sharpness_is_laplacian_variance_of_luma():
    image = _texture(30, 40, 3)
    luma = image @ np.array([0.299, 0.587, 0.114], np.float32)
    laplacian = cv2.Laplacian(luma.astype(np.float64), cv2.CV_64F, ksize=1)[1:-1, 1:-1]
    np.testing.assert_allclose(sharpness(image[None]).numpy()[0], laplacian.var(), rtol=1e-4)
    blurred = cv2.GaussianBlur(image, (0, 0), 1.0)
    ratio = float(sharpness_ratio(blurred[None], image[None])[0])
    assert 0 < ratio < 0.5
    assert float(sharpness_ratio(image[None], image[None])[0]) == pytest.approx(1.0)


def test_bilinear_warp_against_opencv_remap():
    image = _texture(20, 24, 4)
    flow = np.random.default_rng(5).uniform(-2, 2, (20, 24, 2)).astype(np.float32)
    ours = bilinear_warp(image[None], flow[None]).numpy()[0]
    ys, xs = np.mgrid[0:20, 0:24].astype(np.float32)
    reference = cv2.remap(image, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR)
    inside = (xs + flow[..., 0] >= 0) & (xs + flow[..., 0] <= 23)
    inside &= (ys + flow[..., 1] >= 0) & (ys + flow[..., 1] <= 19)
    np.testing.assert_allclose(ours[inside], reference[inside], atol=1e-5)
    np.testing.assert_array_equal(ours[~inside], image[~inside])  # copy rule


def test_temporal_consistency():
    inputs, _ = _sequence(0)
    image = inputs["image"][None]
    flows = np.broadcast_to(np.array([-1.0, 0.0], np.float32), (1, 3, 32, 48, 2))
    frames = constant_velocity(image, flows[:, 0], 3)["frames"].numpy()
    tc = temporal_consistency(frames, flows, image).numpy()
    assert tc.shape == (1, 3) and tc.max() < 1e-6
    shaken = frames.copy()
    shaken[:, 1] = np.clip(shaken[:, 1] + 0.1, 0, 1)
    tc = temporal_consistency(shaken, flows, image).numpy()[0]
    # step 2 differs from its own warp by the shake; step 3 warps the shaken frame
    expected_2 = np.abs(shaken[0, 1] - frames[0, 1]).mean()
    np.testing.assert_allclose(tc[1], expected_2, rtol=1e-4)
    assert tc[0] < 1e-6 and tc[2] > 0.05


# ----------------------------------------------------------------------------- baselines


def test_baselines_share_the_model_contract():
    inputs, targets = _sequence(1)
    image, flow0 = inputs["image"][None], inputs["flow0"][None]
    teacher = targets["flows"][None]
    for name, predict in BASELINES.items():
        out = predict(image, flow0, 3, teacher_flows=teacher)
        assert out["frames"].shape == (1, 3, 32, 48, 3), name
        assert out["flows"].shape == (1, 3, 32, 48, 2), name
    copy = copy_frame(image, flow0, 3)
    np.testing.assert_array_equal(copy["frames"].numpy()[0, 2], image[0])
    assert not copy["flows"].numpy().any()
    cv = constant_velocity(image, flow0, 2)
    np.testing.assert_array_equal(cv["flows"].numpy()[0, 1], flow0[0])
    twice = bilinear_warp(bilinear_warp(image, flow0), flow0).numpy()
    np.testing.assert_allclose(cv["frames"].numpy()[:, 1], twice, atol=1e-6)
    best = oracle(image, flow0, 3, teacher_flows=teacher)
    np.testing.assert_array_equal(best["flows"], teacher)
    # Frame 2 = the input warped once by the composed flow F_2 + F_1(x + F_2(x)).
    f1, f2 = teacher[:, 0], teacher[:, 1]
    composed = f2 + bilinear_warp(f1, f2).numpy()
    np.testing.assert_allclose(best["frames"].numpy()[:, 1], bilinear_warp(image, composed),
                               atol=1e-6)
    with pytest.raises(ValueError, match="teacher_flows"):
        oracle(image, flow0, 3)
    with pytest.raises(ValueError, match=r"\[B, >=5"):
        oracle(image, flow0, 5, teacher_flows=teacher)


# ----------------------------------------------------------------------------- evaluate


def test_evaluate_prediction_mode_ranks_the_oracle_first(tmp_path):
    result = evaluate(dict(BASELINES), _dataset(2), mode="prediction")
    assert result.num_samples == 2 and result.num_frames == 3
    assert [(r["method"], r["step"]) for r in result.rows] == [
        (m, t) for m in BASELINES for t in (1, 2, 3)
    ]
    by = {(r["method"], r["step"]): r for r in result.rows}
    for t in (1, 2, 3):
        best = max(BASELINES, key=lambda m: by[(m, t)]["psnr"])
        assert best == "oracle"
        assert by[("oracle", t)]["epe"] == pytest.approx(0.0, abs=1e-6)
        assert by[("copy-frame", t)]["flow_ratio"] == 0.0
        assert by[("copy-frame", t)]["sharpness_ratio"] == pytest.approx(1.0)
    # the texture accelerates: flow0 moves 1 px, the teacher 2, 3, 4 px per step
    np.testing.assert_allclose(
        [by[("constant-velocity", t)]["flow_ratio"] for t in (1, 2, 3)],
        [np.hypot(1, 0) / np.hypot(2, 1), 1 / np.hypot(3, 1), 1 / np.hypot(4, 1)],
        rtol=1e-5,
    )
    assert by[("oracle", 3)]["flow_ratio"] == pytest.approx(1.0)
    summary = {s["method"]: s for s in result.summary}
    assert summary["oracle"]["psnr"] > summary["constant-velocity"]["psnr"] > summary[
        "copy-frame"
    ]["psnr"]
    assert quality_gate(result, "oracle")["passed"]
    checks = quality_gate(result, "constant-velocity")["checks"]
    assert checks["psnr_margin_over_copy_frame_db"]["passed"] and not checks["flow_ratio"]["passed"]
    assert checks["psnr_margin_over_constant_velocity_db"]["value"] == 0.0  # below the 0.3 dB margin
    assert not checks["psnr_margin_over_constant_velocity_db"]["passed"]
    assert not quality_gate(result, "copy-frame")["checks"]["psnr_margin_over_copy_frame_db"]["passed"]
    with pytest.raises(ValueError, match="needs results for model"):
        quality_gate(result)

    paths = write_report(result, tmp_path / "report")
    data = json.loads(open(paths["json"]).read())
    assert len(data["rows"]) == 9 and data["mode"] == "prediction"
    assert {row["method"] for row in data["rows"]} == set(BASELINES)
    markdown = open(paths["markdown"]).read()
    assert "| oracle |" in markdown and "step 3" in markdown
    plot = np.asarray(Image.open(paths["plot"]).convert("RGB"))
    assert plot.shape == (480, 800, 3)
    assert len(np.unique(plot.reshape(-1, 3), axis=0)) > 10  # lines and text were drawn


def test_evaluate_generation_mode_uses_the_callers_flow0():
    with pytest.raises(ValueError, match="flow0_fn"):
        evaluate(dict(BASELINES), _dataset(1), mode="generation")
    result = evaluate(
        {"copy-frame": copy_frame, "constant-velocity": constant_velocity},
        _dataset(1),
        mode="generation",
        flow0_fn=lambda inputs: tf.zeros_like(inputs["flow0"]),
    )
    by = {(r["method"], r["step"]): r for r in result.rows}
    for t in (1, 2, 3):  # zero flow0: constant velocity is the copy
        assert by[("constant-velocity", t)]["psnr"] == pytest.approx(by[("copy-frame", t)]["psnr"])


def test_evaluate_checks_predictor_outputs():
    def wrong(image, flow0, num_frames, *, teacher_flows=None):
        return {"frames": image[:, None], "flows": flow0[:, None]}

    with pytest.raises(ValueError, match="'wrong' returned frames of shape"):
        evaluate({"wrong": wrong}, _dataset(1))
    with pytest.raises(ValueError, match="mode must be"):
        evaluate(dict(BASELINES), _dataset(1), mode="dreaming")


def test_evaluate_hands_the_flow_before_flow0_to_every_predictor_when_the_inputs_carry_it():
    seen = []

    def model(image, flow0, num_frames, *, teacher_flows=None, flow_before=None):
        seen.append(None if flow_before is None else np.asarray(flow_before))
        return constant_velocity(image, flow0, num_frames)

    plain = evaluate({"model": model, **BASELINES}, _dataset(1))
    samples = [(dict(inputs, flow_before=-inputs["flow0"]), targets)
               for inputs, targets in _dataset(1)]
    history = evaluate({"model": model, **BASELINES}, samples)
    assert seen[0] is None
    np.testing.assert_array_equal(seen[1], -samples[0][0]["flow0"].numpy())
    # The baselines ignore it: same figures.
    assert [r["psnr"] for r in history.summary] == [r["psnr"] for r in plain.summary]
