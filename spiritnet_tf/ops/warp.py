"""Adaptive warping: warp an image with a backward flow and learned 4x4 kernels.

This is the hot spot of every recurrent step (it warps the image and the context
features, forward and backward). Two implementations with identical maths:

* ``custom``: the compiled TensorFlow op in ``custom_ops/adaptive_warp`` (CPU
  kernel on TensorFlow's thread pool, CUDA kernel, separate gradient op).
* ``composite``: stock TensorFlow ops (16 gathers and a select). It is the
  reference in tests and the path used for export (TFLite, ONNX, stock TF
  Serving), because those runtimes do not know the custom op.

``SPIRITNET_WARP`` chooses the user-level default: ``auto`` (default; compiled
when the library is built, else composite with one warning), ``custom`` (error
with build instructions if the library is missing) or ``composite``. Code that
needs one backend (the exports trace the composite one) says so with the
`use_backend` context manager, which overrides the variable in its thread only.
"""

import contextlib
import logging
import os
import threading

import numpy as np
import tensorflow as tf

__all__ = ["adaptive_warp", "adaptive_warp_composite", "lanczos_warp", "warp_backend", "use_backend",
           "load_library", "cpu_vector_path"]

ENV_VAR = "SPIRITNET_WARP"
BACKENDS = ("auto", "custom", "composite")
_CPU_LIBRARY = "_adaptive_warp_ops.so"
_GPU_LIBRARY = "_adaptive_warp_ops_gpu.so"
_LIBRARY_DIR = os.path.dirname(os.path.abspath(__file__))
BUILD_HELP = (
    "Build it with `make ops` in the spiritnet-tf checkout (it needs g++ and the full "
    "`tensorflow` wheel, whose headers the build uses), or set SPIRITNET_WARP=composite "
    "to use the pure-TensorFlow implementation."
)

_log = logging.getLogger(__name__)
_lock = threading.Lock()
_library = None  # the loaded op module, once loaded
_library_file = None  # the path it was loaded from
_load_error = None  # why loading failed, once tried
_warned = False
_override = threading.local()  # .backend: the innermost use_backend's choice in this thread


def _library_path():
    """The GPU build when TensorFlow sees a GPU and it exists, else the CPU build."""
    gpu = os.path.join(_LIBRARY_DIR, _GPU_LIBRARY)
    if os.path.exists(gpu) and tf.config.list_physical_devices("GPU"):
        return gpu
    return os.path.join(_LIBRARY_DIR, _CPU_LIBRARY)


def load_library():
    """Loads the compiled op library once and returns it, or None if unavailable.

    Call this before ``tf.saved_model.load`` on a SavedModel exported with the
    custom op, so that TensorFlow knows the op.
    """
    global _library, _library_file, _load_error
    with _lock:
        if _library is None and _load_error is None:
            path = _library_path()
            if not os.path.exists(path):
                _load_error = f"the compiled library {path} does not exist"
            else:
                try:
                    _library = tf.load_op_library(path)
                    _library_file = path
                except (tf.errors.NotFoundError, OSError) as e:
                    _load_error = f"loading {path} failed: {e}"
    return _library


def cpu_vector_path():
    """The instruction set the compiled op's CPU kernels use in this process:
    ``"avx512"`` (16 floats a vector), ``"avx2"`` (8) or ``"baseline"`` (4: SSE2 on
    x86-64, NEON elsewhere); None when the library is not loaded.

    The library picks the best one the processor has, once per process; the
    environment variable ``SPIRITNET_WARP_ISA`` (``baseline``, ``avx2`` or ``avx512``),
    set before the first warp, caps it, so that tests can run the narrower paths.
    """
    if load_library() is None:
        return None
    import ctypes

    isa = ctypes.CDLL(_library_file).spiritnet_adaptive_warp_isa()  # the loaded copy
    return ("baseline", "avx2", "avx512")[isa]


def _requested_backend():
    """The requested backend and who asked: the innermost `use_backend` of this
    thread, else ``SPIRITNET_WARP`` (read on every call)."""
    override = getattr(_override, "backend", None)
    if override is not None:
        return override, f"use_backend({override!r})"
    value = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if value not in BACKENDS:
        raise ValueError(
            f"{ENV_VAR}={value!r} is not one of {', '.join(BACKENDS)}"
        )
    return value, f"{ENV_VAR}={value}"


@contextlib.contextmanager
def use_backend(name):
    """Context manager: `adaptive_warp` uses backend ``name`` (one of `BACKENDS`) inside it.

    It overrides ``SPIRITNET_WARP`` for the current thread only and restores the
    previous choice on exit, so uses nest. Functions are traced with the backend
    in force when they are traced: wrap the tracing (``get_concrete_function``,
    ``tf.saved_model.save``, a converter), not only the call.

    >>> with use_backend("composite"):
    ...     warp_backend()
    'composite'
    """
    if not isinstance(name, str) or name.strip().lower() not in BACKENDS:
        raise ValueError(f"use_backend: the backend must be one of {', '.join(BACKENDS)}, got {name!r}")
    previous = getattr(_override, "backend", None)
    _override.backend = name.strip().lower()
    try:
        yield
    finally:
        _override.backend = previous


def warp_backend():
    """Which implementation `adaptive_warp` runs now: ``"custom"`` or ``"composite"``.

    Follows the innermost `use_backend` of this thread, else ``SPIRITNET_WARP``
    (read on every call). With ``custom`` and no compiled library this raises
    ``RuntimeError`` with build instructions.
    """
    global _warned
    requested, source = _requested_backend()
    if requested == "composite":
        return "composite"
    if load_library() is not None:
        return "custom"
    if requested == "custom":
        raise RuntimeError(
            f"{source} but the adaptive-warp op is not available: "
            f"{_load_error}. {BUILD_HELP}"
        )
    if not _warned:
        _warned = True
        _log.warning(
            "spiritnet_tf: compiled adaptive-warp op unavailable (%s); using the slower "
            "composite TensorFlow implementation. %s",
            _load_error,
            BUILD_HELP,
        )
    return "composite"


def _invalid(message):
    return tf.errors.InvalidArgumentError(None, None, f"adaptive_warp: {message}")


def _check_inputs(image, flow, kernel):
    """Static checks of rank, channels, sizes and dtypes, with messages naming the problem."""
    for name, t, layout in (
        ("image", image, "[B,H,W,C]"),
        ("flow", flow, "[B,H,W,2]"),
        ("kernel", kernel, "[B,H,W,16]"),
    ):
        if not t.dtype.is_floating:
            raise _invalid(f"{name} must be a floating-point tensor, got {t.dtype.name}")
        if t.shape.rank is not None and t.shape.rank != 4:
            raise _invalid(f"{name} must be rank 4 {layout}, got shape {t.shape}")
    if not image.dtype == flow.dtype == kernel.dtype:
        raise _invalid(
            "image, flow and kernel must have the same dtype, got "
            f"{image.dtype.name}, {flow.dtype.name}, {kernel.dtype.name}"
        )
    for name, t, channels in (("flow", flow, 2), ("kernel", kernel, 16)):
        if t.shape.rank == 4 and t.shape[3] is not None and t.shape[3] != channels:
            raise _invalid(f"{name} must have {channels} channels, got {t.shape[3]}")
    if image.shape.rank == 4:
        for axis, what in enumerate(("batch size", "height", "width")):
            for name, t in (("flow", flow), ("kernel", kernel)):
                a, b = image.shape[axis], t.shape[axis] if t.shape.rank == 4 else None
                if a is not None and b is not None and a != b:
                    raise _invalid(f"{what} of {name} ({b}) does not match the image's ({a})")


def _dynamic_shape_asserts(image, flow, kernel):
    """Runtime shape checks for the composite path when shapes are not static."""
    static = all(t.shape.is_fully_defined() for t in (image, flow, kernel))
    if static:
        return []
    asserts = []
    for name, t, channels in (("flow", flow, 2), ("kernel", kernel, 16)):
        asserts.append(
            tf.debugging.assert_equal(
                tf.shape(t),
                tf.concat([tf.shape(image)[:3], [channels]], 0),
                message=f"adaptive_warp: {name} must be [B,H,W,{channels}] with the "
                "image's batch size, height and width",
            )
        )
    return asserts


def _window(image, flow, size=4):
    """The ``size`` x ``size`` window around ``q = p + flow(p)`` (4: the warp's, docs/design.md §3.7).

    Returns ``(taps, alpha, beta, inside)``: ``taps(i, j)`` gathers ``image`` at row
    ``clamp(y0 - k + i)``, col ``clamp(x0 - k + j)`` with ``k = size / 2 - 1``
    ([B,H,W,C]); ``alpha``, ``beta`` the fractional parts of ``q``; ``inside`` where
    ``q`` is finite and in the image.
    """
    dtype = image.dtype
    shape = tf.shape(image)
    b, h, w, c = shape[0], shape[1], shape[2], shape[3]
    ys, xs = tf.meshgrid(tf.range(h), tf.range(w), indexing="ij")
    fx, fy = flow[..., 0], flow[..., 1]
    qx = tf.cast(xs, dtype) + fx
    qy = tf.cast(ys, dtype) + fy
    # |f| <= max is False for NaN and +-inf; tf.math.is_finite has no TFLite builtin.
    finite = (tf.abs(fx) <= dtype.max) & (tf.abs(fy) <= dtype.max)
    inside = (
        finite
        & (qx >= 0)
        & (qx <= tf.cast(w - 1, dtype))
        & (qy >= 0)
        & (qy <= tf.cast(h - 1, dtype))
    )
    # Outside pixels use a harmless position so nothing non-finite reaches the
    # arithmetic (or the gradients) of the branch that tf.where discards.
    qx = tf.where(inside, qx, tf.zeros_like(qx))
    qy = tf.where(inside, qy, tf.zeros_like(qy))
    x0f, y0f = tf.floor(qx), tf.floor(qy)
    x0, y0 = tf.cast(x0f, tf.int32), tf.cast(y0f, tf.int32)
    k = size // 2 - 1
    cols = [tf.clip_by_value(x0 - k + j, 0, w - 1) for j in range(size)]
    rows = [tf.clip_by_value(y0 - k + i, 0, h - 1) * w for i in range(size)]
    flat = tf.reshape(image, [-1, c])
    base = tf.reshape(tf.range(b) * (h * w), [-1, 1, 1])

    def taps(i, j):
        return tf.gather(flat, base + rows[i] + cols[j])

    return taps, qx - x0f, qy - y0f, inside


def adaptive_warp_composite(image, flow, kernel):
    """Pure-TensorFlow adaptive warp (same maths as the compiled op, see `adaptive_warp`).

    Built from builtin-convertible ops only (GATHER, FLOOR, SELECT, ...), so it
    exports to TFLite and ONNX. Gradients come from TensorFlow's autodiff.
    """
    taps, alpha, beta, inside = _window(image, flow)
    wx = [1 - alpha, 1 - alpha, alpha, alpha]
    wy = [1 - beta, 1 - beta, beta, beta]
    out = tf.zeros_like(image)
    for i in range(4):
        for j in range(4):
            weight = kernel[..., 4 * i + j] * wy[i] * wx[j]
            out += weight[..., None] * taps(i, j)
    return tf.where(inside[..., None], out, image)




def _lanczos4_weights(t):
    """Lanczos-4 weights of the taps at offsets -3..4 for fraction t, normalised to sum 1
    (OpenCV's ``INTER_LANCZOS4``): ``sinc(d) sinc(d / 4)`` at distance d."""
    weights = []
    for i in range(8):
        d = (t + 3.0 - i) * (np.pi / 4)  # pi/4 times the distance
        centre = tf.abs(d) < 1e-6  # the limit there is 1
        safe = tf.where(centre, tf.ones_like(d), d)
        weights.append(tf.where(centre, tf.ones_like(d), tf.sin(4 * safe) * tf.sin(safe) / (4 * safe * safe)))
    total = tf.add_n(weights)
    return [w / total for w in weights]


def lanczos_warp(image, flow):
    """Lanczos-4 backward warp ``out(p) = image(p + flow(p))`` (copy where outside), composite TF.

    An 8x8 window with border-clamped taps and the copy rule of `adaptive_warp`
    (docs/design.md §3.7), weights as OpenCV's ``remap`` with ``INTER_LANCZOS4``: sharper than
    bilinear or bicubic sampling, which soften every sub-pixel shift. Used for the
    full-resolution frames of `spiritnet_tf.animate` and ``serving_default``.
    ``image`` [B,H,W,C], ``flow`` [B,H,W,2].
    """
    image = tf.convert_to_tensor(image)
    flow = tf.convert_to_tensor(flow, image.dtype)
    taps, alpha, beta, inside = _window(image, flow, size=8)
    wx, wy = _lanczos4_weights(alpha), _lanczos4_weights(beta)
    out = tf.zeros_like(image)
    for i in range(8):
        row = tf.zeros_like(image)
        for j in range(8):
            row += wx[j][..., None] * taps(i, j)
        out += wy[i][..., None] * row
    return tf.where(inside[..., None], out, image)


@tf.autograph.experimental.do_not_convert  # Python-level dispatch only, no tensor control flow
def adaptive_warp(image, flow, kernel, name=None):
    """Warps ``image`` with backward ``flow`` and a learned 4x4 ``kernel`` per pixel.

    Args:
      image: ``[B, H, W, C]`` float tensor (any number of channels: RGB or
        context features).
      flow: ``[B, H, W, 2]`` backward flow ``(dx, dy)`` in pixels:
        ``out(p)`` is taken from ``image`` around ``q = p + flow(p)``.
      kernel: ``[B, H, W, 16]`` interpolation kernel per output pixel, a 4x4
        window in row-major order around ``floor(q)`` (rows/cols ``-1..+2``).
      name: optional name scope.

    Returns:
      ``[B, H, W, C]``: ``sum_ij kernel[4i+j] * wy(i) * wx(j) * image(r_i, s_j)``
      with bilinear factors ``wx = (1-a, 1-a, a, a)``, ``wy`` likewise, no
      normalisation, border-clamped taps. Where ``q`` is outside the image or the
      flow is not finite the input pixel is copied. With ``kernel`` = 1 on the
      centre 2x2 taps (indices 5, 6, 9, 10) and 0 elsewhere this is bilinear
      sampling. Contract: ``docs/design.md`` §3.7.

    Raises:
      tf.errors.InvalidArgumentError: wrong rank, mismatched batch/height/width,
        ``flow`` without 2 or ``kernel`` without 16 channels, non-float or
        mixed dtypes.
    """
    with tf.name_scope(name or "adaptive_warp"):
        image = tf.convert_to_tensor(image)
        flow = tf.convert_to_tensor(flow)
        kernel = tf.convert_to_tensor(kernel)
        _check_inputs(image, flow, kernel)
        if warp_backend() == "custom":
            if image.dtype in (tf.float32, tf.float64):
                return _library.spiritnet_adaptive_warp(image, flow, kernel)
            out = _library.spiritnet_adaptive_warp(
                tf.cast(image, tf.float32), tf.cast(flow, tf.float32), tf.cast(kernel, tf.float32)
            )
            return tf.cast(out, image.dtype)
        with tf.control_dependencies(_dynamic_shape_asserts(image, flow, kernel)):
            return adaptive_warp_composite(image, flow, kernel)


@tf.RegisterGradient("SpiritnetAdaptiveWarp")
def _adaptive_warp_grad(op, grad):
    library = load_library()
    if library is None:
        raise RuntimeError(f"adaptive-warp gradient op unavailable: {_load_error}. {BUILD_HELP}")
    return library.spiritnet_adaptive_warp_grad(grad, *op.inputs)
