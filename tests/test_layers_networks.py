"""Fill-hole, context, kernel estimator, synthesis: shapes, identity at init, serialisation."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from spiritnet_tf.layers import (
    BILINEAR_KERNEL,
    DAFI,
    DAFR,
    ContextExtractor,
    DAFRConfig,
    FlowFillHole,
    FrameSynthesis,
    KernelEstimator,
    ResidualBlock,
)
from spiritnet_tf.ops import adaptive_warp

B, H, W = 2, 32, 32


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(0)
    return {
        "image": rng.uniform(0, 1, (B, H, W, 3)).astype(np.float32),
        "z": rng.uniform(0.05, 1, (B, H, W, 1)).astype(np.float32),
        "flow": rng.normal(0, 2, (B, H, W, 2)).astype(np.float32),
        "holes": (rng.uniform(0, 1, (B, H, W, 1)) < 0.2).astype(np.float32),
    }


def randomise(layer, seed=0):
    """Gives every weight random values so that zero-initialised heads do something."""
    rng = np.random.default_rng(seed)
    for v in layer.weights:
        v.assign(rng.normal(0, 0.1, v.shape).astype(np.float32))


def bilinear_reference(image, flow):
    """Plain NumPy bilinear sampling at p + flow (interior positions only)."""
    b, h, w, _ = image.shape
    ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    out = np.empty_like(image)
    for n in range(b):
        qx, qy = xs + flow[n, ..., 0], ys + flow[n, ..., 1]
        x0, y0 = np.floor(qx).astype(int), np.floor(qy).astype(int)
        a, c = (qx - x0)[..., None], (qy - y0)[..., None]
        x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)  # weight 0 there
        img = image[n]
        out[n] = ((1 - a) * (1 - c) * img[y0, x0] + a * (1 - c) * img[y0, x1]
                  + (1 - a) * c * img[y1, x0] + a * c * img[y1, x1])
    return out


def test_context_extractor_shapes(inputs):
    layer = ContextExtractor(width=8)
    features = layer(inputs["image"])
    assert layer.output_channels == 24
    assert features.shape == (B, H, W, 24)
    assert layer.compute_output_shape((None, 7, 9, 3)) == (None, 7, 9, 24)
    assert layer(np.zeros([1, 37, 61, 3], np.float32)).shape == (1, 37, 61, 24)  # any size


def test_kernel_estimator_starts_as_exact_bilinear_warp(inputs):
    layer = KernelEstimator(widths=(4, 8))
    kernel = layer(inputs["image"], inputs["z"]).numpy()
    assert kernel.shape == (B, H, W, 16)
    np.testing.assert_array_equal(kernel, np.broadcast_to(BILINEAR_KERNEL, kernel.shape))
    # With that kernel the adaptive warp is bilinear sampling (flows kept inside the frame).
    rng = np.random.default_rng(3)
    flow = rng.uniform(-3, 3, (B, H, W, 2)).astype(np.float32)
    flow[:, :4], flow[:, -4:], flow[:, :, :4], flow[:, :, -4:] = 0, 0, 0, 0
    warped = adaptive_warp(inputs["image"], flow, kernel).numpy()
    np.testing.assert_allclose(warped, bilinear_reference(inputs["image"], flow), atol=1e-5)
    with pytest.raises(ValueError, match="height 36 is not a multiple of 8"):
        KernelEstimator(widths=(4, 8, 8))(
            np.zeros([1, 36, 32, 3], np.float32), np.ones([1, 36, 32, 1], np.float32))


def test_fill_hole_starts_as_identity_and_iterates_with_shared_weights(inputs):
    ctx = ContextExtractor(width=4)(inputs["image"])
    args = (inputs["flow"], inputs["holes"], inputs["image"], ctx, inputs["z"])
    layer = FlowFillHole(width=8, num_blocks=2, iterations=2)
    out = layer(*args).numpy()
    assert out.shape == (B, H, W, 2)
    np.testing.assert_array_equal(out, inputs["flow"])
    randomise(layer)
    once = FlowFillHole(width=8, num_blocks=2, iterations=1)
    once(*args)
    once.set_weights(layer.get_weights())
    first = once(*args)
    twice = once(first, *args[1:])
    np.testing.assert_allclose(layer(*args).numpy(), twice.numpy(), atol=1e-5)
    assert np.abs(first.numpy() - inputs["flow"]).max() > 1e-3
    with pytest.raises(ValueError, match="iterations must be >= 1"):
        FlowFillHole(iterations=0)


def test_fill_hole_global_context_starts_as_identity_and_sees_the_whole_picture(inputs):
    ctx = ContextExtractor(width=4)(inputs["image"])
    args = (inputs["flow"], inputs["holes"], inputs["image"], ctx, inputs["z"])
    layer = FlowFillHole(width=8, num_blocks=1, global_context=True)
    np.testing.assert_array_equal(layer(*args).numpy(), inputs["flow"])
    randomise(layer)
    # A change far away (the last column) moves the flow at the first pixel through the
    # picture's mean only: the 3x3 convolutions of one block reach 3 pixels.
    far = inputs["image"].copy()
    far[:, :, -1] = 1.0 - far[:, :, -1]
    moved = layer(inputs["flow"], inputs["holes"], far, ctx, inputs["z"]).numpy()
    assert np.abs(moved[:, 0, 0] - layer(*args).numpy()[:, 0, 0]).max() > 1e-6
    local = FlowFillHole(width=8, num_blocks=1)
    local(*args)
    local.set_weights([v.numpy() for v in layer.weights if "global" not in v.path])
    np.testing.assert_allclose(
        local(inputs["flow"], inputs["holes"], far, ctx, inputs["z"]).numpy()[:, 0, 0],
        local(*args).numpy()[:, 0, 0], atol=1e-6)
    assert FlowFillHole.from_config(layer.get_config()).global_context is True


def test_fill_hole_global_gain_scales_each_pictures_flow_by_one_factor(inputs):
    ctx = ContextExtractor(width=4)(inputs["image"])
    args = (inputs["flow"], inputs["holes"], inputs["image"], ctx, inputs["z"])
    layer = FlowFillHole(width=8, num_blocks=1, global_context=True, global_gain=True)
    np.testing.assert_array_equal(layer(*args).numpy(), inputs["flow"])  # factor 1 at first
    randomise(layer)
    layer.head.kernel.assign(np.zeros(layer.head.kernel.shape, np.float32))
    layer.head.bias.assign(np.zeros(layer.head.bias.shape, np.float32))
    out = layer(*args).numpy()
    ratio = out / inputs["flow"]
    for b in range(B):  # one factor for the whole picture, in (0, 2), not 1
        assert np.ptp(ratio[b]) < 1e-4 and 0 < ratio[b].mean() < 2
    assert np.abs(ratio.mean() - 1) > 1e-4
    assert FlowFillHole.from_config(layer.get_config()).global_gain is True
    with pytest.raises(ValueError, match="global_gain needs global_context"):
        FlowFillHole(width=8, global_gain=True)


def test_frame_synthesis_starts_as_identity_and_clips(inputs):
    ctx = np.random.default_rng(1).normal(size=(B, H, W, 5)).astype(np.float32)
    layer = FrameSynthesis(width=8, num_blocks=1)
    out = layer(inputs["image"], ctx, inputs["flow"], inputs["z"]).numpy()
    np.testing.assert_array_equal(out, inputs["image"])
    over = inputs["image"] * 2 - 0.5
    clipped = layer(over, ctx, inputs["flow"], inputs["z"]).numpy()
    np.testing.assert_array_equal(clipped, np.clip(over, 0, 1))
    randomise(layer)
    out = layer(inputs["image"], ctx, inputs["flow"], inputs["z"]).numpy()
    assert out.min() >= 0 and out.max() <= 1 and np.abs(out - inputs["image"]).max() > 1e-3
    with pytest.raises(ValueError, match="`warped_image` must have 3 channel"):
        layer(ctx, ctx, inputs["flow"], inputs["z"])


def test_residual_block_is_conv_relu_conv_plus_skip():
    x = np.random.default_rng(2).normal(size=(1, 6, 7, 4)).astype(np.float32)
    block = ResidualBlock(4)
    block(x)
    randomise(block)
    k1, b1, k2, b2 = block.get_weights()
    conv = lambda t, k, b: tf.nn.conv2d(t, k, 1, "SAME") + b
    expected = x + conv(tf.nn.relu(conv(x, k1, b1)), k2, b2)
    np.testing.assert_allclose(block(x).numpy(), expected.numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="needs 4 input channels"):
        ResidualBlock(4)(np.zeros([1, 4, 4, 3], np.float32))


@pytest.mark.parametrize(
    "make, call",
    [
        (lambda: ResidualBlock(6), lambda l, d: l(np.tile(d["image"], 2))),
        (lambda: ContextExtractor(width=6), lambda l, d: l(d["image"])),
        (lambda: KernelEstimator(widths=(4, 6)), lambda l, d: l(d["image"], d["z"])),
        (
            lambda: FlowFillHole(width=6, num_blocks=1, iterations=2),
            lambda l, d: l(d["flow"], d["holes"], d["image"], d["image"], d["z"]),
        ),
        (
            lambda: FlowFillHole(width=6, num_blocks=1, global_context=True),
            lambda l, d: l(d["flow"], d["holes"], d["image"], d["image"], d["z"]),
        ),
        (
            lambda: FrameSynthesis(width=6, num_blocks=2),
            lambda l, d: l(d["image"], d["image"], d["flow"], d["z"]),
        ),
        (lambda: DAFI(epsilon=1e-5), lambda l, d: l(d["flow"], d["z"])),
        (
            lambda: DAFR(DAFRConfig(max_cuts=2, angle_noise_deg=1.0)),
            lambda l, d: l(d["z"], seed=5, direction=20.0),
        ),
    ],
)
def test_get_config_round_trip(inputs, make, call):
    layer = make()
    out = call(layer, inputs)
    randomise(layer)
    out = call(layer, inputs)
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    call(clone, inputs)
    clone.set_weights(layer.get_weights())
    for a, b in zip(tf.nest.flatten(out), tf.nest.flatten(call(clone, inputs))):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_keras_save_load_gives_identical_outputs(inputs, tmp_path):
    image = keras.Input((H, W, 3), name="image")
    z = keras.Input((H, W, 1), name="z")
    flow = keras.Input((H, W, 2), name="flow")
    ctx = ContextExtractor(width=4)(image)
    kernel = KernelEstimator(widths=(4, 8))(image, z)
    next_flow, holes = DAFI()(flow, z)
    filled = FlowFillHole(width=4, num_blocks=1, iterations=2)(next_flow, holes, image, ctx, z)
    frame = FrameSynthesis(width=4, num_blocks=1)(image, ctx, filled, z)
    flow0 = DAFR()(z, 9, direction=10.0)
    model = keras.Model([image, z, flow], {"frame": frame, "flow": filled, "kernel": kernel,
                                           "flow0": flow0})
    randomise(model)
    feed = [inputs["image"], inputs["z"], inputs["flow"]]
    before = model(feed)
    path = str(tmp_path / "layers.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    after = loaded(feed)
    for key in before:
        np.testing.assert_array_equal(before[key].numpy(), after[key].numpy())
    assert np.abs(before["kernel"].numpy() - BILINEAR_KERNEL).max() > 1e-3


def test_networks_run_in_graph_mode_with_unknown_height_and_width(inputs):
    # As inside a recurrent cell: spatial sizes unknown while tracing.
    ctx_net, kernel_net = ContextExtractor(width=4), KernelEstimator(widths=(4, 8))
    fill, synth = FlowFillHole(width=4, num_blocks=1), FrameSynthesis(width=4, num_blocks=1)
    spec = lambda c: tf.TensorSpec([None, None, None, c])

    @tf.function(input_signature=[spec(3), spec(1), spec(2)])
    def step(image, z, flow):
        ctx = ctx_net(image)
        kernel = kernel_net(image, z)
        next_flow, holes = DAFI()(flow, z)
        flow = fill(next_flow, holes, image, ctx, z)
        warped = adaptive_warp(image, flow, kernel)
        return synth(warped, adaptive_warp(ctx, flow, kernel), flow, z), flow

    frame, flow = step(inputs["image"][:, :, :16], inputs["z"][:, :, :16], inputs["flow"][:, :, :16])
    assert frame.shape == (B, H, 16, 3) and flow.shape == (B, H, 16, 2)
