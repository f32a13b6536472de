"""The default-weights bundle step: gate per resampling mode and the choice between them."""

import os

import pytest

from spiritnet_tf.training.bundle import choose_mode

METHODS = ("model (previous)", "model (input)", "copy-frame", "constant-velocity")


def _result(psnr, flow_ratio=None):
    """An evaluation.json-shaped dict with per-step PSNR ``psnr[method]`` (3 steps)."""
    flow_ratio = flow_ratio or {}
    rows, summary = [], []
    for method in METHODS:
        for step, value in enumerate(psnr[method], 1):
            rows.append({"method": method, "step": step, "psnr": value})
        summary.append({"method": method, "psnr": sum(psnr[method]) / 3,
                        "flow_ratio": flow_ratio.get(method, 0.9)})
    return {"mode": "prediction", "num_samples": 4, "num_frames": 3, "rows": rows,
            "summary": summary}


def _example(sharpness, motion=1.0):
    return {"sharpness_ratio": sharpness, "motion_px": motion}


BASE = {"copy-frame": [30, 26, 24], "constant-velocity": [31, 26, 23]}


def test_the_passing_mode_is_chosen_even_with_a_lower_psnr():
    result = _result({**BASE, "model (previous)": [31, 27, 24.5], "model (input)": [33, 29, 23]})
    modes, chosen = choose_mode(result, {"previous": _example(0.9), "input": _example(0.95)})
    assert modes["previous"]["quality_gate"]["passed"] is True
    gate = modes["input"]["quality_gate"]
    assert gate["psnr_above_copy_frame_every_step"] is False and gate["passed"] is False
    assert chosen == "previous"


def test_sharpness_and_flow_ratio_fail_the_gate_and_the_best_psnr_is_chosen_without_a_pass():
    result = _result({**BASE, "model (previous)": [31, 27, 24.5], "model (input)": [32, 28, 25]},
                     flow_ratio={"model (input)": 0.3})
    modes, chosen = choose_mode(result, {"previous": _example(0.5), "input": _example(0.9)})
    assert modes["previous"]["quality_gate"]["example_sharpness_at_least_0.8"] is False
    assert modes["input"]["quality_gate"]["flow_ratio_at_least_min"] is False
    assert not any(m["quality_gate"]["passed"] for m in modes.values())
    assert chosen == "input"  # higher mean PSNR; bundle() refuses it without --force
    assert modes["input"]["heldout_summary"]["psnr"] == pytest.approx(85 / 3)


def test_too_little_motion_on_the_example_fails_the_gate():
    result = _result({**BASE, "model (previous)": [31, 27, 24.5], "model (input)": [32, 28, 25]})
    modes, chosen = choose_mode(result, {"previous": _example(0.9, 0.2), "input": _example(0.9, 0.6)})
    assert modes["previous"]["quality_gate"]["example_motion_at_least_0.5px"] is False
    assert modes["previous"]["quality_gate"]["passed"] is False
    assert modes["input"]["quality_gate"]["passed"] is True and chosen == "input"


def test_default_weights_of_from_preset(monkeypatch, tmp_path):
    from spiritnet_tf import config as config_module
    from spiritnet_tf.model import SpiritNet

    with pytest.raises(ValueError, match="'small' preset only"):
        SpiritNet.from_preset("paper", weights="default")
    monkeypatch.setattr(config_module, "DEFAULT_WEIGHTS", str(tmp_path / "absent.weights.h5"))
    with pytest.raises(FileNotFoundError, match="make default-weights"):
        SpiritNet.from_preset("small", weights="default")
    trained = SpiritNet.from_preset("small", context_width=8)
    trained.build()
    path = tmp_path / "present.weights.h5"
    trained.save_weights(path)
    monkeypatch.setattr(config_module, "DEFAULT_WEIGHTS", str(path))
    loaded = SpiritNet.from_preset("small", weights="default")
    assert all((a == b).all() for a, b in zip(loaded.get_weights(), trained.get_weights()))
    assert loaded.config.resample_from == "input"  # the preset's, without a manifest
    # The manifest beside the weights records the resample_from chosen by evaluation.
    (tmp_path / "MANIFEST.json").write_text(
        '{"resample_from": "previous", "dafr": {"speed_rule": "sigmoid", "near_far_ratio": 5}}')
    monkeypatch.setattr(config_module, "DEFAULT_MANIFEST", str(tmp_path / "MANIFEST.json"))
    assert SpiritNet.from_preset("small", weights="default").config.resample_from == "previous"
    dafr = SpiritNet.from_preset("small", weights="default").dafr.config
    assert (dafr.speed_rule, dafr.near_far_ratio) == ("sigmoid", 5)  # the manifest's DAFR rule
    assert SpiritNet.from_preset("small").dafr.config.speed_rule == "linear"  # not without it
    assert SpiritNet.from_preset("small", weights="default",
                                 resample_from="input").config.resample_from == "input"


def test_bundled_weights_match_their_manifest():
    import hashlib
    import json
    import os

    from spiritnet_tf.config import DEFAULT_WEIGHTS
    from spiritnet_tf.model import SpiritNet
    from spiritnet_tf.training.bundle import MANIFEST_PATH

    with open(MANIFEST_PATH) as f:
        manifest = json.load(f)
    with open(DEFAULT_WEIGHTS, "rb") as f:
        blob = f.read()
    assert manifest["sha256"] == hashlib.sha256(blob).hexdigest()
    assert manifest["bytes"] == len(blob) <= 25 * 2**20
    gate = manifest["quality_gate"]
    assert gate["passed"] is True
    assert all(v for k, v in gate.items() if isinstance(v, bool))
    assert set(manifest["modes"]) == {"previous", "input"}  # both evaluated and recorded
    assert manifest["resample_from"] in manifest["modes"]
    assert os.path.basename(DEFAULT_WEIGHTS) == manifest["weights"]
    model = SpiritNet.from_preset("small", weights="default")
    assert model.config.resample_from == manifest["resample_from"]
    assert model.config.depth_mapping == manifest.get("depth_mapping", "max") == "max"
    # The DAFR rule their gate measured is pinned (today: the earlier sigmoid rule), whatever
    # DAFR's defaults are, through both loaders.
    from spiritnet_tf.animation import load_model
    from spiritnet_tf.layers.dafr import DAFRConfig

    pinned = DAFRConfig.from_dict(manifest["dafr"])
    assert model.dafr.config == pinned
    assert load_model().dafr.config == pinned


@pytest.fixture
def failing_run(tmp_path, monkeypatch):
    """A finished run whose held-out evaluation fails the gate in both modes (the model
    below copy-frame at step 3), with the evaluation and example check replaced by
    fixtures; the bundled weights and manifest point at files in ``tmp_path``."""
    import json

    from spiritnet_tf.evaluation import EvaluationResult
    from spiritnet_tf.training import bundle as bundle_module
    from spiritnet_tf.training import run as run_module

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "manifest.json").write_text(json.dumps({"config": {"preset": "small"}}))
    (run_dir / "model.weights.h5").write_bytes(b"new weights")
    failing = _result({**BASE, "model (previous)": [31, 27, 23], "model (input)": [32, 27, 22]})
    calls = []

    def evaluate_weights(weights, data, out, **options):
        calls.append((weights, data, out, options))
        return EvaluationResult(**failing), {}

    # The bundle step calls the evaluation function itself, never the command line.
    monkeypatch.setattr(run_module, "evaluate_weights", evaluate_weights)
    monkeypatch.setattr("spiritnet_tf.cli.main", lambda *a, **k: pytest.fail("the CLI was run"))
    monkeypatch.setattr(bundle_module, "example_check", lambda weights, mode: _example(0.9))
    installed, manifest = tmp_path / "default.weights.h5", tmp_path / "MANIFEST.json"
    installed.write_bytes(b"old weights")
    manifest.write_text('{"old": true}')
    monkeypatch.setattr(bundle_module, "DEFAULT_WEIGHTS", str(installed))
    monkeypatch.setattr(bundle_module, "MANIFEST_PATH", str(manifest))
    return run_dir, installed, manifest, calls


def test_bundle_refuses_weights_that_fail_the_gate_and_keeps_the_installed_ones(failing_run,
                                                                                tmp_path):
    import json

    from spiritnet_tf.training.bundle import bundle

    run_dir, installed, manifest, calls = failing_run
    with pytest.raises(SystemExit, match="quality gate failed in both modes"):
        bundle(str(run_dir), str(tmp_path / "heldout"), progress=False)
    assert len(calls) == 1  # it did evaluate: the run, held-out data, both modes, prediction
    weights, data, out, options = calls[0]
    assert (weights, data, out) == (str(run_dir), str(tmp_path / "heldout"), str(run_dir / "heldout"))
    assert options["resample_from"] == ["previous", "input"] and options["mode"] == "prediction"
    assert installed.read_bytes() == b"old weights"
    assert json.loads(manifest.read_text()) == {"old": True}

    # --force installs them, and the manifest records the failing gate.
    written = bundle(str(run_dir), str(tmp_path / "heldout"), progress=False, force=True)
    assert installed.read_bytes() == b"new weights"
    assert written["quality_gate"]["passed"] is False
    assert json.loads(manifest.read_text())["quality_gate"]["passed"] is False


def _tiny_run(folder, model):
    """A finished-run folder as `spiritnet train` leaves it, holding ``model`` (random weights)."""
    import json

    folder.mkdir()
    model.save(folder / "model.keras")
    model.save_weights(folder / "model.weights.h5")
    (folder / "manifest.json").write_text(json.dumps(
        {"name": "tiny", "config": {"preset": "small"}, "model_config": model.config.to_dict(),
         "data": {"train": [str(folder / "clips" / "a.mp4")]}}))
    return folder


def test_bundle_evaluates_a_real_run_and_refuses_weights_that_fail(tiny_spiritnet, tmp_path,
                                                                monkeypatch):
    """End to end on a tiny random run: the held-out report is written as `spiritnet
    evaluate` writes it; weights that fail the gate are not installed (without force); with
    force the manifest records the failing gate and only relative paths. (Random weights
    alone may beat copy-frame in prediction mode, where the teacher flow drives them, so the
    example's sharpness bound is raised out of reach to make them fail.)"""
    import json

    from spiritnet_tf.training import bundle as bundle_module
    from spiritnet_tf.training import run as run_module

    installed = tmp_path / "weights" / "spiritnet_small.weights.h5"
    manifest_path = tmp_path / "weights" / "MANIFEST.json"
    monkeypatch.setattr(bundle_module, "DEFAULT_WEIGHTS", str(installed))
    monkeypatch.setattr(bundle_module, "MANIFEST_PATH", str(manifest_path))
    monkeypatch.setattr(bundle_module, "EXAMPLE_FRAMES", 1)  # the example animation, shorter
    monkeypatch.setattr(bundle_module, "MIN_SHARPNESS_RATIO", float("inf"))  # fails in both modes
    monkeypatch.setattr(run_module, "REPO", str(tmp_path))  # the run lies inside "the repository"
    run = _tiny_run(tmp_path / "run", tiny_spiritnet)
    try:
        passed = bundle_module.bundle(str(run), "synthetic:2", size="32x32", progress=False)
    except SystemExit as e:
        assert "quality gate failed in both modes" in str(e)
    else:
        pytest.fail(f"random weights passed the gate: {json.dumps(passed['modes'], indent=1)}")
    assert not installed.exists() and not manifest_path.exists()
    report = run / "heldout"
    assert sorted(os.listdir(report)) == ["evaluation-source.json", "evaluation.json",
                                          "evaluation.md", "evaluation.png"]
    with open(report / "evaluation.json") as f:
        methods = {row["method"] for row in json.load(f)["rows"]}
    assert {"model (previous)", "model (input)", "copy-frame"} <= methods

    manifest = bundle_module.bundle(str(run), "synthetic:2", size="32x32", force=True,
                                    progress=False)
    assert installed.read_bytes() == (run / "model.weights.h5").read_bytes()
    assert manifest["quality_gate"]["passed"] is False
    assert manifest["quality_gate"]["example_sharpness_at_least_0.8"] is False
    assert set(manifest["modes"]) == {"previous", "input"}
    with open(manifest_path) as f:
        written = json.load(f)
    assert written["sha256"] == manifest["sha256"]
    assert written["training"]["data"]["train"] == ["run/clips/a.mp4"]  # relative to the checkout
    assert str(tmp_path) not in manifest_path.read_text()
