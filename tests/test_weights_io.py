"""spiritnet_tf.io.weights: the one owner of the loading rules (run directories, 'none', errors,
the bundled manifest)."""

import json

import numpy as np
import pytest

from spiritnet_tf import config
from spiritnet_tf.io import weights as weights_io


def _same_weights(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights()))


@pytest.fixture(scope="module")
def run_dir(tiny_spiritnet, tmp_path_factory):
    """A run folder as `spiritnet train` leaves it: model.keras, model.weights.h5, manifest.json."""
    folder = tmp_path_factory.mktemp("run")
    tiny_spiritnet.save(folder / "model.keras")
    (folder / "checkpoints").mkdir()
    tiny_spiritnet.save_weights(folder / "checkpoints" / "epoch-001.weights.h5")
    (folder / "manifest.json").write_text(json.dumps({"model_config": tiny_spiritnet.config.to_dict()}))
    return folder


def test_weights_h5_of_a_run_gets_the_runs_architecture(tiny_spiritnet, run_dir):
    checkpoint = run_dir / "checkpoints" / "epoch-001.weights.h5"
    model = weights_io.load_model(checkpoint, run_config=True)
    assert model.config == tiny_spiritnet.config and _same_weights(model, tiny_spiritnet)
    # Without run_config the preset's architecture is used, which these weights do not fit.
    with pytest.raises(ValueError, match=r"epoch-001.weights.h5: cannot load SpiritNet weights \(preset 'small'\)"):
        weights_io.load_model(checkpoint)


def test_a_run_finished_before_the_hole_rule_loads_with_zero_holes(tiny_spiritnet, tmp_path):
    """Runs trained before ``dafi_holes`` existed had DAFI's zeros; their manifest lacks the
    field, and loading them must not switch them to the new default."""
    recorded = tiny_spiritnet.config.to_dict()
    recorded.pop("dafi_holes")
    tiny_spiritnet.save_weights(tmp_path / "model.weights.h5")
    (tmp_path / "manifest.json").write_text(json.dumps({"model_config": recorded}))
    model = weights_io.load_model(tmp_path / "model.weights.h5", run_config=True)
    assert tiny_spiritnet.config.dafi_holes == "fill" and model.config.dafi_holes == "zero"
    assert model.cell.dafi.holes == "zero" and _same_weights(model, tiny_spiritnet)
    # the same for a .keras file saved before the field (Keras rebuilds it with from_config)
    from spiritnet_tf.model import SpiritNet

    old = SpiritNet.from_config({**tiny_spiritnet.get_config(), "config": recorded})
    assert old.config.dafi_holes == "zero"
    assert SpiritNet.from_config(tiny_spiritnet.get_config()).config.dafi_holes == "fill"


def test_run_directory_random_option_and_errors(tiny_spiritnet, run_dir, tmp_path, monkeypatch):
    model = weights_io.load_model(run_dir, resample_from="previous")  # its model.keras
    assert model.config.resample_from == "previous" and _same_weights(model, tiny_spiritnet)
    random = weights_io.model_from_option("None", preset="small")
    assert random.built and random.config == weights_io.configure_preset("small")[0]
    with pytest.raises(FileNotFoundError, match="absent.keras: no such weights file"):
        weights_io.load_model(tmp_path / "absent.keras")
    with pytest.raises(FileNotFoundError, match="model.keras: no such weights file"):
        weights_io.load_model(tmp_path)  # a folder without model.keras is no run directory
    monkeypatch.setattr(config, "DEFAULT_WEIGHTS", str(tmp_path / "absent.weights.h5"))
    for weights in (None, "default"):
        with pytest.raises(FileNotFoundError, match="bundled default weights .*make default-weights"):
            weights_io.load_model(weights)
    with pytest.raises(ValueError, match="unknown SpiritNet preset 'large'"):
        weights_io.configure_preset("large")


def test_a_copy_of_the_bundled_file_gets_the_manifests_configuration(tiny_spiritnet, tmp_path,
                                                                     monkeypatch, bundled_manifest):
    """The manifest applies to the bundled file however it is named (None, "default", its path)."""
    small = weights_io.configure_preset("small")[0]
    from spiritnet_tf.model import SpiritNet

    trained = SpiritNet(small)
    trained.build()
    bundled = tmp_path / "bundled.weights.h5"
    trained.save_weights(bundled)
    bundled_manifest({"resample_from": "previous", "dafr": {"speed_rule": "sigmoid"}})
    monkeypatch.setattr(config, "DEFAULT_WEIGHTS", str(bundled))
    for weights in (None, "default", bundled, str(tmp_path / "." / "bundled.weights.h5")):
        model = weights_io.load_model(weights)
        assert model.config.resample_from == "previous"
        assert model.dafr.config.speed_rule == "sigmoid"
        assert _same_weights(model, trained)
    copy = tmp_path / "copy.weights.h5"
    copy.write_bytes(bundled.read_bytes())
    assert weights_io.load_model(copy).config.resample_from == small.resample_from  # not the bundled file
    # SpiritNet.from_preset goes through the same rule, by "default" or by the path.
    from_preset = SpiritNet.from_preset("small", weights=str(bundled))
    assert from_preset.config.resample_from == "previous" and _same_weights(from_preset, trained)
    assert SpiritNet.from_preset("small", weights=copy).config.resample_from == small.resample_from
    # The run's model section travels with the bundled file: another architecture loads.
    wider = SpiritNet(weights_io.configure_preset("small", depth_width=0.25, depth_side=64)[0])
    wider.build()
    wider.save_weights(bundled)
    bundled_manifest(
        {"model": {"depth_width": 0.25, "depth_side": 64, "resample_from": "input", "not_a_field": 1},
         "resample_from": "previous"})
    model = SpiritNet.from_preset("small", weights="default")
    assert (model.config.depth_width, model.config.depth_side) == (0.25, 64)
    assert model.config.resample_from == "previous"  # the gate's choice wins over the run's
    assert _same_weights(model, wider)


def test_one_owner_of_the_loading_rules():
    """The other loaders are thin callers of spiritnet_tf.io.weights: none of them loads a
    Keras file or reads the bundled manifest itself."""
    import inspect

    from spiritnet_tf import animation, config as config_module, model
    from spiritnet_tf.export import mobile as export_mobile
    from spiritnet_tf.training import bundle, run

    for function in (animation.load_model, run.load_model, model.SpiritNet.from_preset,
                     config_module.bundled_overrides, export_mobile._model, bundle.generation_check):
        source = inspect.getsource(function)
        for rule in ("keras.saving", "DEFAULT_MANIFEST", "samefile", "check_weights_file",
                     "os.path.isdir", "RESAMPLE_MODES"):
            assert rule not in source, f"{function.__qualname__} repeats {rule!r}"


def test_pretrained_depth_net_fits_the_architecture_its_manifest_names():
    """The shipped depth pre-training (weights/depth/): checksum, and it loads into the
    depth net of the model its manifest names, giving an inverse depth in (0, 1]."""
    import hashlib
    import os

    import tensorflow as tf

    from spiritnet_tf.model import SpiritNet

    folder = os.path.join(os.path.dirname(config.DEFAULT_WEIGHTS), "depth")
    with open(os.path.join(folder, "MANIFEST.json")) as f:
        manifest = json.load(f)
    path = os.path.join(folder, manifest["weights"])
    with open(path, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == manifest["sha256"]
    model = SpiritNet.from_preset("small", **manifest["model"])
    model.build()
    before = [w.copy() for w in model.depth_net.get_weights()]
    model.depth_net.load_weights(path)
    assert not all(np.array_equal(a, b) for a, b in zip(before, model.depth_net.get_weights()))
    z = model.estimate_depth(tf.random.uniform([1, 64, 96, 3], seed=0)).numpy()
    assert z.shape == (1, 64, 96, 1) and z.min() >= 1e-3 and z.max() <= 1.0 and np.ptp(z) > 0.1


def test_keras_saving_builds_each_types_skip_set_once(tiny_spiritnet, tmp_path):
    """The package caches Keras' per-type attribute skip-set (`spiritnet_tf._cache_keras_skipsets`:
    Keras 3.15 stores it under another key than it reads), and weights still round-trip."""
    import keras
    from keras.src.saving import saving_lib

    import spiritnet_tf

    spiritnet_tf.require_tensorflow_backend()
    assert saving_lib.get_attr_skipset("Layer") is saving_lib.get_attr_skipset("Layer")
    made = []
    original = keras.layers.Layer.__init__

    def counting(self, *args, **kwargs):
        made.append(type(self).__name__)
        original(self, *args, **kwargs)

    path = tmp_path / "tiny.weights.h5"
    tiny_spiritnet.save_weights(path)
    copy = type(tiny_spiritnet)(tiny_spiritnet.config)  # fresh random weights
    copy.build()
    assert any(np.any(a.numpy() != b.numpy()) for a, b in zip(tiny_spiritnet.weights, copy.weights))
    keras.layers.Layer.__init__ = counting
    try:
        copy.load_weights(path)
    finally:
        keras.layers.Layer.__init__ = original
    assert made == []  # no throwaway layers while loading
    for a, b in zip(tiny_spiritnet.weights, copy.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_weights_file_is_read_into_deferred_variables_as_the_plain_way(tiny_spiritnet, tmp_path):
    """`_built_from_file` (what load_model runs for a .weights.h5 file: each variable made
    once from the file's value) gives the model that build() + load_weights() gives: every
    variable's value, and the same animation; nothing of it is left deferred."""
    from keras.src.backend.common import global_state

    from spiritnet_tf.model import SpiritNet

    path = tmp_path / "model.weights.h5"
    tiny_spiritnet.save_weights(path)
    fast = weights_io._built_from_file(SpiritNet(tiny_spiritnet.config), str(path))
    plain = SpiritNet(tiny_spiritnet.config)
    plain.build()
    plain.load_weights(path)
    assert len(fast.variables) == len(plain.variables)  # one build order (names get counters)
    for a, b in zip(fast.variables, plain.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    assert not [v for v in global_state.get_global_attribute("uninitialized_variables", [])
                if any(v is w for w in fast.variables)]
    image = np.random.default_rng(3).random((1, 32, 64, 3)).astype(np.float32)
    want = plain.infer({"image": image}, num_frames=2, seed=1)
    got = fast.infer({"image": image}, num_frames=2, seed=1)
    for key in want:
        np.testing.assert_array_equal(got[key].numpy(), want[key].numpy(), err_msg=key)
    # The in-memory read refuses a file declaring far more array bytes than it holds (a
    # compressed fill-value "shape bomb"); load_model then takes Keras's own checks.
    import h5py

    bomb = tmp_path / "bomb.weights.h5"
    with h5py.File(bomb, "w") as f:
        f.create_dataset("vars/0", shape=(2**22,), dtype="f4", chunks=(2**16,), compression="gzip")
    with pytest.raises(ValueError, match="more array bytes than it holds"):
        weights_io._read_weights_file(str(bomb))
