"""DAFI, depth-aware flow initialisation: carry the flow one frame on (paper Eq. 1)."""

import keras
import tensorflow as tf

from spiritnet_tf.config import DAFI_HOLES
from spiritnet_tf.layers.common import check_rank4

__all__ = ["DAFI", "fill_holes"]

FILL_LEVELS = 6  # push-pull pyramid levels of `fill_holes`: reaches 2^6 = 64 px from data


def fill_holes(values, holes, levels=FILL_LEVELS, epsilon=1e-6):
    """``values`` [B,H,W,C] with its holes (``holes`` [B,H,W,1], 1 = hole) filled from the
    values around them, by push-pull: masked 2x2 averages build a pyramid of ``levels``
    coarser levels (each cell the mean of its valid values), then, coarse to fine, every
    cell without valid values takes the bilinear upsampling of the level below it. Valid
    values come back unchanged; a hole takes a smooth mix of the nearest valid values
    (within 2^levels pixels; beyond that, or when nothing is valid, 0). Differentiable;
    average pooling and bilinear resizing only, so it exports to TFLite and ONNX."""
    valid = 1.0 - tf.cast(holes, values.dtype)
    pyramid = [(values * valid, valid)]
    for _ in range(levels):
        total, weight = pyramid[-1]
        pyramid.append((tf.nn.avg_pool2d(total, 2, 2, "SAME"),
                        tf.nn.avg_pool2d(weight, 2, 2, "SAME")))
    total, weight = pyramid.pop()
    filled = total / tf.maximum(weight, epsilon)
    for total, weight in reversed(pyramid):
        coarse = tf.cast(tf.image.resize(filled, tf.shape(total)[1:3], "bilinear"), values.dtype)
        filled = tf.where(weight > epsilon, total / tf.maximum(weight, epsilon), coarse)
    return filled


@keras.saving.register_keras_serializable(package="spiritnet")
class DAFI(keras.layers.Layer):
    """Predicts ``F_{t+1}`` from ``F_t`` assuming constant motion, splatting by inverse depth.

    Content at pixel y of frame t came from ``y + F_t(y)`` (backward flow, docs/design.md §2); it
    keeps moving, so it lands at ``p = y - F_t(y)`` in frame t+1 and carries its flow. Each
    source is spread to the 4 integer neighbours of ``p`` with bilinear weights times
    ``z_t(y)``; numerator ``sum w*F`` and denominator ``sum w`` are accumulated with
    ``tf.tensor_scatter_nd_add`` (targets outside the frame are dropped), and
    ``F_{t+1} = num / max(den, eps)``: where several sources collide this is the paper's
    Eq. 1, a mean weighted by z. With the "max" depth mapping (the bundled weights) z is
    1/D up to a per-image constant, which cancels: a mean weighted by 1/D. With the
    "percentile" mapping (new configs, `spiritnet_tf.depth.inverse_depth`) z is relative
    inverse depth mapped per photo to (0, 1]: the nearer source still weighs more (the
    order is kept), but the weights are no longer ratios of 1/D.

    Call: ``flow [B,H,W,2]`` backward flow in pixels, ``inverse_depth [B,H,W,1]`` z in
    (0, 1] -> ``(next_flow [B,H,W,2], hole_mask [B,H,W,1])``; ``hole_mask`` is 1.0 where
    ``den < eps`` (nothing landed: a hole for the fill-hole network), else 0.0, and
    ``next_flow`` at exact holes follows ``holes``: "zero" (the paper, and the weights
    bundled before it existed) leaves 0 there; "fill" (`fill_holes`) gives them the
    flow around them, so that the band a moving picture uncovers at its border starts
    from its neighbours' motion instead of standing still (a still band beside moving
    content is stretched into smears, frame after frame). The fill-hole network refines
    either. Differentiable w.r.t. flow and z (almost everywhere: the taps change where
    ``p`` crosses an integer). No weights.
    """

    def __init__(self, epsilon=1e-6, holes="zero", **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        if holes not in DAFI_HOLES:
            raise ValueError(f"DAFI: holes must be one of {DAFI_HOLES}, got {holes!r}")
        self.holes = holes

    def call(self, flow, inverse_depth):
        check_rank4(self, flow=(flow, 2), inverse_depth=(inverse_depth, 1))
        z = tf.cast(inverse_depth, flow.dtype)
        shape = tf.shape(flow)
        b, h, w = shape[0], shape[1], shape[2]
        ys, xs = tf.meshgrid(tf.range(h), tf.range(w), indexing="ij")
        px = tf.cast(xs, flow.dtype) - flow[..., 0]  # [B,H,W] target positions
        py = tf.cast(ys, flow.dtype) - flow[..., 1]
        x0f, y0f = tf.floor(px), tf.floor(py)
        ax, ay = px - x0f, py - y0f
        x0, y0 = tf.cast(x0f, tf.int32), tf.cast(y0f, tf.int32)
        base = tf.reshape(tf.range(b) * (h * w), [-1, 1, 1])
        values = tf.concat([flow * z, z], axis=-1)  # [B,H,W,3]: z*F and z
        indices, updates = [], []
        for dy, wy in ((0, 1 - ay), (1, ay)):
            for dx, wx in ((0, 1 - ax), (1, ax)):
                tx, ty = x0 + dx, y0 + dy
                inside = (tx >= 0) & (tx < w) & (ty >= 0) & (ty < h)
                weight = tf.where(inside, wx * wy, tf.zeros_like(wx))
                index = tf.where(inside, base + ty * w + tx, tf.zeros_like(tx))
                indices.append(tf.reshape(index, [-1, 1]))
                updates.append(tf.reshape(weight[..., None] * values, [-1, 3]))
        acc = tf.tensor_scatter_nd_add(
            tf.zeros(tf.stack([b * h * w, 3]), flow.dtype),
            tf.concat(indices, axis=0),
            tf.concat(updates, axis=0),
        )
        acc = tf.reshape(acc, tf.stack([b, h, w, 3]))
        num, den = acc[..., :2], acc[..., 2:]
        next_flow = num / tf.maximum(den, self.epsilon)
        hole_mask = tf.cast(den < self.epsilon, flow.dtype)
        if self.holes == "fill":
            next_flow = fill_holes(next_flow, hole_mask, epsilon=self.epsilon)
        return next_flow, hole_mask

    def compute_output_shape(self, flow_shape, inverse_depth_shape):
        return tuple(flow_shape), tuple(flow_shape[:-1]) + (1,)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon, "holes": self.holes}
