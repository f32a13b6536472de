"""MegaDepth port: parameter counts, kept key list, converter against a NumPy reference,
inverse depth, small preset shapes and .keras round trip."""

import json
import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from spiritnet_tf.config import SpiritNetConfig
from spiritnet_tf.depth import HourglassLevel, InceptionBlock, MegaDepth, inverse_depth
from spiritnet_tf.depth import keylist
from spiritnet_tf.depth.convert import convert, load_state_dict, official_keys
from spiritnet_tf.layers.cell import depth_net_for

from conftest import REPO


def _trainable_count(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


@pytest.fixture(scope="module")
def paper_model():
    model = MegaDepth.from_preset("paper")
    model.build((None, None, None, 3))
    return model


@pytest.fixture(scope="module")
def state_dict():
    """Random weights with the official names and shapes, built from the kept key list."""
    rng = np.random.default_rng(0)
    state = {}
    for key, shape in official_keys():
        if key.endswith("num_batches_tracked"):
            state[key] = np.array(3, np.int64)
        elif key.endswith("running_var"):
            state[key] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        elif len(shape) == 4:
            fan_in = np.prod(shape[1:])
            state[key] = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        else:
            state[key] = (rng.standard_normal(shape) * 0.1).astype(np.float32)
    return state


def test_paper_preset_has_official_parameter_count(paper_model):
    assert _trainable_count(paper_model) == 5_357_153
    small = MegaDepth.from_preset("small")
    small.build((None, None, None, 3))
    assert _trainable_count(small) < 500_000


def test_kept_key_list_has_pinned_size_and_keys():
    keys = dict(official_keys())
    assert len(official_keys()) == len(keys) == 779
    assert keys["module.0.weight"] == (128, 3, 7, 7)
    assert keys["module.3.0.0.1.0.0.weight"] == (32, 128, 1, 1)
    assert keys["module.4.weight"] == (1, 64, 3, 3)
    assert sum(k.endswith("num_batches_tracked") for k in keys) == 155
    parameters = sum(int(np.prod(s)) for k, s in keys.items() if k.endswith(("weight", "bias")))
    assert parameters == 5_357_153
    # The data file is what the generator derives from the model definition.
    with open(keylist.KEY_LIST_PATH) as f:
        assert f.read() == keylist.render()


# --- NumPy reference in PyTorch layout (NCHW, weights (O, I, kh, kw)) ---


def _np_conv(x, state, name):
    w, b = state[name + ".weight"], state[name + ".bias"]
    k = w.shape[-1]
    p = k // 2
    c, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (p, p), (p, p)))
    out = np.zeros((w.shape[0], h, wd), np.float64)
    for dy in range(k):
        for dx in range(k):
            out += np.einsum("oi,ihw->ohw", w[:, :, dy, dx], xp[:, dy : dy + h, dx : dx + wd])
    return out + b[:, None, None]


def _np_bn_relu(x, state, name, affine):
    mean = state[name + ".running_mean"][:, None, None]
    var = state[name + ".running_var"][:, None, None]
    y = (x - mean) / np.sqrt(var + 1e-5)
    if affine:
        y = y * state[name + ".weight"][:, None, None] + state[name + ".bias"][:, None, None]
    return np.maximum(y, 0)


def _np_inception(x, state, prefix, branch_lengths=(1, 2, 2, 2)):
    outs = []
    for j, n in enumerate(branch_lengths):
        h = x
        for s in range(n):
            h = _np_conv(h, state, f"{prefix}.{j}.{3 * s}")
            h = _np_bn_relu(h, state, f"{prefix}.{j}.{3 * s + 1}", affine=False)
        outs.append(h)
    return np.concatenate(outs, axis=0)


def test_converter_reproduces_numpy_reference_of_first_blocks(paper_model, state_dict):
    load_state_dict(paper_model, state_dict)
    image = np.random.default_rng(1).uniform(size=(16, 32, 3)).astype(np.float32)

    # Reference straight from the state dict by official name: stem, then the first block
    # of the outer level's pooled path (after 2x2 max pooling) and of its skip path.
    x = np.transpose(image, (2, 0, 1)).astype(np.float64)
    stem = _np_bn_relu(_np_conv(x, state_dict, "module.0"), state_dict, "module.1", affine=True)
    pooled = stem.reshape(stem.shape[0], 8, 2, 16, 2).max(axis=(2, 4))
    first_pooled = _np_inception(pooled, state_dict, "module.3.0.0.1")
    first_skip = _np_inception(stem, state_dict, "module.3.0.1.0")

    m = paper_model
    stem_k = tf.nn.relu(m.stem_norm(m.stem_conv(image[None]), training=False))
    pooled_k = m.hourglass.pooling(stem_k)
    first_pooled_k = m.hourglass.down[0](pooled_k, training=False)
    first_skip_k = m.hourglass.skip[0](stem_k, training=False)
    for ref, got in [(stem, stem_k), (first_pooled, first_pooled_k), (first_skip, first_skip_k)]:
        got = np.transpose(got.numpy()[0], (2, 0, 1))
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    assert first_skip.shape[0] == 64 and first_pooled.shape[0] == 128


def test_converter_accepts_npz_without_prefix_or_counters_and_writes_keras_weights(paper_model, state_dict, tmp_path):
    load_state_dict(paper_model, state_dict)
    before = [v.numpy() for v in paper_model.weights]
    # Keras output of the whole network must not depend on how the same weights arrived.
    image = np.random.default_rng(2).uniform(size=(1, 16, 16, 3)).astype(np.float32)
    expected = paper_model(image, training=False).numpy()

    bare = {
        k[len("module.") :]: (v + 1.0 if k.endswith("running_mean") else v)
        for k, v in state_dict.items()
        if not k.endswith("num_batches_tracked")
    }
    path = tmp_path / "megadepth.npz"
    np.savez(path, **bare)
    load_state_dict(paper_model, str(path))
    stem_mean = paper_model.stem_norm.moving_mean.numpy()
    np.testing.assert_array_equal(stem_mean, state_dict["module.1.running_mean"] + 1.0)
    shifted = paper_model(image, training=False).numpy()
    assert not np.allclose(shifted, expected)

    # The command-line route: .npz -> .weights.h5 -> MegaDepth.from_preset(weights=...).
    h5 = convert(str(path), str(tmp_path / "megadepth.weights.h5"))
    reloaded = MegaDepth.from_preset("paper", weights=h5)
    np.testing.assert_array_equal(reloaded(image, training=False).numpy(), shifted)

    load_state_dict(paper_model, state_dict)  # back to the first weights: identical again
    for a, v in zip(before, paper_model.weights):
        np.testing.assert_array_equal(a, v.numpy())
    np.testing.assert_array_equal(paper_model(image, training=False).numpy(), expected)


def test_converter_errors_name_the_problem(paper_model, state_dict, monkeypatch, tmp_path):
    missing = dict(state_dict)
    del missing["module.3.0.0.1.2.3.weight"]
    with pytest.raises(ValueError, match=r"1 missing key.*module\.3\.0\.0\.1\.2\.3\.weight"):
        load_state_dict(paper_model, missing)

    with pytest.raises(ValueError, match=r"unexpected key.*module\.9\.weight"):
        load_state_dict(paper_model, {**state_dict, "module.9.weight": np.zeros(3)})

    bad = {**state_dict, "module.0.weight": np.zeros((128, 3, 5, 5), np.float32)}
    with pytest.raises(ValueError, match=r"'module\.0\.weight' has shape \(128, 3, 5, 5\).*\(128, 3, 7, 7\)"):
        load_state_dict(paper_model, bad)

    with pytest.raises(ValueError, match="paper configuration"):
        load_state_dict(MegaDepth.from_preset("small"), state_dict)
    with pytest.raises(ValueError, match="paper configuration.*levels=3"):
        load_state_dict(MegaDepth(levels=3), state_dict)

    checkpoint = tmp_path / "best_generalization_net_G.pth"
    checkpoint.write_bytes(b"not read")
    monkeypatch.setitem(sys.modules, "torch", None)  # as if PyTorch were not installed
    with pytest.raises(ImportError, match="needs PyTorch"):
        load_state_dict(paper_model, str(checkpoint))
    with pytest.raises(FileNotFoundError, match="no state-dict file"):
        load_state_dict(paper_model, str(tmp_path / "absent.npz"))


def test_inverse_depth_range_and_clamp():
    rng = np.random.default_rng(3)
    log_depth = rng.uniform(-2.0, 2.0, size=(2, 8, 8, 1)).astype(np.float32)
    log_depth[1, 0, 0, 0] = 20.0  # very far: exp(-20)/max is far below the clamp
    log_depth[1, 1, 1, 0] = -30.0  # very near: exp(30) must not overflow the division
    z = inverse_depth(log_depth).numpy()
    assert z.shape == (2, 8, 8, 1) and np.all(np.isfinite(z))
    assert z.min() >= 1e-3 and z.max() <= 1.0
    np.testing.assert_allclose(z.reshape(2, -1).max(axis=1), [1.0, 1.0])
    assert z[1, 0, 0, 0] == pytest.approx(1e-3)
    direct = np.exp(-log_depth[0].astype(np.float64))
    np.testing.assert_allclose(z[0], np.maximum(direct / direct.max(), 1e-3), rtol=1e-5)
    with pytest.raises(ValueError, match=r"\[B, H, W, 1\]"):
        inverse_depth(np.zeros((2, 8, 8, 3), np.float32))


def test_small_preset_odd_multiple_of_16_and_keras_round_trip(tmp_path):
    model = MegaDepth.from_preset("small")
    images = np.random.default_rng(4).uniform(size=(2, 48, 80, 3)).astype(np.float32)
    model(images, training=True)  # moves batch-norm statistics away from their init
    out = model(images, training=False).numpy()
    assert out.shape == (2, 48, 80, 1) and np.all(np.isfinite(out))

    path = str(tmp_path / "megadepth_small.keras")
    model.save(path)
    loaded = keras.models.load_model(path)  # safe_mode=True
    assert isinstance(loaded, MegaDepth) and loaded.width_multiplier == 0.25
    np.testing.assert_array_equal(loaded(images, training=False).numpy(), out)


def test_blocks_round_trip_through_get_config():
    model = MegaDepth(width_multiplier=0.5)
    config = json.loads(json.dumps(model.hourglass.get_config()))
    clone = HourglassLevel.from_config(config)
    assert clone.level_config() == model.hourglass.level_config()
    assert clone.inner.inner.inner.pool == "avg" and clone.pool == "max"
    block = model.hourglass.skip[0]
    assert block.get_config()["branches"] == [[[1, 8]], [[1, 32], [3, 8]], [[1, 32], [7, 8]], [[1, 32], [11, 8]]]
    assert InceptionBlock.from_config(block.get_config()).branches == block.branches
    assert MegaDepth.from_config(model.get_config()).width_multiplier == 0.5


def test_fewer_levels_keep_the_outer_ones_and_round_trip(tmp_path):
    full = MegaDepth(width_multiplier=0.125)
    full.build((None, 32, 32, 3))
    counts = {}
    for levels in (1, 2, 3):
        model = MegaDepth(width_multiplier=0.125, levels=levels)
        kept, expected = model.hourglass.level_config(), full.hourglass.level_config()
        for _ in range(levels - 1):
            kept, expected = kept["inner"], expected["inner"]
        assert kept["inner"] is None and expected["inner"] is not None
        assert {k: v for k, v in kept.items() if k != "inner"} == {
            k: v for k, v in expected.items() if k != "inner"}
        model.build((None, 32, 32, 3))
        counts[levels] = model.count_params()
    assert counts[1] < counts[2] < counts[3] < full.count_params()
    # The input needs a multiple of 2**levels only: 24x40 runs through three levels.
    model = MegaDepth(width_multiplier=0.125, levels=3)
    images = np.random.default_rng(6).uniform(size=(1, 24, 40, 3)).astype(np.float32)
    out = model(images).numpy()
    assert out.shape == (1, 24, 40, 1) and np.all(np.isfinite(out))
    with pytest.raises(ValueError, match="with 4 levels needs the image height to be a multiple of 16"):
        full(images)
    path = str(tmp_path / "three_levels.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.levels == 3 and loaded.hourglass.inner.inner.inner is None
    np.testing.assert_array_equal(loaded(images).numpy(), out)
    # The configuration's field reaches the depth net; the default is the official four.
    assert depth_net_for(SpiritNetConfig(depth_levels=2)).levels == 2
    assert depth_net_for(SpiritNetConfig()).levels == 4
    for bad in (0, 5, 2.0):
        with pytest.raises(ValueError, match="levels"):
            MegaDepth(levels=bad)
        with pytest.raises(ValueError, match="depth_levels"):
            SpiritNetConfig(depth_levels=bad)


def test_frozen_batch_norm_keeps_statistics_and_leaves_convs_trainable():
    model = MegaDepth.from_preset("small")
    images = np.random.default_rng(5).uniform(size=(1, 32, 32, 3)).astype(np.float32)
    model.build(images.shape)
    norms = [model.stem_norm, model.hourglass.skip[0].norms[0]]
    before = [n.moving_mean.numpy() for n in norms]
    trainable_before = len(model.trainable_weights)

    model.freeze_batch_norm()
    model(images, training=True)
    for n, b in zip(norms, before):
        np.testing.assert_array_equal(n.moving_mean.numpy(), b)
    # Only the stem's gamma and beta leave the trainable set; every conv stays trainable.
    assert len(model.trainable_weights) == trainable_before - 2 == 2 * 156

    model.freeze_batch_norm(False)
    model(images, training=True)
    for n, b in zip(norms, before):
        assert not np.allclose(n.moving_mean.numpy(), b)


def test_inference_folds_batch_norm_into_the_convolutions_with_the_same_result():
    """``training`` off folds each batch norm into its convolution (megadepth's
    ``_conv_norm_relu``); the reference is the layers themselves with their statistics:
    training on with every batch norm frozen runs them in inference mode unfolded."""
    model = MegaDepth.from_preset("small")
    images = np.random.default_rng(6).uniform(size=(2, 32, 48, 3)).astype(np.float32)
    model.build(images.shape)
    rng = np.random.default_rng(7)
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            for v in layer.weights:
                low, high = (0.5, 2.0) if v.name in ("moving_variance", "gamma") else (-0.3, 0.3)
                v.assign(rng.uniform(low, high, v.shape).astype(np.float32))
    folded = model(images, training=False).numpy()
    assert np.array_equal(folded, model(images).numpy())  # None means inference too
    model.freeze_batch_norm()
    layers = model(images, training=True).numpy()
    assert np.abs(layers).max() > 0.1
    np.testing.assert_allclose(folded, layers, rtol=1e-4, atol=1e-4 * np.abs(layers).max())


@pytest.mark.parametrize("affine", [True, False])
def test_training_batch_norm_is_fused_with_the_layers_maths_and_statistics(affine):
    """In training a trainable batch norm runs as one fused op (megadepth's
    ``_fused_batch_norm``): output, gradients and the moving statistics' update match
    the Keras layer's own call (biased variance, momentum 0.9), affine or not."""
    from spiritnet_tf.depth import megadepth

    rng = np.random.default_rng(8)
    conv = keras.layers.Conv2D(6, 3, padding="same")
    conv.build((None, 8, 9, 4))
    norm = megadepth._batch_norm(affine)
    norm.build((None, 8, 9, 6))
    for v in norm.weights:
        v.assign(rng.uniform(0.5, 2.0, v.shape).astype(np.float32))
    start = [v.numpy() for v in norm.non_trainable_weights]
    images = tf.constant(rng.normal(1.0, 2.0, (3, 8, 9, 4)).astype(np.float32))
    weights = tf.range(6.0)

    def run(fn):
        for v, s in zip(norm.non_trainable_weights, start):
            v.assign(s)
        variables = [conv.kernel] + norm.trainable_weights
        with tf.GradientTape() as tape:
            out = fn()
            loss = tf.reduce_sum(out ** 2 * weights)
        return out.numpy(), tape.gradient(loss, variables), [v.numpy() for v in norm.non_trainable_weights]

    fused, fused_grads, fused_stats = run(lambda: megadepth._conv_norm_relu(images, conv, norm, True))
    keras_, keras_grads, keras_stats = run(lambda: tf.nn.relu(norm(conv(images), training=True)))
    assert np.abs(keras_).max() > 0.5
    np.testing.assert_allclose(fused, keras_, atol=1e-5)
    assert len(fused_grads) == (3 if affine else 1)
    for a, b in zip(fused_grads, keras_grads):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max())
    for a, b, s in zip(fused_stats, keras_stats, start):
        assert not np.allclose(b, s)  # the statistics moved
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    graph = tf.function(lambda x: megadepth._conv_norm_relu(x, conv, norm, True)).get_concrete_function(images).graph
    assert "FusedBatchNormV3" in {op.type for op in graph.get_operations()}


@pytest.mark.parametrize(
    "shape, message",
    [((32, 32, 3), r"\[B, H, W, 3\]"), ((1, 32, 32, 4), r"\[B, H, W, 3\]"), ((1, 40, 32, 3), "height to be a multiple of 16")],
)
def test_bad_input_shapes_raise(shape, message):
    with pytest.raises(ValueError, match=message):
        MegaDepth.from_preset("small")(np.zeros(shape, np.float32))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="unknown MegaDepth preset"):
        MegaDepth.from_preset("large")
    with pytest.raises(ValueError, match="width_multiplier must be > 0"):
        MegaDepth(width_multiplier=0)


def test_percentile_mapping_range_order_and_flat_floor():
    rng = np.random.default_rng(4)
    d = rng.normal(0.0, 1.0, size=(2, 20, 25, 1)).astype(np.float32)
    d[1] = 0.01 * d[1] + 7.0  # a flat wall: range far below the floor
    z = inverse_depth(-d, "percentile").numpy()
    assert z.min() >= 1e-3 and z.max() <= 1.0
    # order kept: z is a non-decreasing function of d in each image
    for b in range(2):
        order = np.argsort(d[b].ravel())
        assert np.all(np.diff(z[b].ravel()[order]) >= -1e-7)
    # the 2nd..98th percentiles fill the range: about 2% of pixels clipped at each end
    assert 0.005 < np.mean(z[0] >= 1.0) < 0.04 and 0.005 < np.mean(z[0] <= 1e-3) < 0.04
    p2, p98 = np.percentile(d[0], [2, 98])
    inside = (d[0] > p2 + 0.05) & (d[0] < p98 - 0.05)
    np.testing.assert_allclose(z[0][inside], ((d[0] - p2) / (p98 - p2))[inside], atol=0.02)
    # flat wall: nearly flat z around 0.5, not the noise stretched over (0, 1]
    assert np.subtract(*np.percentile(z[1], [98, 2])) < 0.2 < np.subtract(*np.percentile(z[0], [98, 2]))
    assert abs(np.median(z[1]) - 0.5) < 0.05
    # invariant to the shift and (above the floor) the scale of d
    np.testing.assert_allclose(inverse_depth(-(3 * d[:1] + 2), "percentile").numpy(), z[:1], atol=1e-5)
    with pytest.raises(ValueError, match="depth mapping"):
        inverse_depth(-d, "median")


def test_depth_mapping_is_a_config_choice_and_old_bundled_weights_keep_max(
        tiny_spiritnet, bundled_manifest):
    from spiritnet_tf.config import SpiritNetConfig, bundled_overrides
    from spiritnet_tf.model import PRESETS

    assert SpiritNetConfig().depth_mapping == "percentile"
    assert all(p.depth_mapping == "percentile" for p in PRESETS.values())
    bundled_manifest({"model": {"depth_width": 0.25}})
    assert bundled_overrides()["depth_mapping"] == "max"  # a manifest that predates the field
    with pytest.raises(ValueError, match="depth_mapping"):
        SpiritNetConfig(depth_mapping="median")
    model = tiny_spiritnet
    assert model.config.depth_mapping == "percentile"
    image = tf.random.uniform([1, 32, 32, 3], seed=1)
    z = model.cell.estimate_depth(image)
    expected = inverse_depth(model.cell.log_depth(image), "percentile")
    np.testing.assert_allclose(z.numpy(), expected.numpy(), atol=1e-6)
    import json
    with open(os.path.join(REPO, "configs", "default_weights.json")) as f:
        assert json.load(f)["model"]["depth_mapping"] == "max"


def test_depth_side_runs_the_net_at_a_fixed_long_side():
    """With ``depth_side`` the net sees the photo at that scale whatever the image size:
    the output has the image's size, and a photo and its 2x enlargement get the same map
    (resized); without it, the net's view changes with the size."""
    from spiritnet_tf.config import SpiritNetConfig
    from spiritnet_tf.layers.cell import SpiritNetCell

    with pytest.raises(ValueError, match="depth_side"):
        SpiritNetConfig(depth_side=16)
    keras.utils.set_random_seed(3)
    small = tf.image.resize(tf.random.uniform([1, 12, 16, 3], seed=3), [96, 128], method="nearest")
    large = tf.image.resize(small, [192, 256], method="nearest")
    cells = {side: SpiritNetCell(SpiritNetConfig(depth_side=side, depth_width=0.0625)) for side in (None, 64)}
    for cell in cells.values():
        cell.depth_net.build((None, None, None, 3))
    cells[64].depth_net.set_weights(cells[None].depth_net.get_weights())
    maps, seen = {}, []
    for side, cell in cells.items():
        original = cell.depth_net.call

        def recording(x, *args, _original=original, **kwargs):
            seen.append(tuple(x.shape[1:3]))
            return _original(x, *args, **kwargs)

        cell.depth_net.call = recording
        maps[side] = [cell.log_depth(im) for im in (small, large)]
    assert seen == [(96, 128), (192, 256), (64, 64), (64, 64)]
    for a, b in maps.values():
        assert a.shape == (1, 96, 128, 1) and b.shape == (1, 192, 256, 1)
    gaps = {side: float(np.abs(tf.image.resize(b, [96, 128], antialias=True).numpy() - a.numpy()).mean())
            for side, (a, b) in maps.items()}
    assert gaps[None] > 4 * gaps[64], gaps
