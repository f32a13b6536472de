"""``spiritnet evaluate``: the model and the baselines on a small synthetic set."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from spiritnet_tf import cli
from spiritnet_tf.model import SpiritNet
from spiritnet_tf.training import evaluate_model, load_source, parse_source_spec

from conftest import TINY

METHODS = ["model", "copy-frame", "constant-velocity", "oracle"]


@pytest.fixture(scope="module")
def tiny_model():
    model = SpiritNet.from_preset("small", **TINY)
    model.build()
    return model


@pytest.fixture(scope="module")
def weights(tiny_model, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("weights") / "tiny.keras")
    tiny_model.save(path)
    return path


def _rows(out):
    with open(os.path.join(out, "evaluation.json")) as f:
        return json.load(f)


def test_prediction_mode_oracle_best_one_row_per_method_and_step(tmp_path, weights, capsys):
    out = str(tmp_path / "eval")
    args = ["evaluate", "--data", "synthetic:3", "--size", "32x32", "--seed", "5",
            "--weights", weights, "--mode", "prediction", "--out", out, "--quiet",
            "--batch-size", "2"]
    assert cli.main(args) == 0
    report = _rows(out)
    assert report["mode"] == "prediction" and report["num_samples"] == 3
    keys = [(r["method"], r["step"]) for r in report["rows"]]
    assert keys == [(m, t) for m in METHODS for t in range(1, 6)]  # each once, in order
    for row in report["rows"]:
        assert set(row) >= {"psnr", "ssim", "epe", "flow_ratio", "sharpness_ratio",
                            "temporal_consistency"}
    psnr = {s["method"]: s["psnr"] for s in report["summary"]}
    assert psnr["oracle"] == max(psnr.values()), psnr
    assert {s["method"]: s["epe"] for s in report["summary"]}["oracle"] == pytest.approx(0.0)
    for name in ("evaluation.md", "evaluation.png", "evaluation-source.json"):
        assert os.path.getsize(os.path.join(out, name)) > 0
    with open(os.path.join(out, "evaluation-source.json")) as f:
        assert json.load(f)["record"]["clips"] == [f"synthetic/5/{i}" for i in range(3)]
    assert "| oracle |" in capsys.readouterr().out
    # Existing reports are kept unless --overwrite.
    assert cli.main(args) == 1
    assert "--overwrite" in capsys.readouterr().err


def test_generation_mode_baselines_start_from_the_models_dafr_flow(tiny_model):
    septuplets, _ = load_source(parse_source_spec("synthetic:2", height=32, width=32, seed=3))
    result = evaluate_model(tiny_model, septuplets, "generation", batch_size=2, seed=7,
                            progress=False)
    assert result.num_frames == 6  # state0 = im1, targets im2..im7
    assert [(r["method"], r["step"]) for r in result.rows] == [
        (m, t) for m in METHODS for t in range(1, 7)]
    # Constant velocity re-applies flow0, so its flow ratio is |DAFR flow| / |teacher|:
    # the same draw as the model's own (seed 7), computed here independently.
    frames = next(iter(septuplets.batch(2)))["frames"]
    image = tf.image.convert_image_dtype(frames[:, 0], tf.float32)
    z = tiny_model.cell.estimate_depth(image)
    flow0 = tiny_model.dafr(z, tf.constant(7, tf.int64))
    teacher = next(iter(septuplets.batch(2)))["flows"]
    expected = float(tf.reduce_mean(tf.norm(flow0, axis=-1))) / float(
        tf.reduce_mean(tf.norm(teacher, axis=-1)))
    cv = {s["method"]: s for s in result.summary}["constant-velocity"]
    assert cv["flow_ratio"] == pytest.approx(expected, rel=1e-3)
    assert np.isfinite([r["psnr"] for r in result.rows]).all()


def test_a_flow_history_model_is_evaluated_one_frame_later_beside_the_baselines(tiny_model):
    """Prediction mode for a flow_history model starts at im3 with the flow before flow0
    (4 steps) for every method; ``history=True`` puts a model without it there too."""
    septuplets, _ = load_source(parse_source_spec("synthetic:2", height=32, width=32, seed=3))
    history_model = SpiritNet.from_preset("small", flow_history=True, **TINY)
    result = evaluate_model({"model": history_model, "plain": tiny_model}, septuplets,
                            "prediction", batch_size=2, progress=False)
    assert result.num_frames == 4
    plain = evaluate_model(tiny_model, septuplets, "prediction", batch_size=2, progress=False,
                           history=True)
    psnr = lambda r: {s["method"]: s["psnr"] for s in r.summary}  # noqa: E731
    for method in ("plain", "constant-velocity", "copy-frame"):
        assert psnr(result)[method] == pytest.approx(psnr(plain)["model" if method == "plain"
                                                                 else method], abs=1e-4)


def test_bad_data_source_is_named(tmp_path, capsys):
    assert cli.main(["evaluate", "--data", str(tmp_path / "nothing"), "--weights", "none",
                     "--out", str(tmp_path / "e")]) == 1
    assert "nothing" in capsys.readouterr().err
    with pytest.raises(ValueError, match="synthetic:N"):
        parse_source_spec("synthetic:many")


def test_corrupt_weights_are_refused_before_the_data(tmp_path, capsys, monkeypatch):
    from spiritnet_tf.training import data as training_data

    def refuse(*args, **kwargs):
        raise AssertionError("the data was read before --weights was checked")

    monkeypatch.setattr(training_data, "load_source", refuse)
    bad = tmp_path / "model.keras"
    bad.write_bytes(b"not a zip")
    assert cli.main(["evaluate", "--data", "synthetic:1", "--weights", str(bad),
                     "--out", str(tmp_path / "e")]) == 1
    err = capsys.readouterr().err
    assert "--weights" in err and "not a SpiritNet weights file (not a Keras .keras archive" in err
    assert not (tmp_path / "e").exists()
