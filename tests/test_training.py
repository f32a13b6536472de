"""``spiritnet train``: experiment files, the fit driver, resuming an interrupted run."""

import csv
import glob
import hashlib
import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from spiritnet_tf import cli
from spiritnet_tf.training import ConfigError, load_config, septuplet_dataset, train, training_samples

from conftest import REPO, functions_run_eagerly, load_script

CONFIGS = os.path.join(REPO, "configs")
TINY = os.path.join(CONFIGS, "tiny_test.json")
from spiritnet_tf.model import LOSS_TERMS


def _write(tmp_path, values, name="exp.json"):
    path = tmp_path / name
    path.write_text(json.dumps(values))
    return str(path)


def _tiny():
    with open(TINY) as f:
        return json.load(f)


def test_example_configs_load():
    for path in glob.glob(os.path.join(CONFIGS, "*.json")):
        config = load_config(path)
        assert config.sources("train_data")
        config.model_config()


def test_toml_config(tmp_path):
    path = tmp_path / "exp.toml"
    path.write_text('preset = "small"\nepochs = 2\n[[train_data]]\ntype = "synthetic"\ncount = 3\n'
                    '[model]\nresample_from = "input"\n')
    config = load_config(str(path))
    assert config.epochs == 2 and config.sources("train_data")[0].count == 3
    assert config.model_config().resample_from == "input"


@pytest.mark.parametrize("change, message", [
    (lambda c: c.update(epochz=3), "unknown key(s) 'epochz'"),
    (lambda c: c["train_data"][0].update(colour="red"), "train_data[0]: unknown key(s) 'colour'"),
    (lambda c: c["model"].update(widht=3), "model: unknown key(s) 'widht'"),
    (lambda c: c["loss"].update(style_wieght=1.0), "loss: unknown key(s) 'style_wieght'"),
    (lambda c: c.update(epochs="4"), "epochs: expected int, got str '4'"),
    (lambda c: c.update(flip=1), "flip: expected bool, got int"),
    (lambda c: c["model"].update(context_width=8.5), "model.context_width: expected int"),
    (lambda c: c.update(num_frames=6), "num_frames must be in 1..5, got 6"),
    (lambda c: (c.update(num_frames=5), c["model"].update(flow_history=True)),
     "num_frames: 5 > 4: with model.flow_history"),
    (lambda c: c["train_data"][0].update(type="youtube"),
     "train_data[0].type must be one of 'synthetic', 'videos', 'tfrecord', 'vimeo', got 'youtube'"),
    (lambda c: c["train_data"][0].pop("count"), "a 'synthetic' source needs 'count'"),
    (lambda c: c.pop("train_data"), "missing required key 'train_data'"),
    (lambda c: c.update(preset="huge"), "unknown preset 'huge'"),
    (lambda c: c["loss"].update(vgg_weights="missing_vgg.h5"), "missing_vgg.h5' does not exist"),
    (lambda c: c["model"].update(resample_from="next"), "resample_from must be one of"),
    (lambda c: c.update(depth_weights="missing_depth.weights.h5"), "missing_depth.weights.h5' does not"),
    (lambda c: c.update(depth_pretraining={"stepz": 3}), "depth_pretraining: unknown key(s) 'stepz'"),
    (lambda c: c.update(depth_pretraining={"height": 100}), "depth_pretraining.height must be a multiple"),
    (lambda c: c.update(depth_pretraining={}, depth_weights=TINY), "not both"),
])
def test_bad_config_errors_name_the_key_and_file(tmp_path, change, message):
    values = _tiny()
    change(values)
    path = _write(tmp_path, values)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert message in str(info.value)
    assert path in str(info.value)


def test_unreadable_and_missing_config_files(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_config(str(tmp_path / "nope.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    with pytest.raises(ConfigError, match="bad.json.*not valid JSON"):
        load_config(str(bad))
    # Through the command line: a message naming the file, exit status 1, no traceback.
    assert cli.main(["train", "--config", str(tmp_path / "nope.json")]) == 1
    assert "nope.json" in capsys.readouterr().err


def test_missing_data_folder_is_named(tmp_path):
    values = _tiny()
    values["train_data"] = [{"type": "tfrecord", "path": "no_such_records"}]
    config = load_config(_write(tmp_path, values))
    with pytest.raises(FileNotFoundError, match="no_such_records"):
        train(config, str(tmp_path / "run"), progress=False)


class _Interrupt(keras.callbacks.Callback):
    """Stands in for a killed process: raises when epoch ``at`` would begin."""

    def __init__(self, at):
        super().__init__()
        self.at = at

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at:
            raise KeyboardInterrupt(f"interrupted before epoch {epoch}")


def _scalar_steps(folder):
    """tag -> sorted steps of the scalar summaries in a TensorBoard folder."""
    steps = {}
    for path in glob.glob(os.path.join(folder, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                steps.setdefault(value.tag, []).append(event.step)
    return {tag: sorted(s) for tag, s in steps.items()}


def test_a_resumed_run_draws_the_batches_an_uninterrupted_one_would(tmp_path):
    """After 2 finished epochs of 2 steps, the resumed run's first batch is the
    uninterrupted run's fifth (not its first again: the data continues)."""
    from spiritnet_tf.training.run import completed_epochs, resumed_data

    values = _tiny()
    values["train_data"][0]["count"] = 8
    config = load_config(_write(tmp_path, values, "resume_data.json"))

    def batches():
        keras.utils.set_random_seed(config.seed)  # as train() does before building them
        septuplets, _ = septuplet_dataset(config.sources("train_data"), progress=False)
        return training_samples(septuplets, config, training=True)

    straight = [x["image"].numpy() for x, _ in batches().take(5)]
    run = tmp_path / "run"
    assert completed_epochs(str(run)) == 0
    (run / "backup").mkdir(parents=True)
    (run / "backup" / "training_metadata.json").write_text('{"epoch": 2, "batch": 0}')
    assert completed_epochs(str(run)) == 2
    first = next(iter(resumed_data(batches(), 2, 2)))[0]["image"].numpy()
    np.testing.assert_array_equal(first, straight[4])
    assert not np.array_equal(first, straight[0])


def test_train_writes_logs_checkpoints_and_resumes_after_interruption(tmp_path, capsys,
                                                                     eager_functions):
    """8 steps (4 epochs x 2) on synthetic scenes, interrupted after epoch 2 and rerun.

    Its point is the run's bookkeeping, so its steps run eagerly (``eager_functions``:
    tracing the training graph in both processes cost minutes; the traced train step is
    test_model_training.py's).

    With the bundled recipe's depth setup: a depth pre-training stage (2 steps) whose
    weights `train()` loads into the depth net before fitting, and ``pretrained_depth``
    (frozen batch norm, depth learning rate 1e-7), so the finished model's depth net
    still holds the stage's weights.
    """
    from spiritnet_tf.layers.cell import depth_net_for
    from spiritnet_tf.model import SpiritNet

    out = str(tmp_path / "run")
    values = _tiny()
    values["model"]["pretrained_depth"] = True
    values["steps_per_epoch"] = 2
    values["depth_pretraining"] = {"steps": 2, "batch_size": 1, "count": 1, "height": 32,
                                   "width": 32, "learning_rate": 0.05}
    TINY = _write(tmp_path, values, "tiny_depth.json")  # noqa: N806 - the file used below
    config = load_config(TINY)
    with pytest.raises(KeyboardInterrupt):
        train(config, out, progress=False, extra_callbacks=[_Interrupt(at=2)])
    assert not os.path.exists(os.path.join(out, "manifest.json"))
    with open(os.path.join(out, "backup", "training_metadata.json")) as f:
        assert json.load(f)["epoch"] == 2

    # The same command again resumes from the backup instead of starting over.
    assert cli.main(["train", "--config", TINY, "--out", out, "--quiet"]) == 0
    assert "resuming" in capsys.readouterr().err
    with open(os.path.join(out, "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest["resumed"] is True
    # Optimizer state came back with the weights: 4 + 4 steps, not 4 or 12.
    assert manifest["steps"] == 8
    with open(os.path.join(out, "history.csv")) as f:
        assert [int(row["epoch"]) for row in csv.DictReader(f)] == [0, 1, 2, 3]
    assert set(manifest["final_losses"]) == set(LOSS_TERMS)
    assert manifest["data"]["train"][0]["clips"] == [f"synthetic/0/{i}" for i in range(4)]
    assert manifest["config"]["epochs"] == 4 and manifest["versions"]["tensorflow"]
    assert "none" in manifest["loss_setup"]["vgg_weights"]
    assert not os.path.exists(os.path.join(out, "backup"))
    # The depth stage ran once (the resumed run reused its file), and the final depth
    # net is that file's, not the model's own initialisation.
    depth_file = os.path.join(out, "depth_pretrained.weights.h5")
    assert manifest["depth_weights"] == depth_file
    assert manifest["depth_pretraining"]["steps"] == 2
    stage = depth_net_for(config.model_config())
    stage.build((None, None, None, 3))
    stage.load_weights(depth_file)
    keras.utils.set_random_seed(config.seed)
    fresh = SpiritNet(config.model_config())
    fresh.build()
    final = SpiritNet(config.model_config())
    final.build()
    final.load_weights(os.path.join(out, "model.weights.h5"))
    assert max(np.abs(a - b).max() for a, b in zip(stage.get_weights(),
                                                   fresh.depth_net.get_weights())) > 0.01
    for a, b in zip(stage.get_weights(), final.depth_net.get_weights()):
        np.testing.assert_allclose(b, a, atol=1e-5)
    # Final evaluation of both resampling modes beside the baselines (5 steps each).
    evaluation = manifest["evaluation"]
    methods = ["model (previous)", "model (input)", "copy-frame", "constant-velocity", "oracle"]
    assert [(r["method"], r["step"]) for r in evaluation["rows"]] == [
        (m, t) for m in methods for t in range(1, 6)]
    assert set(evaluation["quality_gate"]) == {"model (previous)", "model (input)"}
    assert os.path.exists(os.path.join(out, "evaluation", "evaluation.md"))

    # A scalar per loss term, for epochs 0..3 across both processes' event files.
    scalars = _scalar_steps(os.path.join(out, "logs", "train"))
    for term in LOSS_TERMS:
        assert scalars[f"epoch_{term}"] == [0, 1, 2, 3], scalars
    previews = _scalar_steps(os.path.join(out, "logs", "preview"))
    for tag in ("preview/frames", "preview/flows", "preview/animation"):
        assert previews[tag] == [1, 2, 3, 4]
    with open(os.path.join(out, "previews", "epoch-004.gif"), "rb") as f:
        assert f.read(6) == b"GIF89a"
    assert sorted(os.listdir(os.path.join(out, "checkpoints"))) == [
        f"epoch-{e:03d}.weights.h5" for e in range(1, 5)]

    # The final model loads safely and runs.
    model = keras.saving.load_model(os.path.join(out, "model.keras"), safe_mode=True)
    frames = model({"image": tf.zeros([1, 32, 32, 3])}, num_frames=1)["frames"]
    assert frames.shape == (1, 1, 32, 32, 3)

    # A finished run is not replaced without --overwrite; a foreign folder never.
    assert cli.main(["train", "--config", TINY, "--out", out, "--quiet"]) == 1
    assert "--overwrite" in capsys.readouterr().err
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "keep.jpg").write_bytes(b"x")
    assert cli.main(["train", "--config", TINY, "--out", str(foreign), "--overwrite"]) == 1
    assert "not a spiritnet run directory" in capsys.readouterr().err
    assert (foreign / "keep.jpg").exists()


def test_unfinished_run_of_another_config_is_refused(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    values = _tiny()
    (out / "config.json").write_text(json.dumps({"different": True}))
    config = load_config(_write(tmp_path, values))
    with pytest.raises(ValueError, match="different config"):
        train(config, str(out), progress=False)
    shutil.rmtree(out)


def test_mixed_sources_keep_depth_for_the_samples_that_have_it(tmp_path):
    # Synthetic scenes carry depth, these records do not: the mixed dataset keeps a
    # depth map for every sample, all-zero (no ground truth) for the records.
    from spiritnet_tf import data
    from spiritnet_tf.training.data import septuplet_dataset

    scenes = list(data.synthetic_dataset(2, 64, 64, seed=1).as_numpy_iterator())
    data.write_septuplets(str(tmp_path / "plain.tfrecord"),
                          [{k: v for k, v in s.items() if k != "depth"} for s in scenes])
    sources = [{"type": "synthetic", "count": 2, "height": 64, "width": 64, "seed": 1},
               {"type": "tfrecord", "path": str(tmp_path / "plain.tfrecord"), "with_depth": False}]
    ds, records = septuplet_dataset(sources, progress=False)
    samples = list(ds.as_numpy_iterator())
    assert len(samples) == 4 and [r["type"] for r in records] == ["synthetic", "tfrecord"]
    for s, scene in zip(samples[:2], scenes):
        assert s["depth"].shape == (7, 64, 64, 1) and s["depth"].min() > 0
        np.testing.assert_array_equal(s["depth"], scene["depth"])
    for s in samples[2:]:
        assert s["depth"].shape == (7, 64, 64, 1) and not s["depth"].any()


def test_mix_sources_draws_every_source_throughout_in_proportion_to_its_size(tmp_path):
    """Without a seed the sources come one after another, each file in order; with one, an
    endless, reproducible stream draws each sample from a source in proportion to its size
    (6 against 2 septuplets here), its clips interleaved, so every stretch sees both."""
    from spiritnet_tf import data
    from spiritnet_tf.training.data import septuplet_dataset

    rng = np.random.default_rng(0)

    def clip(path, name, count):
        data.write_septuplets(str(path), [
            {"id": f"{name}#{k}", "frames": rng.integers(0, 255, (7, 16, 16, 3), np.uint8),
             "flows": np.zeros((6, 16, 16, 2), np.float32)} for k in range(count)])

    for folder, names in (("a", ("a0", "a1", "a2")), ("b", ("b0",))):
        (tmp_path / folder).mkdir()
        for name in names:
            clip(tmp_path / folder / f"{name}.tfrecord", name, 2)
    sources = [{"type": "tfrecord", "path": str(tmp_path / "a")},
               {"type": "tfrecord", "path": str(tmp_path / "b")}]

    def ids(ds, n):
        return [i.decode() for i in ds.map(lambda s: s["id"]).take(n).as_numpy_iterator()]

    in_order, _ = septuplet_dataset(sources, progress=False)
    assert ids(in_order, 100) == ["a0#0", "a0#1", "a1#0", "a1#1", "a2#0", "a2#1", "b0#0", "b0#1"]
    mixed = ids(septuplet_dataset(sources, progress=False, mix_seed=3)[0], 400)
    assert mixed == ids(septuplet_dataset(sources, progress=False, mix_seed=3)[0], 400)
    assert mixed != ids(septuplet_dataset(sources, progress=False, mix_seed=4)[0], 400)
    assert 0.15 < np.mean([i.startswith("b") for i in mixed]) < 0.35  # 2 of 8
    for stretch in (mixed[:40], mixed[-40:]):
        assert {i.split("#")[0] for i in stretch} == {"a0", "a1", "a2", "b0"}
    from_a = [i.split("#")[0] for i in mixed if i.startswith("a")]
    assert from_a[0] != from_a[1]  # a's clips interleaved, not one file after another


def test_depth_pretraining_learns_depth_and_starts_the_run(tmp_path, monkeypatch):
    from spiritnet_tf.depth import MegaDepth
    from spiritnet_tf.layers.cell import depth_net_for
    from spiritnet_tf.model import SpiritNet
    from spiritnet_tf.training import run
    from spiritnet_tf.training.depth import DepthPretraining, pretrain_depth

    keras.utils.set_random_seed(0)
    net = MegaDepth.from_preset("small", width_multiplier=0.0625, levels=1)
    losses = pretrain_depth(net, DepthPretraining(steps=40, batch_size=4, count=2, height=64,
                                                  width=64, learning_rate=3e-3, scenes="layers",
                                                  loss="scale_invariant_log"),
                            progress=False)
    assert len(losses) == 40 and np.all(np.isfinite(losses))
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:10]), losses

    # In a run: the stage's weights are saved in the run directory and loaded into the
    # model's depth net; a resumed run reuses them instead of training again.
    values = _tiny()
    values["model"]["pretrained_depth"] = True
    values["steps_per_epoch"] = 2
    values["depth_pretraining"] = {"steps": 2, "batch_size": 2, "count": 1, "height": 32,
                                   "width": 32}
    config = load_config(_write(tmp_path, values))
    model = SpiritNet(config.model_config())
    model.compile(loss_config=config.loss_config())
    out = tmp_path / "run"
    out.mkdir()
    path = lambda *p: os.path.join(out, *p)  # noqa: E731
    with functions_run_eagerly():  # the stage's bookkeeping; its traced step ran above
        weights, summary = run._initial_depth(config, model, path, False)
    assert weights == path(run.DEPTH_WEIGHTS) and summary["steps"] == 2
    model.depth_net.load_weights(weights)
    # Given depth_weights instead, the run starts from that file, without a stage.
    given = load_config(_write(tmp_path, {**_tiny(), "depth_weights": weights}, "given.json"))
    assert run._initial_depth(given, model, path, False) == (weights, None)
    saved = depth_net_for(config.model_config())
    saved.build((None, None, None, 3))
    saved.load_weights(weights)
    for a, b in zip(model.depth_net.get_weights(), saved.get_weights()):
        np.testing.assert_array_equal(a, b)
    monkeypatch.setattr("spiritnet_tf.training.depth.pretrain_depth",
                        lambda *a, **k: pytest.fail("pre-trained again on resume"))
    assert run._initial_depth(config, model, path, False) == (weights, summary)


def test_failed_start_writes_nothing_and_the_fixed_rerun_starts(tmp_path, capsys, monkeypatch):
    """A missing data folder fails before the run folder is touched; once the data is
    there, the same command starts (no --overwrite, no "different config" refusal)."""
    from spiritnet_tf import data
    from spiritnet_tf import model as model_module

    values = _tiny()
    values["train_data"] = [{"type": "tfrecord", "path": str(tmp_path / "records")}]
    values["validation_data"] = []
    values["evaluation"] = None
    config = _write(tmp_path, values)
    out = tmp_path / "runs" / "exp"
    assert cli.main(["train", "--config", config, "--out", str(out), "--quiet"]) == 1
    assert "TFRecord source" in capsys.readouterr().err  # found by train(), not load_config
    assert not out.exists()

    # An --out whose parent is a file: refused with a message, before the data is read.
    (tmp_path / "file").write_text("x")
    assert cli.main(["train", "--config", config, "--out", str(tmp_path / "file" / "run")]) == 1
    assert "is a file, not a folder" in capsys.readouterr().err

    scenes = list(data.synthetic_dataset(2, 32, 32, seed=0).as_numpy_iterator())
    (tmp_path / "records").mkdir()
    data.write_septuplets(str(tmp_path / "records" / "a.tfrecord"), scenes)

    class Started(Exception):
        pass

    def started(*args, **kwargs):  # stands in for the model build: the run has started
        raise Started()

    monkeypatch.setattr(model_module, "SpiritNet", started)
    with pytest.raises(Started):
        cli.main(["train", "--config", config, "--out", str(out), "--quiet"])
    with open(out / "config.json") as f:
        assert json.load(f)["train_data"][0]["path"] == str(tmp_path / "records")


def test_init_weights_start_the_run_from_a_finished_model(tmp_path, monkeypatch):
    """``init_weights``: the whole model starts from the file (a warm start); a missing file
    is named before the run folder is touched."""
    from spiritnet_tf.model import SpiritNet

    values = _tiny()
    values["validation_data"], values["evaluation"] = [], None
    values["init_weights"] = str(tmp_path / "absent.weights.h5")
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="init_weights: .*absent.weights.h5: no such weights file"):
        train(load_config(_write(tmp_path, values)), str(out), progress=False)
    assert not out.exists()

    config = load_config(_write(tmp_path, values))
    start = SpiritNet(config.model_config())
    start.build()
    start.set_weights([w * 0.5 + 0.01 for w in start.get_weights()])  # unlike a fresh model's
    start.save_weights(values["init_weights"])

    class Fitting(Exception):
        pass

    seen = {}

    def fit(model, *args, **kwargs):  # stands in for the training: the run has started
        seen["weights"] = model.get_weights()
        raise Fitting()

    monkeypatch.setattr(SpiritNet, "fit", fit)
    with pytest.raises(Fitting):
        train(config, str(out), progress=False)
    assert len(seen["weights"]) == len(start.get_weights())
    for a, b in zip(seen["weights"], start.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_decay_to_makes_the_main_learning_rate_a_cosine_over_the_run(tmp_path, monkeypatch):
    """``decay_to``: the main optimizer's rate goes from ``model.learning_rate`` down to
    decay_to times it at the run's last step; without it the rate is constant."""
    from spiritnet_tf.model import SpiritNet

    values = _tiny()
    values["validation_data"], values["evaluation"] = [], None
    assert load_config(_write(tmp_path, values)).learning_rate_schedule() == 0.001
    with pytest.raises(ConfigError, match="decay_to"):
        load_config(_write(tmp_path, {**values, "decay_to": 1.5}))
    values["decay_to"] = 0.1
    config = load_config(_write(tmp_path, values))
    schedule = config.learning_rate_schedule()
    total = config.epochs * config.steps_per_epoch
    rates = [float(schedule(step)) for step in range(total + 1)]
    np.testing.assert_allclose([rates[0], rates[-1]], [0.001, 0.0001], rtol=1e-5)
    assert all(a >= b for a, b in zip(rates, rates[1:]))

    seen = {}

    def fit(model, *args, **kwargs):  # stands in for the training: the optimizer is set up
        model.optimizer.iterations.assign(total)
        seen["rate"] = float(model.optimizer.learning_rate)
        seen["depth"] = float(model.depth_optimizer.learning_rate)
        raise RuntimeError("stop")

    monkeypatch.setattr(SpiritNet, "fit", fit)
    with pytest.raises(RuntimeError, match="stop"):
        train(config, str(tmp_path / "run"), progress=False)
    assert seen["rate"] == pytest.approx(0.0001, rel=1e-5)
    assert seen["depth"] == pytest.approx(0.001, rel=1e-5)  # the depth net's stays


def test_distill_script_replaces_the_target_frames_by_the_teachers_mean(tmp_path, capsys,
                                                                        tiny_spiritnet, tiny_keras):
    """configs/distill_data.py: every n-th septuplet of a file is written with its frames
    before state0's and its flows as they were, and its target frames the mean of the
    teachers' predictions from state0 (rounded to uint8); the command skips synthetic
    sources, keeps a written file on a rerun and refuses --every below 1."""
    import types

    from spiritnet_tf import data
    from spiritnet_tf.data.pipeline import to_prediction_mode

    script = load_script(os.path.join("configs", "distill_data.py"))
    rng = np.random.default_rng(0)
    samples = [{"id": f"clip#{k}", "frames": rng.integers(0, 255, (7, 32, 32, 3), np.uint8),
                "flows": rng.normal(0, 1, (6, 32, 32, 2)).astype(np.float32)} for k in range(3)]
    source = str(tmp_path / "clip.tfrecord")
    data.write_septuplets(source, samples)
    other = tiny_spiritnet.with_config()  # a second teacher: the same net, other weights
    other.set_weights([w + rng.normal(0, 0.05, w.shape).astype(w.dtype) for w in other.get_weights()])
    teachers = [tiny_spiritnet, other]
    target = str(tmp_path / "out.tfrecord")
    assert script.distill_file(teachers, source, target, every=2) == 2
    written = list(data.read_septuplets(target).as_numpy_iterator())
    assert [s["id"].decode() for s in written] == ["clip#0", "clip#2"]
    first = 1  # the tiny model has no flow_history: state0 = (im2, F_{2->1}), 5 targets
    stored = list(data.read_septuplets(source).as_numpy_iterator())  # flows stored as float16
    items = [to_prediction_mode(s)[0] for s in stored[::2]]
    inputs = {k: tf.stack([item[k] for item in items]) for k in items[0]}
    predictions = [m.infer(inputs, num_frames=5, trace=True)["frames"].numpy() for m in teachers]
    assert np.abs(predictions[0] - predictions[1]).max() > 2 / 255  # the teachers differ
    mean = np.clip((predictions[0] + predictions[1]) / 2, 0, 1) * 255
    for k, (sample, new) in enumerate(zip(samples[::2], written)):
        np.testing.assert_array_equal(new["frames"][:first + 1], sample["frames"][:first + 1])
        np.testing.assert_allclose(new["flows"], sample["flows"].astype(np.float16), atol=1e-6)
        assert np.abs(new["frames"][first + 1:].astype(float) - mean[k]).max() <= 0.5 + 1e-3
    assert not os.path.exists(target + ".part")
    with_history = types.SimpleNamespace(config=types.SimpleNamespace(flow_history=True))
    with pytest.raises(ValueError, match="flow_history"):
        script.distill_file([tiny_spiritnet, with_history], source, str(tmp_path / "x.tfrecord"))

    config = _tiny()  # the command: synthetic sources skipped, the others distilled
    config["train_data"].append({"type": "tfrecord", "path": source})
    (tmp_path / "student.json").write_text(json.dumps(config))
    out = tmp_path / "distilled"
    command = [str(tmp_path / "student.json"), str(out), str(tiny_keras), "--every", "3"]
    with open(os.path.join(os.path.dirname(source), "SOURCES.json"), "w") as f:
        json.dump({"package": "clips", "licence": "MIT"}, f)
    script.main(command)
    assert sorted(os.listdir(out)) == ["SOURCES.json", "source1"]
    record = json.loads((out / "source1" / "SOURCES.json").read_text())  # what bundles read
    assert record["sources"] == {"package": "clips", "licence": "MIT"}
    assert record["distilled_from"] == source and record["every"] == 3
    assert record["teachers"] == [{"path": str(tiny_keras), "commands": None,
                                   "sha256": hashlib.sha256(tiny_keras.read_bytes()).hexdigest()}]
    written = out / "source1" / "clip.tfrecord"
    assert [s["id"] for s in data.read_septuplets(str(written)).as_numpy_iterator()] == [b"clip#0"]
    before = written.stat().st_mtime_ns
    script.main(command)  # resumed: the file written is kept
    assert written.stat().st_mtime_ns == before
    with pytest.raises(SystemExit):
        script.main(command[:-1] + ["0"])
    assert "--every must be 1 or more, got 0" in capsys.readouterr().err
