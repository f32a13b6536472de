"""Adaptive warp: compiled op vs composite TF vs an independent NumPy reference."""

import logging
import os
import shutil
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from spiritnet_tf import ops
from spiritnet_tf.ops import warp as aw

from conftest import REPO

BILINEAR = np.zeros(16, np.float32)
BILINEAR[[5, 6, 9, 10]] = 1.0  # centre 2x2 taps of the 4x4 window


def random_inputs(rng, b=2, h=9, w=11, c=3, flow_scale=3.0, dtype=np.float32):
    image = rng.random((b, h, w, c)).astype(dtype)
    flow = (rng.normal(size=(b, h, w, 2)) * flow_scale).astype(dtype)
    kernel = rng.normal(size=(b, h, w, 16)).astype(dtype)
    return image, flow, kernel


def custom(library, image, flow, kernel):
    return library.spiritnet_adaptive_warp(image, flow, kernel).numpy()


def composite(image, flow, kernel):
    return ops.adaptive_warp_composite(
        tf.constant(image), tf.constant(flow), tf.constant(kernel)
    ).numpy()


def numpy_bilinear(image, flow):
    """Bilinear backward sampling written independently of the op: out(p) = I(p + f)."""
    b, h, w, c = image.shape
    out = np.empty_like(image)
    for n in range(b):
        for y in range(h):
            for x in range(w):
                qx, qy = x + flow[n, y, x, 0], y + flow[n, y, x, 1]
                if not (np.isfinite(qx) and np.isfinite(qy)) or not (
                    0 <= qx <= w - 1 and 0 <= qy <= h - 1
                ):
                    out[n, y, x] = image[n, y, x]
                    continue
                x0, y0 = int(np.floor(qx)), int(np.floor(qy))
                x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
                a, bb = qx - x0, qy - y0
                out[n, y, x] = (
                    (1 - a) * (1 - bb) * image[n, y0, x0]
                    + a * (1 - bb) * image[n, y0, x1]
                    + (1 - a) * bb * image[n, y1, x0]
                    + a * bb * image[n, y1, x1]
                )
    return out


# --------------------------------------------------------------------------- agreement


# The CPU kernels work on vectors of 4, 8 or 16 channels (the processor's registers)
# and keep at most 12 of them in registers at once: 9 and 20 end in a partial vector,
# 130 takes more than one block.
@pytest.mark.parametrize("channels", [1, 3, 9, 20, 130])
def test_custom_matches_composite_on_random_flows(warp_library, channels):
    rng = np.random.default_rng(channels)
    image, flow, kernel = random_inputs(rng, c=channels)
    np.testing.assert_allclose(
        custom(warp_library, image, flow, kernel), composite(image, flow, kernel), atol=1e-5
    )


@pytest.mark.parametrize(
    "case",
    ["fractional", "outside", "huge", "zero", "nan_inf", "exact_border", "integer"],
)
def test_custom_matches_composite_on_special_flows(warp_library, case):
    rng = np.random.default_rng(7)
    image, flow, kernel = random_inputs(rng, b=1, h=8, w=10, c=4)
    if case == "fractional":
        flow = (rng.random(flow.shape) * 4 - 2).astype(np.float32)
    elif case == "outside":
        flow[..., 0] = 15.0  # every target is right of the image: copy branch
        flow[0, :, :3, 0] = -20.0
    elif case == "huge":
        flow[0, ::2, ::2] = 1e30
        flow[0, 1::2, ::3] = -3e38
    elif case == "zero":
        flow[:] = 0.0
    elif case == "nan_inf":
        flow[0, 0, :, 0] = np.nan
        flow[0, 1, :, 1] = np.inf
        flow[0, 2, :, 0] = -np.inf
    elif case == "exact_border":
        ys, xs = np.mgrid[0:8, 0:10]
        flow[0, ..., 0] = (9 - xs).astype(np.float32)  # q lands on the last column exactly
        flow[0, ..., 1] = (7 - ys).astype(np.float32)
    elif case == "integer":
        flow = np.round(flow)
    got = custom(warp_library, image, flow, kernel)
    want = composite(image, flow, kernel)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, atol=1e-5)
    if case in ("outside", "nan_inf"):
        copied = ~np.isfinite(flow).all(-1) | (flow[..., 0] >= 10) | (flow[..., 0] <= -20)
        np.testing.assert_array_equal(got[copied], image[copied])


@pytest.mark.parametrize("backend", ["custom", "composite"])
def test_bilinear_kernel_equals_numpy_bilinear(warp_library, backend, monkeypatch):
    monkeypatch.setenv(aw.ENV_VAR, backend)
    rng = np.random.default_rng(3)
    image, flow, _ = random_inputs(rng, b=2, h=7, w=9, c=3, flow_scale=2.5)
    flow[0, 0, 0] = [100.0, 0.0]  # outside: copy
    kernel = np.broadcast_to(BILINEAR, flow.shape[:3] + (16,)).copy()
    got = ops.adaptive_warp(image, flow, kernel).numpy()
    np.testing.assert_allclose(got, numpy_bilinear(image, flow), atol=1e-5)


def test_lanczos_warp_matches_opencv_inter_lanczos4():
    import cv2

    rng = np.random.default_rng(5)
    image = cv2.GaussianBlur(rng.random((1, 24, 31, 3)).astype(np.float32)[0], (0, 0), 1.0)
    # Fractional parts on OpenCV's 1/32 grid, where its fixed-point remap is exact.
    flow = np.round(rng.normal(0, 2.0, (24, 31, 2)) * 32).astype(np.float32) / 32
    flow[0, 0] = [100.0, 0.0]  # outside: copy
    map_x = flow[..., 0] + np.arange(31, dtype=np.float32)
    map_y = flow[..., 1] + np.arange(24, dtype=np.float32)[:, None]
    ref = cv2.remap(image, map_x, map_y, cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REPLICATE)
    outside = (map_x < 0) | (map_x > 30) | (map_y < 0) | (map_y > 23)
    ref[outside] = image[outside]
    got = ops.lanczos_warp(image[None], flow[None]).numpy()[0]
    np.testing.assert_allclose(got, ref, atol=1e-4)
    # Zero and integer flows move pixels exactly; a half-pixel shift stays sharper than
    # bilinear and bicubic (the reason the full-resolution frames use it).
    np.testing.assert_allclose(ops.lanczos_warp(image[None], np.zeros_like(flow)[None])[0], image,
                               atol=1e-6)
    shift = np.zeros_like(flow)
    shift[..., 0] = 1.0
    np.testing.assert_allclose(ops.lanczos_warp(image[None], shift[None])[0, :, :-1], image[:, 1:],
                               atol=1e-6)
    shift[..., 0] = 0.5
    lap = lambda x: cv2.Laplacian(x[..., 0], cv2.CV_32F)[4:-4, 4:-4].var()  # noqa: E731
    lanczos = ops.lanczos_warp(image[None], shift[None]).numpy()[0]
    bilinear = numpy_bilinear(image[None], shift[None])[0]
    map_x = shift[..., 0] + np.arange(31, dtype=np.float32)
    map_y = np.broadcast_to(np.arange(24, dtype=np.float32)[:, None], map_x.shape).copy()
    cubic = cv2.remap(image, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    assert lap(lanczos) > lap(cubic) > 1.2 * lap(bilinear)


@pytest.mark.parametrize("backend", ["custom", "composite"])
def test_zero_flow_returns_input(warp_library, backend, monkeypatch):
    monkeypatch.setenv(aw.ENV_VAR, backend)
    image = np.random.default_rng(4).random((1, 6, 5, 7)).astype(np.float32)
    kernel = np.broadcast_to(BILINEAR, (1, 6, 5, 16))
    got = ops.adaptive_warp(image, np.zeros((1, 6, 5, 2), np.float32), kernel)
    np.testing.assert_array_equal(got.numpy(), image)


def test_kernel_taps_select_neighbours(warp_library):
    """A one-hot kernel at tap (i, j) with zero flow reads pixel (y-1+i, x-1+j)
    scaled by wy(i) * wx(j); with zero fractions only i, j in {0, 1} survive."""
    image = np.arange(1 * 5 * 6 * 1, dtype=np.float32).reshape(1, 5, 6, 1)
    flow = np.zeros((1, 5, 6, 2), np.float32)
    for t, (di, dj) in {0: (-1, -1), 1: (-1, 0), 4: (0, -1), 5: (0, 0)}.items():
        kernel = np.zeros((1, 5, 6, 16), np.float32)
        kernel[..., t] = 1
        got = custom(warp_library, image, flow, kernel)
        ys = np.clip(np.arange(5) + di, 0, 4)[:, None]
        xs = np.clip(np.arange(6) + dj, 0, 5)[None, :]
        np.testing.assert_array_equal(got[0, ..., 0], image[0, ys, xs, 0])


# --------------------------------------------------------------------------- gradients


def gradient_inputs(seed, h=6, w=7, c=2):
    """Float64 inputs whose targets stay inside cells: fractional parts of q in
    [0.2, 0.8] and q at least 1 px from the border (the op is piecewise). A few
    pixels point far outside the image to cover the copy branch."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    qx = rng.integers(1, w - 2, size=(1, h, w)) + rng.uniform(0.2, 0.8, (1, h, w))
    qy = rng.integers(1, h - 2, size=(1, h, w)) + rng.uniform(0.2, 0.8, (1, h, w))
    flow = np.stack([qx - xs, qy - ys], -1)
    flow[0, 0, :2] = [50.0, 0.0]
    image = rng.random((1, h, w, c))
    kernel = rng.normal(size=(1, h, w, 16))
    return image, flow, kernel


@pytest.mark.parametrize("backend", ["custom", "composite"])
@pytest.mark.parametrize("wrt", ["image", "flow", "kernel"])
def test_gradients_match_finite_differences(warp_library, backend, wrt, monkeypatch):
    monkeypatch.setenv(aw.ENV_VAR, backend)
    image, flow, kernel = gradient_inputs(seed=11)
    inputs = {"image": image, "flow": flow, "kernel": kernel}
    # A fixed random projection keeps the Jacobian small: d <u, warp(...)> / d x.
    u = tf.constant(np.random.default_rng(12).normal(size=image.shape))

    @tf.function  # traced once; eager composite calls would make this slow
    def f(x):
        args = dict(inputs, **{wrt: x})
        return tf.reduce_sum(u * ops.adaptive_warp(args["image"], args["flow"], args["kernel"]))

    theoretical, numerical = tf.test.compute_gradient(f, [tf.constant(inputs[wrt])], delta=1e-6)
    np.testing.assert_allclose(theoretical[0], numerical[0], rtol=1e-6, atol=1e-7)
    assert np.abs(theoretical[0]).max() > 0.1  # a gradient that is really there


# The CPU gradient kernel takes one fused pass per batch item when a channel block
# covers all channels, and two passes (per-pixel, then per channel block) otherwise.
@pytest.mark.parametrize("batch,channels", [(2, 5), (1, 3), (2, 9), (2, 67), (3, 40), (2, 130)])
def test_custom_and_composite_gradients_agree_in_float32(warp_library, batch, channels):
    rng = np.random.default_rng(5)
    image, flow, kernel = (tf.constant(a) for a in random_inputs(rng, b=batch, c=channels))
    grads = []
    for fn in (warp_library.spiritnet_adaptive_warp, ops.adaptive_warp_composite):
        with tf.GradientTape() as tape:
            tape.watch([image, flow, kernel])
            out = fn(image, flow, kernel)
            loss = tf.reduce_sum(out * out)
        grads.append(tape.gradient(loss, [image, flow, kernel]))
    for a, b in zip(*grads):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)


def test_narrower_cpu_paths_match_composite(warp_library, tmp_path):
    """The CPU kernels are compiled once per instruction set (AVX-512, AVX2 and the
    baseline, each with its own vector width) and the best one is picked at run time;
    SPIRITNET_WARP_ISA caps it. A process capped at the baseline (and one capped at
    AVX2 when the processor has AVX-512) must give the composite's outputs and
    gradients too."""
    best = ops.cpu_vector_path()
    assert best in ("baseline", "avx2", "avx512")
    caps = {"baseline": [], "avx2": ["baseline"], "avx512": ["baseline", "avx2"]}[best]
    if not caps:
        pytest.skip("this processor has the baseline path only, which the other tests run")
    script = textwrap.dedent(
        """
        import sys
        import numpy as np, tensorflow as tf
        from spiritnet_tf import ops
        assert ops.cpu_vector_path() == sys.argv[1], ops.cpu_vector_path()
        rng = np.random.default_rng(21)
        for channels in (3, 9, 67, 130):
            args = [tf.constant(a) for a in (
                rng.random((2, 9, 11, channels), np.float32),
                rng.normal(0, 3, (2, 9, 11, 2)).astype(np.float32),
                rng.normal(size=(2, 9, 11, 16)).astype(np.float32))]
            results = []
            for fn in (ops.load_library().spiritnet_adaptive_warp, ops.adaptive_warp_composite):
                with tf.GradientTape() as tape:
                    tape.watch(args)
                    out = fn(*args)
                    loss = tf.reduce_sum(out * out)
                results.append([out] + tape.gradient(loss, args))
            for a, b in zip(*results):
                np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)
        print("PATH_OK", sys.argv[1])
        """
    )
    for cap in caps:
        env = dict(os.environ, SPIRITNET_WARP_ISA=cap)
        result = subprocess.run([sys.executable, "-c", script, cap], capture_output=True,
                                text=True, env=env)
        assert f"PATH_OK {cap}" in result.stdout, result.stderr[-3000:]


def test_copy_branch_passes_gradient_straight_through(warp_library):
    image = tf.constant(np.random.default_rng(6).random((1, 4, 4, 2)), tf.float32)
    flow = tf.fill([1, 4, 4, 2], np.float32(np.nan))
    kernel = tf.ones([1, 4, 4, 16])
    with tf.GradientTape() as tape:
        tape.watch([image, flow, kernel])
        out = warp_library.spiritnet_adaptive_warp(image, flow, kernel)
    g_image, g_flow, g_kernel = tape.gradient(out, [image, flow, kernel])
    np.testing.assert_array_equal(g_image.numpy(), np.ones((1, 4, 4, 2)))
    np.testing.assert_array_equal(g_flow.numpy(), 0)
    np.testing.assert_array_equal(g_kernel.numpy(), 0)


# --------------------------------------------------------------------------- contexts


def test_tf_function_with_unknown_shapes(warp_library):
    rng = np.random.default_rng(8)
    image, flow, kernel = random_inputs(rng, b=1, h=12, w=5, c=3)
    spec = [
        tf.TensorSpec([None, None, None, 3]),
        tf.TensorSpec([None, None, None, 2]),
        tf.TensorSpec([None, None, None, 16]),
    ]
    fn = tf.function(ops.adaptive_warp, input_signature=spec)
    np.testing.assert_allclose(fn(image, flow, kernel).numpy(), composite(image, flow, kernel), atol=1e-5)
    graph_ops = {op.type for op in fn.get_concrete_function().graph.get_operations()}
    assert "SpiritnetAdaptiveWarp" in graph_ops


class WarpLayer(keras.layers.Layer):
    """A tiny layer: a learned per-channel scale, then the warp (tests only)."""

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(input_shape[0][-1],), initializer="ones")

    def call(self, inputs):
        image, flow, kernel = inputs
        return ops.adaptive_warp(image * self.scale, flow, kernel)


def test_keras_layer_trains_through_the_op(warp_library):
    rng = np.random.default_rng(9)
    image, flow, kernel = random_inputs(rng, b=4, h=8, w=8, c=3, flow_scale=1.0)
    target = composite(image, flow, kernel) * 0.5
    inputs = [keras.Input((8, 8, 3)), keras.Input((8, 8, 2)), keras.Input((8, 8, 16))]
    layer = WarpLayer()
    model = keras.Model(inputs, layer(inputs))
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    before = model.evaluate([image, flow, kernel], target, verbose=0)
    model.fit([image, flow, kernel], target, epochs=60, verbose=0)
    assert model.evaluate([image, flow, kernel], target, verbose=0) < 0.01 * before
    np.testing.assert_allclose(layer.scale.numpy(), 0.5, atol=0.05)


def test_savedmodel_reloads_in_a_new_process(warp_library, tmp_path):
    class Warp(tf.Module):
        @tf.function(
            input_signature=[
                tf.TensorSpec([None, None, None, 3]),
                tf.TensorSpec([None, None, None, 2]),
                tf.TensorSpec([None, None, None, 16]),
            ]
        )
        def __call__(self, image, flow, kernel):
            return ops.adaptive_warp(image, flow, kernel)

    path = str(tmp_path / "warp_model")
    tf.saved_model.save(Warp(), path)
    rng = np.random.default_rng(10)
    arrays = random_inputs(rng, b=1, h=6, w=7, c=3)
    np.savez(tmp_path / "inputs.npz", *arrays)
    np.save(tmp_path / "expected.npy", custom(warp_library, *arrays))
    script = textwrap.dedent(
        f"""
        import numpy as np, tensorflow as tf
        from spiritnet_tf import ops
        assert ops.load_library() is not None
        model = tf.saved_model.load({path!r})
        a = np.load({str(tmp_path / "inputs.npz")!r})
        out = model(a["arr_0"], a["arr_1"], a["arr_2"]).numpy()
        np.testing.assert_allclose(out, np.load({str(tmp_path / "expected.npy")!r}), atol=1e-6)
        print("RELOADED_OK")
        """
    )
    env = dict(os.environ, SPIRITNET_WARP="custom")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert "RELOADED_OK" in result.stdout, result.stderr[-3000:]


# --------------------------------------------------------------------------- errors

BAD_SHAPES = [
    ((2, 8, 8), (2, 8, 8, 2), (2, 8, 8, 16), "image must be rank 4"),
    ((2, 8, 8, 3), (2, 8, 8), (2, 8, 8, 16), "flow must be rank 4"),
    ((2, 8, 8, 3), (2, 8, 8, 3), (2, 8, 8, 16), "flow must have 2 channels"),
    ((2, 8, 8, 3), (2, 8, 8, 2), (2, 8, 8, 9), "kernel must have 16 channels"),
    ((2, 8, 8, 3), (1, 8, 8, 2), (2, 8, 8, 16), "batch size of flow"),
    ((2, 8, 8, 3), (2, 8, 8, 2), (2, 7, 8, 16), "height of kernel"),
    ((2, 8, 8, 3), (2, 8, 9, 2), (2, 8, 8, 16), "width of flow"),
]


@pytest.mark.parametrize("backend", ["custom", "composite"])
@pytest.mark.parametrize("shapes", BAD_SHAPES, ids=[s[3] for s in BAD_SHAPES])
def test_bad_shapes_raise_invalid_argument(warp_library, backend, shapes, monkeypatch):
    monkeypatch.setenv(aw.ENV_VAR, backend)
    *dims, message = shapes
    args = [tf.zeros(d) for d in dims]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        ops.adaptive_warp(*args)


@pytest.mark.parametrize("shapes", BAD_SHAPES, ids=[s[3] for s in BAD_SHAPES])
def test_compiled_kernel_validates_shapes_itself(warp_library, shapes):
    """The C++ kernel checks too: eagerly and in a graph where shapes are unknown."""
    *dims, message = shapes
    args = [tf.zeros(d) for d in dims]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        warp_library.spiritnet_adaptive_warp(*args)
    fn = tf.function(
        warp_library.spiritnet_adaptive_warp, input_signature=[tf.TensorSpec(None)] * 3
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        fn(*args)
    grad = warp_library.spiritnet_adaptive_warp_grad
    if len(dims[0]) == 4:
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            grad(tf.zeros(dims[0]), *args)


def test_dynamic_shape_mismatch_in_composite_graph(monkeypatch):
    monkeypatch.setenv(aw.ENV_VAR, "composite")
    fn = tf.function(ops.adaptive_warp, input_signature=[tf.TensorSpec(None)] * 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="kernel must be"):
        fn(tf.zeros([1, 4, 4, 3]), tf.zeros([1, 4, 4, 2]), tf.zeros([1, 4, 5, 16]))


@pytest.mark.parametrize("backend", ["custom", "composite"])
@pytest.mark.parametrize("dtype", [tf.int32, tf.uint8, tf.string, tf.bool])
def test_non_float_dtypes_raise_invalid_argument(warp_library, backend, dtype, monkeypatch):
    monkeypatch.setenv(aw.ENV_VAR, backend)
    image = tf.zeros([1, 4, 4, 3], dtype)
    with pytest.raises(tf.errors.InvalidArgumentError, match="image must be a floating-point"):
        ops.adaptive_warp(image, tf.zeros([1, 4, 4, 2]), tf.zeros([1, 4, 4, 16]))


def test_mixed_dtypes_raise_invalid_argument(warp_library):
    with pytest.raises(tf.errors.InvalidArgumentError, match="same dtype"):
        ops.adaptive_warp(
            tf.zeros([1, 4, 4, 3]), tf.zeros([1, 4, 4, 2], tf.float64), tf.zeros([1, 4, 4, 16])
        )


def test_float16_runs_on_both_backends(warp_library, monkeypatch):
    rng = np.random.default_rng(13)
    arrays = [tf.constant(a, tf.float16) for a in random_inputs(rng, b=1, h=5, w=6, c=3, flow_scale=1)]
    outs = []
    for backend in ("custom", "composite"):
        monkeypatch.setenv(aw.ENV_VAR, backend)
        out = ops.adaptive_warp(*arrays)
        assert out.dtype == tf.float16
        outs.append(out.numpy().astype(np.float32))
    np.testing.assert_allclose(outs[0], outs[1], atol=2e-2)


# --------------------------------------------------------------------------- backend choice


def test_backend_follows_environment(warp_library, monkeypatch):
    monkeypatch.setenv(aw.ENV_VAR, "composite")
    assert ops.warp_backend() == "composite"
    monkeypatch.setenv(aw.ENV_VAR, "custom")
    assert ops.warp_backend() == "custom"
    monkeypatch.delenv(aw.ENV_VAR)
    assert ops.warp_backend() == "custom"  # auto with the library built
    monkeypatch.setenv(aw.ENV_VAR, "fastest")
    with pytest.raises(ValueError, match="SPIRITNET_WARP='fastest' is not one of"):
        ops.warp_backend()


def _traced_op_types():
    """Op types of a freshly traced function that calls `adaptive_warp`."""
    function = tf.function(lambda image, flow, kernel: ops.adaptive_warp(image, flow, kernel))
    spec = [tf.TensorSpec([1, 4, 4, c], tf.float32) for c in (1, 2, 16)]
    graph = function.get_concrete_function(*spec).graph
    return {op.type for op in graph.get_operations()}


def test_use_backend_overrides_environment_and_nests(warp_library, monkeypatch):
    monkeypatch.setenv(aw.ENV_VAR, "custom")
    assert "SpiritnetAdaptiveWarp" in _traced_op_types()
    with ops.use_backend("composite"):
        assert ops.warp_backend() == "composite"
        assert "SpiritnetAdaptiveWarp" not in _traced_op_types(), "traced inside: composite ops"
        assert os.environ[aw.ENV_VAR] == "custom", "the environment is not mutated"
        with ops.use_backend("custom"):
            assert ops.warp_backend() == "custom"
            assert "SpiritnetAdaptiveWarp" in _traced_op_types()
        assert ops.warp_backend() == "composite", "leaving the inner use restores the outer"
    assert ops.warp_backend() == "custom", "leaving restores the environment's choice"
    assert "SpiritnetAdaptiveWarp" in _traced_op_types()
    with pytest.raises(KeyError):
        with ops.use_backend("composite"):
            raise KeyError("boom")
    assert ops.warp_backend() == "custom", "restored after an exception too"
    with pytest.raises(ValueError, match="use_backend: the backend must be one of auto, custom, composite, got 'fastest'"):
        with ops.use_backend("fastest"):
            pass


def test_use_backend_is_per_thread(warp_library, monkeypatch):
    import threading

    monkeypatch.delenv(aw.ENV_VAR, raising=False)
    seen = {}
    with ops.use_backend("composite"):
        thread = threading.Thread(target=lambda: seen.update(other=ops.warp_backend()))
        thread.start()
        thread.join()
        seen["here"] = ops.warp_backend()
    assert seen == {"other": "custom", "here": "composite"}


def test_use_backend_custom_without_library(monkeypatch):
    monkeypatch.setattr(aw, "_library", None)
    monkeypatch.setattr(aw, "_load_error", "the compiled library /x/_adaptive_warp_ops.so does not exist")
    monkeypatch.setenv(aw.ENV_VAR, "composite")
    with ops.use_backend("custom"):
        with pytest.raises(RuntimeError, match=r"use_backend\('custom'\) but the adaptive-warp op .*make ops"):
            ops.warp_backend()


def test_missing_library(monkeypatch, caplog):
    monkeypatch.setattr(aw, "_library", None)
    monkeypatch.setattr(aw, "_load_error", "the compiled library /x/_adaptive_warp_ops.so does not exist")
    monkeypatch.setattr(aw, "_warned", False)
    monkeypatch.setenv(aw.ENV_VAR, "custom")
    with pytest.raises(RuntimeError, match="make ops"):
        ops.warp_backend()
    monkeypatch.setenv(aw.ENV_VAR, "auto")
    with caplog.at_level(logging.WARNING, logger=aw.__name__):
        assert ops.warp_backend() == "composite"
        assert ops.warp_backend() == "composite"
    warnings = [r for r in caplog.records if "composite" in r.getMessage()]
    assert len(warnings) == 1, "the fallback warns once"
    out = ops.adaptive_warp(tf.ones([1, 4, 4, 1]), tf.zeros([1, 4, 4, 2]), tf.constant(np.broadcast_to(BILINEAR, (1, 4, 4, 16))))
    np.testing.assert_array_equal(out.numpy(), 1.0)


def test_ops_library_was_built():
    """`make test` sets SPIRITNET_REQUIRE_OPS: then the CPU library (and, with nvcc,
    the CUDA build) must exist, so a silently skipped build fails CI."""
    if not os.environ.get("SPIRITNET_REQUIRE_OPS"):
        pytest.skip("SPIRITNET_REQUIRE_OPS not set (running outside `make test`)")
    assert os.path.exists(os.path.join(aw._LIBRARY_DIR, aw._CPU_LIBRARY))
    if shutil.which("nvcc"):
        assert os.path.exists(os.path.join(aw._LIBRARY_DIR, aw._GPU_LIBRARY))
        selftest = os.path.join(REPO, "custom_ops", "build")
        assert os.path.exists(os.path.join(selftest, "adaptive_warp_cuda_selftest"))


# --------------------------------------------------------------------------- GPU


def _warp_and_grads(library, device, arrays):
    with tf.device(device):
        args = [tf.constant(a) for a in arrays]
        with tf.GradientTape() as tape:
            tape.watch(args)
            out = library.spiritnet_adaptive_warp(*args)
            loss = tf.reduce_sum(out**2)
        return [t.numpy() for t in [out] + tape.gradient(loss, args)]


@pytest.mark.gpu
def test_gpu_kernel_matches_cpu(warp_library):
    arrays = random_inputs(np.random.default_rng(14), b=2, h=16, w=24, c=6)
    gpu = _warp_and_grads(warp_library, "/GPU:0", arrays)
    cpu = _warp_and_grads(warp_library, "/CPU:0", arrays)
    np.testing.assert_allclose(gpu[0], cpu[0], atol=1e-5)
    for g, c in zip(gpu[1:], cpu[1:]):
        np.testing.assert_allclose(g, c, rtol=1e-4, atol=1e-4)
