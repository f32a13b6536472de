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


def _generation(**changes):
    """Generation figures as `spiritnet_tf.evaluation.gate.measure_generation` returns them,
    at the gate's goals unless ``changes`` says otherwise."""
    mean = {"spearman_f1_z": 0.6, "spearman_flast_z": 0.5, "p90_p10_f1": 2.5, "outside_share": 0.001,
            "median_motion_px_448": 5.0, "last_frame_sharpness_ratio": 0.9, "closing_step_ratio": 1.1}
    mean.update(changes)
    return {"mean": mean, "photos": {}, "num_photos": 4, "seeds": [0, 1, 2], "num_frames": 6}


BASE = {"copy-frame": [30, 26, 24], "constant-velocity": [31, 26, 23]}


def test_the_passing_mode_is_chosen_even_with_a_lower_psnr():
    result = _result({**BASE, "model (previous)": [31, 27, 24.5], "model (input)": [33, 29, 23]})
    modes, chosen = choose_mode(result, {"previous": _generation(), "input": _generation()})
    assert modes["previous"]["quality_gate"]["passed"] is True
    gate = modes["input"]["quality_gate"]
    assert gate["checks"]["psnr_margin_over_copy_frame_db"]["passed"] is False and gate["passed"] is False
    assert gate["scope"] == "prediction+generation"
    assert chosen == "previous"


def test_generation_and_flow_ratio_fail_the_gate_and_the_best_psnr_is_chosen_without_a_pass():
    result = _result({**BASE, "model (previous)": [31, 27, 24.5], "model (input)": [32, 28, 25]},
                     flow_ratio={"model (input)": 0.3})
    modes, chosen = choose_mode(result, {"previous": _generation(last_frame_sharpness_ratio=0.5),
                                         "input": _generation()})
    assert modes["previous"]["quality_gate"]["checks"]["last_frame_sharpness_ratio"]["passed"] is False
    assert modes["input"]["quality_gate"]["checks"]["flow_ratio"]["passed"] is False
    assert not any(m["quality_gate"]["passed"] for m in modes.values())
    assert chosen == "input"  # higher mean PSNR; bundle() refuses it without --force
    assert modes["input"]["heldout_summary"]["psnr"] == pytest.approx(85 / 3)
    assert modes["previous"]["generation"]["mean"]["last_frame_sharpness_ratio"] == 0.5


def test_default_weights_of_from_preset(monkeypatch, tmp_path, bundled_manifest):
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
    bundled_manifest({"resample_from": "previous",
                      "dafr": {"speed_rule": "sigmoid", "near_far_ratio": 5}})
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
    assert model.config.depth_mapping == manifest.get("depth_mapping", "max")
    assert model.config.dafi_holes == manifest.get("dafi_holes", "zero")
    # The DAFR rule their gate measured is pinned, whatever DAFR's defaults are, through
    # both loaders.
    from spiritnet_tf.animation import load_model
    from spiritnet_tf.layers.dafr import DAFRConfig

    pinned = DAFRConfig.from_dict(manifest["dafr"])
    assert model.dafr.config == pinned
    assert load_model().dafr.config == pinned
    # Provenance: every training folder has its sources' record with a licence (for data
    # distilled from teachers, the footage's own record and the teachers' checksums), and
    # the commands name every step, the distillation included.
    sources = manifest["data"]["sources"]
    for source in manifest["data"]["training"]["train"]:
        if source.get("path"):
            record = sources[source["path"]]
            assert "licence" in json.dumps(record.get("sources", record)), source["path"]
            for teacher in record.get("teachers", []):
                assert len(teacher["sha256"]) == 64 and teacher["commands"]
                assert set(teacher["commands"]) <= set(manifest["commands"])
            if "command" in record:
                assert record["command"] in manifest["commands"]


@pytest.fixture
def fake_run(tmp_path, monkeypatch):
    """A finished run inside a stand-in repository ``tmp_path`` with the two expensive
    measurements replaced at their owners (`training.run.evaluate_weights`,
    `evaluation.gate.measure_generation`; the run's weights are never loaded): returns
    ``(bundle_with, installed, manifest, calls)``; ``bundle_with(psnr, generation)`` runs
    the bundle step with those held-out PSNR per step (method -> 3 values) and those
    generation figures (`_generation`). The bundled weights and manifest are files in
    ``tmp_path``."""
    import json

    from spiritnet_tf.evaluation import EvaluationResult
    from spiritnet_tf.evaluation import gate as gate_module
    from spiritnet_tf.io import weights as weights_io
    from spiritnet_tf.training import bundle as bundle_module
    from spiritnet_tf.training import run as run_module

    monkeypatch.setattr(run_module, "REPO", str(tmp_path))  # the checkout, for relative paths
    run_dir = tmp_path / "runs" / "r"
    run_dir.mkdir(parents=True)
    train_clips = [str(tmp_path / "data" / "train_videos" / "a.mp4#0"), "synthetic/0/0"]
    (run_dir / "manifest.json").write_text(json.dumps(
        {"config": {"preset": "small", "model": {"depth_side": 64, "depth_every_step": False}},
         "model_config": {"dafi_holes": "fill"}, "depth_weights": "depth/d.weights.h5",
         "data": {"train": [{"type": "videos", "path": str(tmp_path / "data" / "train_videos"),
                             "clips": train_clips}]}}))
    (tmp_path / "depth").mkdir()  # the depth net the run started from, and its record
    (tmp_path / "depth" / "MANIFEST.json").write_text(json.dumps(
        {"weights": "d.weights.h5", "training_data": {"scenes": "synthetic"}, "evaluation": {"mean": 0.2}}))
    for folder, package in (("train_videos", "films"), ("held", "clips")):  # the data scripts' records
        (tmp_path / "data" / folder).mkdir(parents=True)
        (tmp_path / "data" / folder / "SOURCES.json").write_text(json.dumps(
            {"package": package, "version": "1.0", "licence": "MIT"}))
    (run_dir / "model.weights.h5").write_bytes(b"new weights")
    photos = {name: str(tmp_path / "data" / "photos" / f"{name}.png") for name in "abcd"}
    calls = {"evaluate": [], "generation": []}
    state = {}

    def evaluate_weights(weights, data, out, **options):
        calls["evaluate"].append((weights, data, out, options))
        os.makedirs(out, exist_ok=True)  # the source record, as the real function writes it
        with open(os.path.join(out, run_module.SOURCE_FILE), "w") as f:
            json.dump({"record": {"type": "videos", "videos": [str(tmp_path / "data" / "held" / "b.mp4")],
                                  "clips": [str(tmp_path / "data" / "held" / "b.mp4#0")]}}, f)
        return EvaluationResult(**_result(state["psnr"])), {}

    def measure_generation(model, photos_given, **options):
        assert model == ("loaded", str(run_dir / "model.weights.h5"))
        calls["generation"].append(photos_given)
        return {**state["generation"], "num_photos": len(photos_given)}

    monkeypatch.setattr(run_module, "evaluate_weights", evaluate_weights)
    monkeypatch.setattr(gate_module, "measure_generation", measure_generation)
    monkeypatch.setattr(weights_io, "load_model", lambda weights, **kw: ("loaded", weights))
    monkeypatch.setattr("spiritnet_tf.cli.main", lambda *a, **k: pytest.fail("the CLI was run"))
    installed, manifest = tmp_path / "default.weights.h5", tmp_path / "MANIFEST.json"
    installed.write_bytes(b"old weights")
    manifest.write_text('{"old": true}')
    monkeypatch.setattr(bundle_module, "DEFAULT_WEIGHTS", str(installed))
    monkeypatch.setattr(bundle_module, "MANIFEST_PATH", str(manifest))

    def bundle_with(psnr, generation, force=False):
        state.update(psnr=psnr, generation=generation)
        return bundle_module.bundle(str(run_dir), str(tmp_path / "data" / "held"), photos=photos,
                                    force=force, progress=False)

    return bundle_with, installed, manifest, calls


PASSING = {**BASE, "model (previous)": [31, 27, 24.5], "model (input)": [32, 27, 24.2]}


@pytest.mark.parametrize("psnr, generation, failing", [
    ({**BASE, "model (previous)": [31, 27, 23], "model (input)": [32, 27, 22]}, _generation(),
     "psnr_margin_over_copy_frame_db"),
    (PASSING, _generation(closing_step_ratio=2.0), "closing_step_ratio"),
    (PASSING, _generation(median_motion_px_448=1.0), "median_motion_px_448"),
])
def test_bundle_refuses_weights_that_fail_the_gate_and_keeps_the_installed_ones(fake_run, psnr,
                                                                                generation, failing):
    import json

    bundle_with, installed, manifest, calls = fake_run
    with pytest.raises(SystemExit, match=f"quality gate failed in both modes.*{failing}"):
        bundle_with(psnr, generation)
    assert len(calls["evaluate"]) == 1  # it did evaluate: the run, held-out data, both modes
    weights, data, out, options = calls["evaluate"][0]
    assert out.endswith(os.path.join("r", "heldout"))
    assert options["resample_from"] == ["previous", "input"] and options["mode"] == "prediction"
    assert len(calls["generation"]) == 2  # the photos animated in both modes
    assert installed.read_bytes() == b"old weights"  # nothing copied over the bundled weights
    assert json.loads(manifest.read_text()) == {"old": True}  # and no manifest written

    # --force installs them, and the manifest records the failing gate.
    written = bundle_with(psnr, generation, force=True)
    assert installed.read_bytes() == b"new weights"
    assert written["quality_gate"]["passed"] is False
    assert written["quality_gate"]["checks"][failing]["passed"] is False
    assert json.loads(manifest.read_text())["quality_gate"]["passed"] is False


def test_bundle_installs_weights_that_pass_and_lists_every_clip_and_photo(fake_run, tmp_path):
    import json

    bundle_with, installed, manifest, calls = fake_run
    written = bundle_with(PASSING, _generation())
    assert installed.read_bytes() == b"new weights"
    assert written["quality_gate"]["passed"] is True and written["resample_from"] == "input"
    assert set(written["quality_gate"]["checks"]) >= {"psnr_margin_over_constant_velocity_db",
                                                      "spearman_f1_z", "closing_step_ratio", "num_photos"}
    data = json.loads(manifest.read_text())["data"]
    assert data["training"]["train"][0]["clips"] == ["data/train_videos/a.mp4#0", "synthetic/0/0"]
    assert data["heldout"]["videos"] == ["data/held/b.mp4"] and data["heldout"]["clips"] == ["data/held/b.mp4#0"]
    assert {n: p["path"] for n, p in data["gate_photos"].items()} == {
        n: f"data/photos/{n}.png" for n in "abcd"}
    assert data["sources"] == {"data/train_videos": {"package": "films", "version": "1.0", "licence": "MIT"},
                               "data/held": {"package": "clips", "version": "1.0", "licence": "MIT"}}
    assert data["depth_net"] == {"weights": "depth/d.weights.h5", "training_data": {"scenes": "synthetic"},
                                 "evaluation": {"mean": 0.2}}
    assert str(tmp_path) not in manifest.read_text()  # relative to the repository
    assert json.loads(manifest.read_text())["commands"][-2:] == [
        "spiritnet train (command not recorded)",
        "python -m spiritnet_tf.training.bundle runs/r --heldout data/held"]
    # the run's model section, which `bundled_overrides` applies when they are loaded
    assert json.loads(manifest.read_text())["model"] == {"depth_side": 64, "depth_every_step": False}
    assert json.loads(manifest.read_text())["dafi_holes"] == "fill"  # what the gate measured
    # the held-out protocol: one frame later only for flow_history weights
    assert json.loads(manifest.read_text())["heldout"]["one_frame_later"] is False


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
    evaluate` writes it, the photos are animated through `spiritnet_tf.animate`; weights
    that fail the gate are not installed (without force); with force the manifest records
    the failing gate and only relative paths. (Random weights alone may beat copy-frame in
    prediction mode, where the teacher flow drives them; one photo instead of the gate's
    four makes them fail whatever they do.)"""
    import json

    import numpy as np

    from spiritnet_tf.evaluation import gate as gate_module
    from spiritnet_tf.io import write_image
    from spiritnet_tf.training import bundle as bundle_module
    from spiritnet_tf.training import run as run_module

    installed = tmp_path / "weights" / "spiritnet_small.weights.h5"
    manifest_path = tmp_path / "weights" / "MANIFEST.json"
    monkeypatch.setattr(bundle_module, "DEFAULT_WEIGHTS", str(installed))
    monkeypatch.setattr(bundle_module, "MANIFEST_PATH", str(manifest_path))
    monkeypatch.setattr(gate_module, "GATE_SEEDS", (0,))  # shorter: one seed, two frames
    monkeypatch.setattr(gate_module, "GATE_FRAMES", 2)
    monkeypatch.setattr(run_module, "REPO", str(tmp_path))  # the run lies inside "the repository"
    measured, measure = {}, gate_module.measure_generation

    def measure_once(model, photos, **options):  # the forced rerun reuses the first measurement
        mode = model.config.resample_from
        measured[mode] = measured.get(mode) or measure(model, photos, **options)
        return measured[mode]

    monkeypatch.setattr(gate_module, "measure_generation", measure_once)
    photo = str(tmp_path / "photos" / "p.png")
    os.makedirs(os.path.dirname(photo))
    write_image((np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8), photo)
    run = _tiny_run(tmp_path / "run", tiny_spiritnet)
    try:
        passed = bundle_module.bundle(str(run), "synthetic:2", size="32x32", photos={"p": photo},
                                      progress=False)
    except SystemExit as e:
        assert "quality gate failed in both modes" in str(e)
    else:
        pytest.fail(f"random weights passed the gate: {json.dumps(passed['modes'], indent=1)}")
    assert not installed.exists() and not manifest_path.exists()
    from PIL import Image

    with open(run / "gate" / "gate.json") as f:  # the refused figures are kept in the run
        assert set(json.load(f)["modes"]) == {"previous", "input"}
    for mode in ("previous", "input"):  # a contact sheet per photo and mode: frames 0-2 in a row
        with Image.open(run / "gate" / mode / "p.jpg") as sheet:
            assert sheet.size == (3 * 200, 150)
    report = run / "heldout"
    assert sorted(os.listdir(report)) == ["evaluation-source.json", "evaluation.json",
                                          "evaluation.md", "evaluation.png"]
    with open(report / "evaluation.json") as f:
        methods = {row["method"] for row in json.load(f)["rows"]}
    assert {"model (previous)", "model (input)", "copy-frame"} <= methods

    manifest = bundle_module.bundle(str(run), "synthetic:2", size="32x32", photos={"p": photo},
                                    force=True, progress=False)
    assert installed.read_bytes() == (run / "model.weights.h5").read_bytes()
    assert manifest["quality_gate"]["passed"] is False
    assert manifest["quality_gate"]["checks"]["num_photos"] == {"value": 1.0, "at_least": 4, "passed": False}
    assert set(manifest["modes"]) == {"previous", "input"}
    generation = manifest["modes"]["input"]["generation"]
    assert generation["seeds"] == [0] and generation["num_frames"] == 2
    assert set(gate_module.GENERATION_FIGURES) <= set(generation["photos"]["p"]["per_seed"][0])
    assert set(measured) == {"previous", "input"}  # animated in both modes
    with open(manifest_path) as f:
        written = json.load(f)
    assert written["sha256"] == manifest["sha256"]
    assert written["data"]["training"]["train"] == ["run/clips/a.mp4"]  # relative to the checkout
    assert written["data"]["gate_photos"]["p"]["path"] == "photos/p.png"
    assert str(tmp_path) not in manifest_path.read_text()


def test_per_video_figures_split_the_held_out_clips_by_video(tiny_spiritnet, tmp_path):
    """Each video's clips are evaluated alone, named by their ids without ``#k``; the margins
    are the model's PSNR minus constant velocity's; one video alone gives no breakdown."""
    from spiritnet_tf.data import synthetic_septuplets, write_septuplets
    from spiritnet_tf.training.bundle import per_video_figures

    scenes = list(synthetic_septuplets(3, 32, 32, seed=1))
    first, second = tmp_path / "a.tfrecord", tmp_path / "b.tfrecord"
    write_septuplets(first, [{**s, "id": f"clips/a.mp4#{k}"} for k, s in enumerate(scenes[:2])])
    write_septuplets(second, [{**scenes[2], "id": "clips/b.mp4#0"}])
    models = {"model": tiny_spiritnet}
    files = [str(first), str(second)]
    clips = ["clips/a.mp4#0", "clips/a.mp4#1", "clips/b.mp4#0"]
    figures = per_video_figures(models, files, clips)
    assert sorted(figures) == ["clips/a.mp4", "clips/b.mp4"]
    assert [figures[v]["num_samples"] for v in sorted(figures)] == [2, 1]
    for f in figures.values():
        assert {"model", "constant-velocity", "copy-frame", "oracle"} <= set(f["psnr"])
        assert f["margin_over_constant_velocity_db"]["model"] == pytest.approx(
            f["psnr"]["model"] - f["psnr"]["constant-velocity"])
        assert f["flow_ratio"]["oracle"] == pytest.approx(1.0)
        assert f["flow_ratio"]["copy-frame"] == 0.0
    assert figures["clips/a.mp4"]["psnr"] != figures["clips/b.mp4"]["psnr"]
    assert per_video_figures(models, [str(first)], clips[:2]) == {}


def test_the_commands_of_a_student_name_its_teachers_and_the_distillation(tmp_path):
    """A student trained on distilled data (configs/distill_data.py's SOURCES.json, with
    the teachers' commands read by `weights_commands` from the manifest beside them) lists
    the teachers' commands and the distillation before its own training, each once."""
    import json

    from spiritnet_tf.training.bundle import _commands, weights_commands

    teacher = tmp_path / "bundled"
    teacher.mkdir()
    (teacher / "MANIFEST.json").write_text(json.dumps({"commands": [
        "make default-weights", "sh configs/default_weights_data.sh data", "spiritnet train --out a"]}))
    member = tmp_path / "runs" / "m"
    member.mkdir(parents=True)
    (member / "manifest.json").write_text(json.dumps({"command": "/venv/bin/spiritnet train --out m"}))
    assert weights_commands(str(tmp_path / "lone.weights.h5")) is None
    assert weights_commands(str(member / "model.weights.h5")) == ["spiritnet train --out m"]
    distilled = {"command": "python configs/distill_data.py c.json out t.weights.h5 --every 1",
                 "teachers": [{"commands": weights_commands(str(teacher / "w.weights.h5"))}]}
    sources = {"data/out/source1": distilled, "data/out/source2": distilled,
               "data/held": {"package": "clips"}}
    run = {"command": "/venv/bin/spiritnet train --config s.json --out runs/s"}
    assert _commands(run, "runs/s", "data/held", lambda p: p, sources) == [
        "make default-weights", "sh configs/default_weights_data.sh data", "spiritnet train --out a",
        distilled["command"], "spiritnet train --config s.json --out runs/s",
        f"python -m spiritnet_tf.training.bundle {os.path.abspath('runs/s')} --heldout "
        f"{os.path.abspath('data/held')}"]
