"""Building blocks shared by the SpiritNet networks (fill-hole, context, synthesis)."""

import keras
import tensorflow as tf

__all__ = ["ResidualBlock", "conv2d", "check_rank4", "static_channels", "concat_channels",
           "untracked_dict"]


def conv2d(filters, kernel_size, activation=None, zero_init=False, name=None):
    """A same-padded 2-D convolution; ``zero_init`` zeroes kernel and bias (identity heads)."""
    init = "zeros" if zero_init else "glorot_uniform"
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        padding="same",
        activation=activation,
        kernel_initializer=init,
        bias_initializer="zeros",
        name=name,
    )


def check_rank4(layer, **tensors):
    """Raises ValueError naming the layer and argument when a tensor is not rank 4 NHWC.

    Each keyword is ``name=(tensor, channels)``; ``channels`` None accepts any count.
    """
    for arg, (t, channels) in tensors.items():
        shape = tf.TensorShape(t.shape)
        if shape.rank is not None and shape.rank != 4:
            raise ValueError(
                f"{layer.__class__.__name__}: `{arg}` must be rank 4 [B,H,W,C], "
                f"got shape {tuple(shape)}"
            )
        if channels is not None and shape.rank == 4 and shape[-1] not in (None, channels):
            raise ValueError(
                f"{layer.__class__.__name__}: `{arg}` must have {channels} channel(s), "
                f"got {shape[-1]} (shape {tuple(shape)})"
            )


@keras.saving.register_keras_serializable(package="spiritnet")
class ResidualBlock(keras.layers.Layer):
    """conv3x3 - ReLU - conv3x3, plus the input (skip connection); no activation after the sum.

    Input and output: ``[B, H, W, filters]`` (the input must already have ``filters``
    channels, so the skip is an identity).
    """

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.conv1 = conv2d(self.filters, 3, activation="relu", name="conv1")
        self.conv2 = conv2d(self.filters, 3, name="conv2")

    def build(self, input_shape):
        if input_shape[-1] is not None and input_shape[-1] != self.filters:
            raise ValueError(
                f"ResidualBlock({self.filters}) needs {self.filters} input channels, "
                f"got {input_shape[-1]}"
            )
        shape = tuple(input_shape[:-1]) + (self.filters,)
        self.conv1.build(shape)
        self.conv2.build(shape)

    def call(self, x):
        return x + self.conv2(self.conv1(x))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.filters,)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


def static_channels(*shapes):
    """Sum of the (known) channel counts of NHWC shapes; ValueError if one is unknown."""
    total = 0
    for s in shapes:
        if s[-1] is None:
            raise ValueError(f"the channel dimension must be known, got shape {tuple(s)}")
        total += int(s[-1])
    return total


def concat_channels(*tensors):
    """Concatenates NHWC tensors along channels after casting them to the first one's dtype."""
    dtype = tensors[0].dtype
    return tf.concat([tf.cast(t, dtype) for t in tensors], axis=-1)


def untracked_dict(owner, attribute):
    """The dict ``owner.<attribute>``, created empty on first use and kept outside Keras'
    attribute tracking: for what a layer or model keeps that is neither weights nor
    configuration (its traced ``tf.function`` s)."""
    found = owner.__dict__.get(attribute)
    if found is None:
        found = {}
        object.__setattr__(owner, attribute, found)
    return found
