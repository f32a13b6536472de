"""Context extractor (DAIN-style): per-pixel features warped together with the image."""

import keras
import tensorflow as tf

from spiritnet_tf.layers.common import ResidualBlock, check_rank4, conv2d

__all__ = ["ContextExtractor"]


@keras.saving.register_keras_serializable(package="spiritnet")
class ContextExtractor(keras.layers.Layer):
    """7x7 conv to ``width`` + ReLU, then two residual blocks; the three outputs concatenated.

    Call: ``image [B,H,W,3]`` float in [0, 1] -> features ``[B,H,W,3*width]``
    (``output_channels``). Any H, W.
    """

    def __init__(self, width=64, **kwargs):
        super().__init__(**kwargs)
        self.width = int(width)
        self.stem = conv2d(self.width, 7, activation="relu", name="stem")
        self.blocks = [ResidualBlock(self.width, name=f"block{i}") for i in range(2)]

    @property
    def output_channels(self):
        """Channel count C of the features."""
        return 3 * self.width

    def build(self, image_shape):
        self.stem.build(image_shape)
        shape = tuple(image_shape[:-1]) + (self.width,)
        for block in self.blocks:
            block.build(shape)

    def call(self, image):
        check_rank4(self, image=(image, 3))
        x = self.stem(image)
        outputs = [x]
        for block in self.blocks:
            x = block(x)
            outputs.append(x)
        return tf.concat(outputs, axis=-1)

    def compute_output_shape(self, image_shape):
        return tuple(image_shape[:-1]) + (self.output_channels,)

    def get_config(self):
        return {**super().get_config(), "width": self.width}
