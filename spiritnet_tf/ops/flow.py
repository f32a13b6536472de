"""Flow helpers shared by the model, `animate`, the exports and the evaluation.

* `BILINEAR_KERNEL`: the 4x4 adaptive-warp kernel that makes the warp exactly bilinear.
* `bilinear_warp`: backward warp ``out(p) = image(p + flow(p))``, copying the pixel itself
  where ``p + flow(p)`` falls outside the picture (the warp op's rule, docs/design.md).
* `compose_flows`: per-step backward flows ``F_t`` -> flows ``G_t`` back to the input.
* `clamp_to_frame`: a backward flow whose sample points are moved to the nearest point of
  the picture, so that a warp repeats the edge instead of copying the pixel itself.
"""

import numpy as np
import tensorflow as tf

from spiritnet_tf.ops.warp import adaptive_warp

__all__ = ["BILINEAR_KERNEL", "BILINEAR_TAPS", "bilinear_warp", "clamp_to_frame", "compose_flows"]

# The 4x4 kernel (row-major) that makes `spiritnet_tf.ops.adaptive_warp` exact bilinear
# sampling: 1 on the centre 2x2 taps, 0 elsewhere.
BILINEAR_TAPS = (5, 6, 9, 10)
BILINEAR_KERNEL = np.zeros(16, np.float32)
BILINEAR_KERNEL[list(BILINEAR_TAPS)] = 1.0


def _as_batch(x, channels=None, name="tensor"):
    """[..., H, W, C] -> ([N, H, W, C] float32, leading shape) with N = prod(leading)."""
    x = tf.convert_to_tensor(x, tf.float32)
    if x.shape.rank is not None and x.shape.rank < 3:
        raise ValueError(f"{name} must be [..., H, W, C], got shape {x.shape}")
    if channels is not None and x.shape[-1] is not None and x.shape[-1] != channels:
        raise ValueError(f"{name} must have {channels} channels, got shape {x.shape}")
    shape = tf.shape(x)
    return tf.reshape(x, tf.concat([[-1], shape[-3:]], 0)), shape[:-3]


def bilinear_warp(image, flow):
    """Bilinear backward warp: out(p) = image(p + flow(p)) (copy where p + flow is outside).

    ``image`` [..., H, W, C], ``flow`` [..., H, W, 2] with the same leading dimensions.
    This is `spiritnet_tf.ops.adaptive_warp` with `BILINEAR_KERNEL`.
    """
    image, leading = _as_batch(image, name="image")
    flow, _ = _as_batch(flow, 2, name="flow")
    kernel = tf.broadcast_to(BILINEAR_KERNEL, tf.concat([tf.shape(flow)[:3], [16]], 0))
    out = adaptive_warp(image, flow, kernel)
    return tf.reshape(out, tf.concat([leading, tf.shape(image)[1:]], 0))


def compose_flows(flows):
    """Backward flows ``F_t`` [B, T, h, w, 2] -> flows ``G_t`` back to the input, same shape.

    ``G_1 = F_1`` and ``G_t(x) = F_t(x) + G_{t-1}(x + F_t(x))`` (bilinear), so that frame t
    is approximately ``I0(x + G_t(x))`` whatever the model's ``resample_from``.
    """
    flows = tf.convert_to_tensor(flows, tf.float32)
    steps = tf.transpose(flows, [1, 0, 2, 3, 4])  # [T, B, h, w, 2]
    composed = tf.scan(lambda previous, flow: flow + bilinear_warp(previous, flow), steps,
                       initializer=tf.zeros_like(steps[0]))
    return tf.transpose(composed, [1, 0, 2, 3, 4])


def clamp_to_frame(flow, size=None, first_row=0):
    """``flow`` [..., H, W, 2] with each sample point ``q = p + flow(p)`` clamped to the
    picture, ``[0, W - 1] x [0, H - 1]``: warped with it, a pixel whose point lies outside
    shows the nearest edge pixel (clamp-to-edge) instead of itself (the warp op's copy
    rule, docs/design.md §3.7). Points inside are unchanged, an infinite flow goes to the
    edge, a NaN stays NaN (the warp then copies). The model's ``warp_outside="clamp"``
    renders with it. ``size`` (H', W') and ``first_row``: the flow holds rows
    ``first_row ..`` of a picture of that size (a band of a frame, `spiritnet_tf.fullres`);
    default: the whole picture, the flow's own size.
    """
    flow = tf.convert_to_tensor(flow, tf.float32)
    shape = tf.shape(flow)
    h, w = shape[-3], shape[-2]
    height, width = (h, w) if size is None else (size[0], size[1])
    ys, xs = tf.meshgrid(tf.range(h) + first_row, tf.range(w), indexing="ij")
    grid = tf.cast(tf.stack([xs, ys], -1), tf.float32)  # [H, W, 2] as (x, y)
    upper = tf.cast(tf.stack([width - 1, height - 1]), tf.float32)
    return tf.clip_by_value(grid + flow, 0.0, upper) - grid
