"""Frame synthesis: turns the warped image and context into the next frame."""

import keras
import tensorflow as tf

from spiritnet_tf.layers.common import (ResidualBlock, check_rank4, concat_channels, conv2d,
                                      static_channels)

__all__ = ["FrameSynthesis"]


@keras.saving.register_keras_serializable(package="spiritnet")
class FrameSynthesis(keras.layers.Layer):
    """Predicts a residual on the warped image; output clipped to [0, 1].

    Call: ``warped_image [B,H,W,3]`` in [0, 1], ``warped_context [B,H,W,C]``, ``flow
    [B,H,W,2]`` (the backward flow used for the warp), ``z [B,H,W,1]`` -> image
    ``[B,H,W,3]`` = ``clip(warped_image + residual, 0, 1)``.

    Network: 7x7 conv to ``width`` + ReLU, ``num_blocks`` residual blocks, 3x3 conv to 3
    channels, zero-initialised so a fresh layer returns ``clip(warped_image, 0, 1)``.
    """

    def __init__(self, width=64, num_blocks=3, **kwargs):
        super().__init__(**kwargs)
        self.width = int(width)
        self.num_blocks = int(num_blocks)
        self.stem = conv2d(self.width, 7, activation="relu", name="stem")
        self.blocks = [ResidualBlock(self.width, name=f"block{i}") for i in range(self.num_blocks)]
        self.head = conv2d(3, 3, zero_init=True, name="head")

    def build(self, warped_image_shape, warped_context_shape, flow_shape, z_shape):
        cin = static_channels(warped_image_shape, warped_context_shape, flow_shape, z_shape)
        self.stem.build(tuple(warped_image_shape[:-1]) + (cin,))
        shape = tuple(warped_image_shape[:-1]) + (self.width,)
        for block in self.blocks:
            block.build(shape)
        self.head.build(shape)

    def call(self, warped_image, warped_context, flow, z):
        check_rank4(
            self,
            warped_image=(warped_image, 3),
            warped_context=(warped_context, None),
            flow=(flow, 2),
            z=(z, 1),
        )
        x = self.stem(concat_channels(warped_image, warped_context, flow, z))
        for block in self.blocks:
            x = block(x)
        return tf.clip_by_value(warped_image + self.head(x), 0.0, 1.0)

    def compute_output_shape(self, warped_image_shape, *shapes):
        return tuple(warped_image_shape)

    def get_config(self):
        return {**super().get_config(), "width": self.width, "num_blocks": self.num_blocks}
