"""Flow fill-hole network: refines the DAFI flow and fills its holes (paper §3.1)."""

import keras

from spiritnet_tf.layers.common import (ResidualBlock, check_rank4, concat_channels, conv2d,
                                      static_channels)

__all__ = ["FlowFillHole"]


@keras.saving.register_keras_serializable(package="spiritnet")
class FlowFillHole(keras.layers.Layer):
    """Predicts a residual on the DAFI flow from the flow, its hole mask, image, context and z.

    Call: ``flow_init [B,H,W,2]`` (backward flow in pixels, docs/design.md §2), ``hole_mask
    [B,H,W,1]`` (1 = hole), ``image [B,H,W,3]`` in [0, 1], ``context [B,H,W,C]``, ``z
    [B,H,W,1]`` inverse depth in (0, 1] -> flow ``[B,H,W,2]`` = ``flow_init + residual``.

    Network: 3x3 conv to ``width`` + ReLU, ``num_blocks`` residual blocks, 3x3 conv to 2
    channels. The last conv is zero-initialised, so a fresh layer returns ``flow_init``
    unchanged. With ``iterations`` > 1 the same weights are applied again to the updated
    flow (the paper's "iterative" fill-hole); the hole mask stays the DAFI one.

    With ``global_context`` (not in the paper) the stem's features are also averaged over
    the whole picture, passed through two dense layers (the second zero-initialised, so a
    fresh layer still returns ``flow_init``) and added back at every pixel: 3x3
    convolutions alone see a few pixels, and whether the whole picture pans steadily or
    shakes (which decides whether a flow carries on) is a property of all of it.

    With ``global_gain`` (needs ``global_context``; not in the paper) the flow is also
    scaled by one factor per picture, ``1 + tanh(g)`` with ``g`` a zero-initialised dense
    layer of that average, before the residual is added: how much of a flow carries on is
    then one multiplication, which a few ReLU convolutions can only approximate.
    """

    def __init__(self, width=64, num_blocks=3, iterations=1, global_context=False,
                 global_gain=False, **kwargs):
        super().__init__(**kwargs)
        self.width = int(width)
        self.num_blocks = int(num_blocks)
        self.iterations = int(iterations)
        self.global_context = bool(global_context)
        self.global_gain = bool(global_gain)
        if self.iterations < 1:
            raise ValueError(f"FlowFillHole: iterations must be >= 1, got {iterations}")
        if self.global_gain and not self.global_context:
            raise ValueError("FlowFillHole: global_gain needs global_context")
        self.gain = None
        if self.global_gain:
            self.gain = keras.layers.Dense(1, kernel_initializer="zeros", name="global_gain")
        self.stem = conv2d(self.width, 3, activation="relu", name="stem")
        self.global_layers = []
        if self.global_context:
            self.global_layers = [
                keras.layers.Dense(self.width, activation="relu", name="global_in"),
                keras.layers.Dense(self.width, kernel_initializer="zeros", name="global_out"),
            ]
        self.blocks = [ResidualBlock(self.width, name=f"block{i}") for i in range(self.num_blocks)]
        self.head = conv2d(2, 3, zero_init=True, name="head")

    def build(self, flow_init_shape, hole_mask_shape, image_shape, context_shape, z_shape):
        cin = static_channels(flow_init_shape, hole_mask_shape, image_shape, context_shape, z_shape)
        self.stem.build(tuple(flow_init_shape[:-1]) + (cin,))
        shape = tuple(flow_init_shape[:-1]) + (self.width,)
        for block in self.blocks:
            block.build(shape)
        self.head.build(shape)
        for layer in self.global_layers:
            layer.build((flow_init_shape[0], self.width))
        if self.gain is not None:
            self.gain.build((flow_init_shape[0], self.width))

    def call(self, flow_init, hole_mask, image, context, z):
        check_rank4(
            self,
            flow_init=(flow_init, 2),
            hole_mask=(hole_mask, 1),
            image=(image, 3),
            context=(context, None),
            z=(z, 1),
        )
        flow = flow_init
        for _ in range(self.iterations):
            x = self.stem(concat_channels(flow, hole_mask, image, context, z))
            if self.global_layers:
                g = summary = keras.ops.mean(x, axis=(1, 2))
                for layer in self.global_layers:
                    g = layer(g)
                x = x + g[:, None, None, :]
                if self.gain is not None:  # one factor per picture, 1 at initialisation
                    flow = flow * (1.0 + keras.ops.tanh(self.gain(summary)))[:, None, None, :]
            for block in self.blocks:
                x = block(x)
            flow = flow + self.head(x)
        return flow

    def compute_output_shape(self, flow_init_shape, *shapes):
        return tuple(flow_init_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "width": self.width,
            "num_blocks": self.num_blocks,
            "iterations": self.iterations,
            "global_context": self.global_context,
            "global_gain": self.global_gain,
        }
