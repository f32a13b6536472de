"""Ensembles (`SpiritNetConfig.members`): the members' mean, joining runs, saving, errors."""

import json
import os

import numpy as np
import pytest

from spiritnet_tf.io.weights import load_model
from spiritnet_tf.model import SpiritNet
from spiritnet_tf.training.ensemble import join_models, join_runs, main

from conftest import TINY

# The recipe of the bundled ensemble (depth once, carried; the flow's change seen), and the
# paper's rule (the shared depth net runs on every member's own frames).
RECIPE = dict(resample_from="input", flow_history=True, synthesis_history=True,
              depth_every_step=False, warp_outside="clamp")
PAPER_RULE = dict(resample_from="previous")
IMAGE = np.random.default_rng(0).random((1, 32, 64, 3)).astype(np.float32)


_MADE = {}  # (overrides, seed) -> (random generator, the models made so far)


def _members(count, seed=0, **overrides):
    """``count`` tiny models of one configuration with the first one's depth net and DAFR
    and their own other weights (a random initialisation's networks start as identities,
    so every member's are moved apart). Made once per configuration for the module (a
    model costs seconds to build): the tests join and run them, never change them."""
    rng, models = _MADE.setdefault((tuple(sorted(overrides.items())), seed),
                                   (np.random.default_rng(seed), []))
    while len(models) < count:
        model = SpiritNet.from_preset("small", **TINY, **overrides)
        model.build()
        depth = {id(v) for v in model.depth_net.weights}
        for v in model.cell.weights:
            if id(v) not in depth and v.trainable:
                v.assign(v.numpy() + rng.normal(0, 0.05, v.shape).astype(np.float32))
        if models:
            model.depth_net.set_weights(models[0].depth_net.get_weights())
            model.dafr.set_weights(models[0].dafr.get_weights())
        models.append(model)
    return models[:count]


@pytest.mark.parametrize("overrides", [RECIPE, PAPER_RULE], ids=["recipe", "paper-rule"])
def test_an_ensemble_gives_the_mean_of_its_members(overrides):
    """Frames, flows and residuals of the joined model are the members' means, through
    ``call`` and through ``infer`` (eager and traced), from one DAFR flow0 and one depth."""
    members = _members(2, **overrides)
    ensemble = join_models(members)
    assert ensemble.config.members == 2 and len(ensemble.cells) == 2
    assert ensemble.member_cells[0].depth_net is ensemble.depth_net  # one depth net
    kwargs = dict(num_frames=3, seed=5, return_residuals=True)
    alone = [m.infer(IMAGE, trace=False, **kwargs) for m in members]
    assert np.abs(alone[0]["frames"].numpy() - alone[1]["frames"].numpy()).max() > 0.05  # they differ
    for what, got in (("call", ensemble(IMAGE, **kwargs)),
                      ("infer eager", ensemble.infer(IMAGE, trace=False, **kwargs)),
                      ("infer traced", ensemble.infer(IMAGE, trace=True, **kwargs))):
        for key in ("frames", "flows", "residuals"):
            np.testing.assert_allclose(got[key].numpy(), (alone[0][key] + alone[1][key]).numpy() / 2,
                                       atol=1e-5, err_msg=f"{what}: {key}")
    step = ensemble._traced_functions["step"]
    assert step.experimental_get_tracing_count() == 1  # one trace for both members
    # "auto" traces an ensemble's steps from a shape's first call (a single model's from
    # its second): a new shape, one more trace, the same results as eager.
    smaller = IMAGE[:, :, :32]  # another padded shape (multiples of 32)
    want = ensemble.infer(smaller, trace=False, **kwargs)
    got = ensemble.infer(smaller, **kwargs)
    assert step.experimental_get_tracing_count() == 2
    for key in ("frames", "flows", "residuals"):
        np.testing.assert_allclose(got[key].numpy(), want[key].numpy(), atol=1e-5, err_msg=key)


def _fake_run(folder, model, seed, data=None):
    """A finished run directory as `spiritnet train` leaves one (the parts joining reads)."""
    os.makedirs(folder)
    model.save_weights(os.path.join(folder, "model.weights.h5"))
    overrides = {k: list(v) if isinstance(v, tuple) else v for k, v in {**TINY, **RECIPE}.items()}
    manifest = {"name": os.path.basename(folder), "steps": 10,
                "config": {"preset": "small", "model": overrides, "seed": seed},
                "model_config": model.config.to_dict(), "data": data or {"train": ["clip#0"]},
                "command": f"spiritnet train --out {folder}", "git_revision": "abc"}
    with open(os.path.join(folder, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    return folder


def test_joined_runs_load_as_one_model_and_record_their_members(tmp_path, capsys):
    """The joined run directory loads (its .keras model, or its .weights.h5 with the run's
    architecture) as the ensemble of its runs, and its manifest names every member."""
    members = _members(3, **RECIPE)
    runs = [_fake_run(str(tmp_path / f"run{k}"), m, seed=k) for k, m in enumerate(members)]
    out = tmp_path / "ensemble"
    assert main([str(out), *runs]) == 0
    assert "3 members (run0, run1, run2)" in capsys.readouterr().out
    want = join_models(members).infer(IMAGE, num_frames=2, seed=1)["frames"].numpy()
    for path in (out, out / "model.weights.h5"):
        model = load_model(str(path), run_config=True)
        assert model.config.members == 3
        np.testing.assert_allclose(model.infer(IMAGE, num_frames=2, seed=1)["frames"].numpy(),
                                   want, atol=1e-6, err_msg=str(path))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["model"]["members"] == 3 and manifest["model_config"]["members"] == 3
    assert [m["seed"] for m in manifest["members"]] == [0, 1, 2]
    assert all(len(m["weights_sha256"]) == 64 for m in manifest["members"])
    assert manifest["data"] == {"train": ["clip#0"]}
    from spiritnet_tf.training.bundle import _commands  # the bundled manifest's recipe

    commands = _commands(manifest, str(out), "held", lambda p: p)
    assert commands[-5:-1] == [*(f"spiritnet train --out {r}" for r in runs), manifest["command"]]
    assert manifest["command"].startswith("python -m spiritnet_tf.training.ensemble ")

    with pytest.raises(SystemExit, match="not empty"):  # never replaced without --force
        main([str(out), *runs])
    assert main([str(out), *runs[:2], "--force"]) == 0
    assert load_model(str(out), run_config=True).config.members == 2


def test_joining_refuses_what_cannot_be_one_ensemble(tmp_path):
    a, b = _members(2, **RECIPE)
    with pytest.raises(ValueError, match="at least two"):
        join_models([a])
    other_depth = SpiritNet.from_preset("small", **TINY, **RECIPE)
    other_depth.build()
    other_depth.depth_net.set_weights([w + 0.1 for w in a.depth_net.get_weights()])
    with pytest.raises(ValueError, match="model 1's depth_net differs"):
        join_models([a, other_depth])
    other_config = SpiritNet.from_preset("small", **TINY, **PAPER_RULE)
    with pytest.raises(ValueError, match=r"differs from model 0's in \['flow_history'"):
        join_models([a, other_config])
    with pytest.raises(ValueError, match="ensemble already"):
        join_models([join_models([a, b]), a])
    with pytest.raises(ValueError, match="not trained as a whole"):
        join_models([a, b]).compile()

    runs = [_fake_run(str(tmp_path / "a"), a, 0), _fake_run(str(tmp_path / "b"), b, 1, {"x": 1})]
    with pytest.raises(ValueError, match="other data"):
        join_runs(runs, str(tmp_path / "out"))
    os.remove(os.path.join(runs[1], "model.weights.h5"))
    with pytest.raises(FileNotFoundError, match="model.weights.h5: missing"):
        join_runs(runs, str(tmp_path / "out"))
    with pytest.raises(ValueError, match="one of the runs"):
        join_runs(runs, runs[0], force=True)
    assert not os.path.exists(tmp_path / "out")


def test_an_ensemble_exports_to_tflite_and_matches_keras(tmp_path):
    """The exports trace ``call``: an ensemble's TFLite file gives its members' mean."""
    from spiritnet_tf.export.mobile import main_tflite
    from test_export_mobile import _assert_close, _inputs, _keras, _run_tflite

    ensemble = join_models(_members(2, **RECIPE))
    ensemble.save(tmp_path / "ensemble.keras")
    out = tmp_path / "ensemble.tflite"
    assert main_tflite(["--weights", str(tmp_path / "ensemble.keras"), "--out", str(out),
                        "--height", "64", "--width", "96", "--frames", "2"]) == 0
    image, flow0 = _inputs(64, 96)
    got, _ = _run_tflite(out, image, flow0)
    _assert_close(got, _keras(ensemble, image, flow0))


def test_first_members_run_the_first_members_alone(tmp_path, capsys):
    """``first_members(k)``: the ensemble of the first k members (k = 1: the first model
    itself), through the API and ``spiritnet animate --members``; out of range: an error."""
    from PIL import Image

    from spiritnet_tf import animation
    from spiritnet_tf.cli import main as cli

    members = _members(3, **RECIPE)
    ensemble = join_models(members)
    assert ensemble.first_members(3) is ensemble
    kwargs = dict(num_frames=2, seed=4, trace=False)
    alone = [m.infer(IMAGE, **kwargs)["frames"].numpy() for m in members[:2]]
    one, two = ensemble.first_members(1), ensemble.first_members(2)
    assert (one.config.members, one.member_cells, two.config.members) == (1, [], 2)
    np.testing.assert_allclose(one.infer(IMAGE, **kwargs)["frames"].numpy(), alone[0], atol=1e-6)
    np.testing.assert_allclose(two.infer(IMAGE, **kwargs)["frames"].numpy(),
                               (alone[0] + alone[1]) / 2, atol=1e-6)
    for bad in (0, 4, 1.0, True):
        with pytest.raises(ValueError, match="whole number from 1 to 3"):
            ensemble.first_members(bad)
    assert animation.load_model(ensemble, members=1).config.members == 1

    path = tmp_path / "ensemble.keras"
    ensemble.save(path)
    # From a file, the smaller model is made once (as the file is loaded once).
    two_loaded = load_model(str(path), members=2)
    assert two_loaded.config.members == 2 and load_model(str(path), members=2) is two_loaded
    assert load_model(str(path)).config.members == 3
    with pytest.raises(ValueError, match="whole number from 1 to 3"):
        load_model(str(path), members=True)
    # A .weights.h5 file is read straight into a model of that many members: the same
    # weights as the whole ensemble's first members.
    run = tmp_path / "run"
    run.mkdir()
    ensemble.save_weights(run / "model.weights.h5")
    (run / "manifest.json").write_text(json.dumps({"model_config": ensemble.config.to_dict()}))
    two_read = load_model(str(run / "model.weights.h5"), run_config=True, members=2)
    assert two_read.config.members == 2 and len(two_read.weights) == len(two.weights)
    for got, want in zip(two_read.weights, two.weights):
        assert got.shape == want.shape and np.array_equal(got.numpy(), want.numpy())
    assert load_model(str(run / "model.weights.h5"), run_config=True, members=2) is two_read
    whole = load_model(str(run / "model.weights.h5"), run_config=True)
    assert load_model(str(run / "model.weights.h5"), run_config=True, members=3) is whole
    with pytest.raises(ValueError, match="whole number from 1 to 3"):
        load_model(str(run / "model.weights.h5"), run_config=True, members=4)
    photo = tmp_path / "p.png"
    Image.fromarray((np.random.default_rng(1).random((40, 60, 3)) * 255).astype(np.uint8)).save(photo)
    assert cli(["animate", str(photo), "-o", str(tmp_path / "p.gif"), "--weights", str(path),
                "--frames", "2", "--members", "4"]) != 0
    assert "--members 4: members must be a whole number from 1 to 3" in capsys.readouterr().err
    assert not (tmp_path / "p.gif").exists()
    assert cli(["animate", str(photo), "-o", str(tmp_path / "p.gif"), "--weights", str(path),
                "--frames", "2", "--members", "1"]) == 0
    assert (tmp_path / "p.gif").exists()
