"""Kernel estimator (DAIN-style U-Net): a 4x4 interpolation kernel per pixel for the warp."""

import keras
import tensorflow as tf

from spiritnet_tf.layers.common import check_rank4, concat_channels, conv2d, static_channels
from spiritnet_tf.ops.flow import BILINEAR_KERNEL

__all__ = ["KernelEstimator", "BILINEAR_KERNEL"]



@keras.saving.register_keras_serializable(package="spiritnet")
class KernelEstimator(keras.layers.Layer):
    """U-Net from (image, z) to a 16-channel interpolation kernel for `adaptive_warp`.

    Call: ``image [B,H,W,3]`` in [0, 1], ``z [B,H,W,1]`` inverse depth -> kernel
    ``[B,H,W,16]`` (4x4 taps, row-major, docs/design.md §3.7). H and W must be multiples of
    ``2**len(widths)`` (the model pads to 32).

    Encoder: per width two 3x3 conv + ReLU, then 2x2 average pooling; a bottleneck of two
    convs at the last width; decoder: bilinear x2 upsampling, concatenation with the skip,
    two convs. Head: 3x3 conv to 16 channels with zero kernel and the bilinear kernel
    as bias, so a fresh layer outputs exactly ``BILINEAR_KERNEL`` at every pixel and the
    warp starts as bilinear sampling. The head is linear (no activation).
    """

    def __init__(self, widths=(16, 32, 64, 128), **kwargs):
        super().__init__(**kwargs)
        self.widths = tuple(int(w) for w in widths)
        if not self.widths:
            raise ValueError("KernelEstimator: widths must not be empty")

        def pair(w, prefix):
            return [conv2d(w, 3, activation="relu", name=f"{prefix}_conv{k}") for k in (1, 2)]

        self.down = [pair(w, f"down{i}") for i, w in enumerate(self.widths)]
        self.bottleneck = pair(self.widths[-1], "bottleneck")
        self.up = [pair(w, f"up{i}") for i, w in enumerate(self.widths)]
        self.pool = keras.layers.AveragePooling2D(2, name="pool")
        self.head = conv2d(16, 3, zero_init=True, name="head")

    @property
    def multiple(self):
        """H and W must be multiples of this (``2**len(widths)``)."""
        return 2 ** len(self.widths)

    def build(self, image_shape, z_shape):
        cin = static_channels(image_shape, z_shape)
        lead = (None, None, None)
        for convs, w in zip(self.down, self.widths):
            convs[0].build(lead + (cin,))
            convs[1].build(lead + (w,))
            cin = w
        for conv in self.bottleneck:
            conv.build(lead + (cin,))
        for i in reversed(range(len(self.widths))):
            w = self.widths[i]
            self.up[i][0].build(lead + (cin + w,))
            self.up[i][1].build(lead + (w,))
            cin = w
        self.head.build(lead + (cin,))
        self.head.bias.assign(BILINEAR_KERNEL)

    def call(self, image, z):
        check_rank4(self, image=(image, 3), z=(z, 1))
        m = self.multiple
        for axis, name in ((1, "height"), (2, "width")):
            size = image.shape[axis]
            if size is not None and size % m:
                raise ValueError(
                    f"KernelEstimator: {name} {size} is not a multiple of {m} "
                    f"(2**len(widths)); pad the input first"
                )
        x = concat_channels(image, z)
        skips = []
        for convs in self.down:
            x = convs[1](convs[0](x))
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck[1](self.bottleneck[0](x))
        for i in reversed(range(len(self.widths))):
            up = tf.image.resize(x, tf.shape(skips[i])[1:3], method="bilinear")  # x2
            x = tf.concat([tf.cast(up, x.dtype), skips[i]], axis=-1)
            x = self.up[i][1](self.up[i][0](x))
        return self.head(x)

    def compute_output_shape(self, image_shape, z_shape):
        return tuple(image_shape[:-1]) + (16,)

    def get_config(self):
        return {**super().get_config(), "widths": list(self.widths)}
