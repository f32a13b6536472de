"""Training losses of SpiritNet (docs/design.md §3.9): flow L1, VGG-19 Gram style loss,
total variation and the scale-invariant log-depth loss of the depth net (3.1).

Each function reduces to a float32 scalar (mean over the batch and frames).
Frames may be given as ``[..., H, W, C]`` with any number of leading axes (for
example ``[B, T, H, W, 3]``).
"""

import keras
import tensorflow as tf

from spiritnet_tf.config import STYLE_LAYERS
from spiritnet_tf.limits import MIN_INVERSE_DEPTH

__all__ = ["flow_l1", "total_variation", "sharpness_gap", "scale_invariant_log_depth", "StyleLoss", "gram_matrix"]

# Caffe-style VGG preprocessing (what keras.applications.vgg19 weights expect):
# RGB in [0, 1] -> BGR in [0, 255] minus the ImageNet channel means.
_VGG_BGR_MEAN = (103.939, 116.779, 123.68)


def _as_images(x):
    """Folds leading axes into one: [..., H, W, C] -> [N, H, W, C]."""
    x = tf.convert_to_tensor(x, tf.float32)
    shape = tf.shape(x)
    return tf.reshape(x, tf.concat([[-1], shape[-3:]], 0))


def flow_l1(predicted, target):
    """Mean absolute difference of backward flows ``[..., H, W, 2]`` (pixels)."""
    return tf.reduce_mean(tf.abs(tf.cast(predicted, tf.float32) - tf.cast(target, tf.float32)))


def total_variation(images):
    """Mean absolute difference between vertically and horizontally adjacent pixels."""
    return tf.reduce_mean(_mean_gradients(_as_images(images)))


def _mean_gradients(x):
    """Per image and channel: mean |vertical| + mean |horizontal| neighbour difference."""
    dy = tf.reduce_mean(tf.abs(x[:, 1:] - x[:, :-1]), axis=[1, 2])
    dx = tf.reduce_mean(tf.abs(x[:, :, 1:] - x[:, :, :-1]), axis=[1, 2])
    return dx + dy


def sharpness_gap(generated, target):
    """Mean absolute gap between the gradient energy of generated and real frames.

    Per image and channel, the mean absolute neighbour difference (total variation) of
    ``generated`` is compared with that of ``target``. It does not depend on where the
    edges are, only on how strong they are, so unlike an L1 between the frames it does
    not reward blurring a frame whose motion is uncertain: a blurred frame has weaker
    edges and pays for it (a cheap statistic in the spirit of the paper's style loss,
    whose Gram matrices are also position-free). Frames ``[..., H, W, C]`` in [0, 1].
    """
    g = _as_images(tf.cast(generated, tf.float32))
    t = _as_images(tf.cast(target, tf.float32))
    return tf.reduce_mean(tf.abs(_mean_gradients(g) - _mean_gradients(t)))


def scale_invariant_log_depth(predicted_z, target_z, *, predicted_log_depth=None):
    """Scale-invariant log-depth loss (Eigen et al. with lambda = 1, as MegaDepth).

    Args:
      predicted_z, target_z: inverse depth ``[..., H, W, 1]`` (docs/design.md §2, z in (0, 1]);
        values are clamped below at 1e-3. Pixels where ``target_z <= 0`` carry no
        ground truth and are ignored; images with none at all are left out of the mean.
      predicted_log_depth: optional: the depth net's raw log depth instead of
        ``predicted_z`` (pass None for it). ``log z = min - log_depth`` differs from
        ``-log_depth`` by a per-image offset, which this loss ignores, and it has no
        floor: with the clamped z a net whose nearest pixel ran far ahead of the rest
        gets no gradient at all on the clamped pixels (training collapsed that way).

    Returns:
      Mean over images of ``mean(d^2) - mean(d)^2`` with ``d = log z_pred - log z_true``
      on valid pixels: zero when the prediction equals the target up to a
      per-image scale (log depth up to an offset).
    """
    t = _as_images(target_z)
    if predicted_log_depth is not None:
        log_p = -_as_images(predicted_log_depth)
    else:
        log_p = tf.math.log(tf.maximum(_as_images(predicted_z), MIN_INVERSE_DEPTH))
    valid = tf.cast(t > 0, tf.float32)
    d = (log_p - tf.math.log(tf.maximum(t, MIN_INVERSE_DEPTH))) * valid
    n = tf.maximum(tf.reduce_sum(valid, axis=[1, 2, 3]), 1.0)
    mean = tf.reduce_sum(d, axis=[1, 2, 3]) / n
    mean_sq = tf.reduce_sum(tf.square(d), axis=[1, 2, 3]) / n
    # Images without any ground truth (zero depth maps of sources that have none,
    # mixed into the batch) are left out of the mean instead of counting as zero loss.
    has = tf.cast(tf.reduce_sum(valid, axis=[1, 2, 3]) > 0, tf.float32)
    return tf.reduce_sum((mean_sq - tf.square(mean)) * has) / tf.maximum(tf.reduce_sum(has), 1.0)


def gram_matrix(features):
    """``[N, H, W, C]`` -> ``[N, C, C]``, normalised by ``H * W * C``."""
    shape = tf.shape(features)
    size = tf.cast(shape[1] * shape[2] * shape[3], features.dtype)
    return tf.einsum("nhwc,nhwd->ncd", features, features) / size


class StyleLoss:
    """VGG-19 perceptual style loss: weighted squared Gram-matrix differences.

    A plain object (not a Keras layer) on purpose: the frozen VGG is a tool of
    the loss, so it is neither saved with the model nor trained.

    Args:
      layers: (VGG-19 layer name, weight) pairs; default `STYLE_LAYERS`.
      weights: path of a VGG-19 ``include_top=False`` weights file
        (``keras.applications.VGG19(weights=path)``) or None for random
        weights. Nothing is ever downloaded.
    """

    def __init__(self, layers=STYLE_LAYERS, weights=None):
        if weights is not None and not isinstance(weights, str):
            raise ValueError(f"StyleLoss: weights must be a file path or None, got {weights!r}")
        if weights == "imagenet":
            raise ValueError(
                "StyleLoss: weights='imagenet' would download; pass the path of a VGG-19 "
                "weights file instead (or None for random weights)"
            )
        self.layers = tuple((str(n), float(w)) for n, w in layers)
        if not self.layers:
            raise ValueError("StyleLoss needs at least one VGG-19 layer")
        vgg = keras.applications.VGG19(
            include_top=False, weights=weights, input_shape=(None, None, 3)
        )
        names = {layer.name for layer in vgg.layers}
        missing = [n for n, _ in self.layers if n not in names]
        if missing:
            raise ValueError(f"StyleLoss: VGG-19 has no layer(s) {missing}")
        vgg.trainable = False
        self._features = keras.Model(
            vgg.input, [vgg.get_layer(n).output for n, _ in self.layers], name="vgg19_style"
        )
        self._features.trainable = False

    def __call__(self, generated, target):
        """Style loss between ``generated`` and ``target`` RGB frames ``[..., H, W, 3]`` in [0, 1]."""
        g = _as_images(generated)
        t = _as_images(target)
        both = tf.concat([g, t], 0) * 255.0
        both = tf.reverse(both, axis=[-1]) - tf.constant(_VGG_BGR_MEAN, tf.float32)
        features = self._features(both, training=False)
        if not isinstance(features, (list, tuple)):
            features = [features]
        n = tf.shape(g)[0]
        loss = 0.0
        for (_, weight), f in zip(self.layers, features):
            gram = gram_matrix(f)
            loss += weight * tf.reduce_mean(tf.square(gram[:n] - gram[n:]))
        return loss
