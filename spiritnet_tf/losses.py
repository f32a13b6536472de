"""Training losses of SpiritNet (docs/design.md §3.9): flow L1, VGG-19 Gram style loss,
total variation and the depth net's losses (3.1): the relative-depth loss (scale-and-shift
invariant error plus multi-scale gradient matching, for the "percentile" depth mapping)
and the scale-invariant log-depth loss (for "max", the bundled weights).

Each function reduces to a float32 scalar (mean over the batch and frames).
Frames may be given as ``[..., H, W, C]`` with any number of leading axes (for
example ``[B, T, H, W, 3]``).
"""

import keras
import tensorflow as tf

from spiritnet_tf.config import STYLE_LAYERS
from spiritnet_tf.evaluation import metrics
from spiritnet_tf.limits import MIN_INVERSE_DEPTH

__all__ = ["step_weights", "step_weighted_l1", "psnr_loss", "path_l1", "total_variation", "sharpness_gap",
           "scale_invariant_log_depth", "scale_shift_invariant", "gradient_matching", "relative_depth", "edge_following",
           "StyleLoss", "gram_matrix"]

# Caffe-style VGG preprocessing (what keras.applications.vgg19 weights expect):
# RGB in [0, 1] -> BGR in [0, 255] minus the ImageNet channel means.
_VGG_BGR_MEAN = (103.939, 116.779, 123.68)


def _as_images(x):
    """Folds leading axes into one: [..., H, W, C] -> [N, H, W, C]."""
    x = tf.convert_to_tensor(x, tf.float32)
    shape = tf.shape(x)
    return tf.reshape(x, tf.concat([[-1], shape[-3:]], 0))


def step_weights(num_steps, late_weight):
    """Weights of the T generated steps in a loss: step t (0-based) gets
    ``1 + late_weight * t / (T - 1)``, scaled to mean 1 (a single step gets 1).

    ``late_weight = 0`` weighs every step alike; ``late_weight = 1`` gives the last step
    twice the first one's weight. Returns float32 ``[T]``.
    """
    t = tf.range(num_steps, dtype=tf.float32)
    span = tf.maximum(tf.cast(num_steps, tf.float32) - 1.0, 1.0)
    w = 1.0 + float(late_weight) * t / span
    return w / tf.reduce_mean(w)


def step_weighted_l1(predicted, target, weights, *, squared=False):
    """Mean absolute difference of sequences ``[B, T, H, W, C]``, the steps weighted by
    ``weights`` ``[T]`` (mean 1, `step_weights`): with equal weights it is the plain mean.
    ``squared``: the mean squared difference instead (an L2 term, whose minimiser under
    uncertainty is the mean rather than the median: what PSNR rewards)."""
    error = tf.cast(predicted, tf.float32) - tf.cast(target, tf.float32)
    error = tf.square(error) if squared else tf.abs(error)
    per_step = tf.reduce_mean(error, axis=[0, 2, 3, 4])
    return tf.reduce_mean(per_step * weights)


def psnr_loss(predicted, target, *, floor=1e-4):
    """Minus the mean PSNR (dB, peak 1) of sequences ``[B, T, H, W, C]``: each sample's
    frame at each step scores ``10 log10(MSE + floor)``, averaged over samples and steps
    alike (as the evaluation averages them).

    The gate's metric is the mean of per-frame PSNRs, which weighs a frame's error against
    its own size: the gradient of this term is the squared error's divided by the frame's
    MSE, so a frame that is nearly right (a steady pan kept at constant velocity) counts
    as much as one that is far off. ``floor`` (1e-4: 40 dB) caps what a perfect frame
    earns and keeps that division finite. The PSNR is the evaluation's
    (`spiritnet_tf.evaluation.metrics.psnr`), with ``floor`` added to each MSE.
    """
    return -tf.reduce_mean(metrics.psnr(predicted, target, offset=floor))


def path_l1(predicted, target, weights):
    """L1 between the running sums over steps of predicted and target flows ``[B, T, H, W,
    2]``, the steps weighted as in `step_weighted_l1`.

    The running sum of the backward flows up to step t approximates the displacement
    from the first frame to frame t (exact for a uniform motion; the composition of the
    flows also samples each one where the previous moved the pixel). Unlike the per-step
    flow L1, it grows when every step errs the same way: flows a little too short each
    step add up to a frame far behind the real one.
    """
    return step_weighted_l1(tf.cumsum(tf.cast(predicted, tf.float32), axis=1),
                            tf.cumsum(tf.cast(target, tf.float32), axis=1), weights)


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


def _normalise(x, valid, n):
    """Per image: ``x`` minus its mean over the valid pixels, over its mean absolute
    deviation there (and that deviation, [N, 1, 1, 1])."""
    centred = (x - tf.reduce_sum(x * valid, axis=[1, 2, 3], keepdims=True) / n) * valid
    spread = tf.reduce_sum(tf.abs(centred), axis=[1, 2, 3], keepdims=True) / n
    return centred / tf.maximum(spread, 1e-6), spread


def _aligned_residual(predicted, target):
    """Per image, on the pixels where ``target > 0``: prediction and target each
    normalised to mean 0 and mean absolute deviation 1 (the scale-and-shift alignment
    of MiDaS's trimmed loss, with means: on layered scenes whose background covers most
    pixels a median absolute deviation is near 0). Returns (residual, valid, spread,
    has): normalised prediction minus normalised target (0 off the valid pixels), the
    prediction's own deviation, and 1 for images with at least two valid pixels.

    Unlike a least-squares fit of the prediction to the target, this cannot turn a
    reversed prediction into a perfect one (it scores 2, a constant 1), and its gradient
    does not vanish where the fitted scale would be 0."""
    p = _as_images(predicted)
    t = _as_images(target)
    valid = tf.cast(t > 0, tf.float32)
    n = tf.reduce_sum(valid, axis=[1, 2, 3], keepdims=True)
    has = tf.cast(n > 1.5, tf.float32)
    n = tf.maximum(n, 1.0)
    t_hat, _ = _normalise(t, valid, n)
    p_hat, spread = _normalise(p, valid, n)
    return (p_hat - t_hat) * valid, valid, spread, has


def _image_mean(values, has):
    return tf.reduce_sum(values * has) / tf.maximum(tf.reduce_sum(has), 1.0)


def scale_shift_invariant(predicted, target, *, scale_weight=0.0):
    """Scale-and-shift-invariant depth error (after MiDaS, Ranftl et al. 2020).

    Args:
      predicted: the net's relative inverse depth ``[..., H, W, 1]`` (any scale, shift).
      target: true inverse depth (or disparity) ``[..., H, W, 1]``; pixels ``<= 0`` carry
        no truth and are ignored, images with fewer than two valid pixels left out.
      scale_weight: weight of ``(m - 1)^2`` with m the prediction's mean absolute
        deviation (default 0: exactly invariant): a weak pull that keeps the output at
        the normalised target's scale, so that `spiritnet_tf.depth.DEPTH_RANGE_FLOOR`
        means the same for every net; `relative_depth` uses 0.01.

    Returns: mean over images of the mean absolute difference between prediction and
    target, each normalised per image to mean 0 and mean absolute deviation 1 on the
    valid pixels (invariant to a positive scale and any shift of either; a reversed
    prediction scores about 2, a constant one 1), plus the scale term.
    """
    residual, valid, spread, has = _aligned_residual(predicted, target)
    n = tf.maximum(tf.reduce_sum(valid, axis=[1, 2, 3]), 1.0)
    error = tf.reduce_sum(tf.abs(residual), axis=[1, 2, 3]) / n
    pull = tf.square(tf.reshape(spread, [-1]) - 1.0)
    return _image_mean(error + scale_weight * pull, tf.reshape(has, [-1]))


def gradient_matching(predicted, target, *, scales=4):
    """Multi-scale gradient matching (MiDaS): the mean absolute x and y differences of
    the residual of `scale_shift_invariant` (both maps normalised) on valid neighbours,
    at ``scales`` resolutions (every 2^k-th pixel), summed over the scales. Zero when the
    prediction is the target up to a positive scale and a shift; it rewards sharp,
    correctly placed depth edges."""
    residual, valid, _, has = _aligned_residual(predicted, target)
    has = tf.reshape(has, [-1])
    total = 0.0
    for k in range(scales):
        step = 2 ** k
        r, v = residual[:, ::step, ::step], valid[:, ::step, ::step]
        vx, vy = v[:, :, 1:] * v[:, :, :-1], v[:, 1:] * v[:, :-1]
        gx = tf.reduce_sum(tf.abs(r[:, :, 1:] - r[:, :, :-1]) * vx, axis=[1, 2, 3])
        gy = tf.reduce_sum(tf.abs(r[:, 1:] - r[:, :-1]) * vy, axis=[1, 2, 3])
        n = tf.maximum(tf.reduce_sum(v, axis=[1, 2, 3]), 1.0)
        total += _image_mean((gx + gy) / n, has)
    return total


def relative_depth(predicted, target, *, gradient_weight=0.5, scales=4, scale_weight=0.01):
    """The depth net's loss for the "percentile" mapping: `scale_shift_invariant` (with
    its weak scale pull ``scale_weight``) plus ``gradient_weight`` times
    `gradient_matching` (arguments as there). Invariant to a shift of the prediction,
    and to a positive scale up to the pull."""
    return (scale_shift_invariant(predicted, target, scale_weight=scale_weight)
            + gradient_weight * gradient_matching(predicted, target, scales=scales))


def edge_following(predicted, images, target=None, *, window=7):
    """How much a depth map follows the photo's edges: per image, the squared Pearson
    correlation of ``predicted`` ``[..., H, W, 1]`` with the local gradient magnitude of
    ``images`` ``[..., H, W, 3]`` (grey level, central differences, ``window`` x
    ``window`` box-smoothed, a training-time stand-in for
    `spiritnet_tf.evaluation.depth.gradient_magnitude`), on the pixels where ``target`` is
    not 0 (every pixel when None), averaged over images: > 0 carries truth, 0 none, and
    < 0 marks a real photo without truth, which this term counts and the depth losses
    (pixels <= 0 ignored) do not. 0 for a map independent of the texture, 1 for an edge
    detector; invariant to a scale (of either sign) and a shift of the prediction. The
    depth pre-training adds it with ``edge_weight`` so that a net that learns "textured
    is near" from a few sources pays for it."""
    p = _as_images(predicted)
    grey = tf.reduce_mean(_as_images(images), axis=-1, keepdims=True)
    padded = tf.pad(grey, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
    gx = (padded[:, 1:-1, 2:] - padded[:, 1:-1, :-2]) / 2.0
    gy = (padded[:, 2:, 1:-1] - padded[:, :-2, 1:-1]) / 2.0
    g = tf.nn.avg_pool2d(tf.sqrt(gx * gx + gy * gy + 1e-12), window, 1, "SAME")
    valid = tf.ones_like(p) if target is None else tf.cast(_as_images(target) != 0, tf.float32)
    n = tf.reduce_sum(valid, axis=[1, 2, 3], keepdims=True)
    has = tf.reshape(tf.cast(n > 1.5, tf.float32), [-1])
    n = tf.maximum(n, 1.0)
    # centred on the valid pixels (and scaled, which a correlation ignores)
    (p, _), (g, _) = _normalise(p, valid, n), _normalise(g, valid, n)
    cov = tf.reduce_sum(p * g, axis=[1, 2, 3])
    var = tf.reduce_sum(p * p, axis=[1, 2, 3]) * tf.reduce_sum(g * g, axis=[1, 2, 3])
    return _image_mean(tf.square(cov) / tf.maximum(var, 1e-12), has)


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
