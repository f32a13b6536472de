"""Evaluation metrics of docs/design.md §5, batched TensorFlow ops on NHWC tensors.

Every function takes tensors (or arrays) with any number of leading dimensions
(e.g. [B, H, W, C] or [B, T, H, W, C]) and returns one value per image or flow
field, with the leading dimensions kept. Images are float in [0, 1]; flows are
backward flows in pixels (docs/design.md §2).

Definitions:

* ``psnr``: 10 log10(1 / MSE) in dB over all pixels and channels; the MSE is floored
  at 1e-10, so identical images score 100 dB instead of infinity.
* ``ssim``: Wang et al. 2004 SSIM with an 11x11 Gaussian window (sigma 1.5), K1 = 0.01,
  K2 = 0.03, dynamic range 1, computed per channel on the valid window positions and
  averaged over positions and channels (the same definition as ``tf.image.ssim``).
* ``epe``: end-point error, the mean over pixels of the Euclidean distance between two
  flow vectors, in pixels.
* ``flow_magnitude`` / ``flow_ratio``: mean |flow| in pixels; the ratio is
  mean |predicted| / mean |teacher| (pixel metrics reward a frozen picture, so the amount
  of motion is reported beside them; 1 = as much motion as the teacher).
* ``sharpness``: variance of the 3x3 Laplacian ([[0,1,0],[1,-4,1],[0,1,0]], valid
  positions) of the luma Y = 0.299 R + 0.587 G + 0.114 B; ``sharpness_ratio`` divides
  a frame's by the input's (1 = as sharp as the input, below 1 = blurred).
* ``temporal_consistency``: for each step t, the mean absolute difference between the
  generated frame I_t and the previous frame I_{t-1} (I_0 = the input) warped
  bilinearly with the method's own backward flow F_t. It measures how far the frames
  depart from the motion the method claims (flicker, synthesis residuals); it needs
  no ground truth, lower is better, and it is 0 for a method that makes its frames
  by pure warping (copy-frame, constant velocity, oracle), so read it for the model.
"""

import numpy as np
import tensorflow as tf

from spiritnet_tf.ops.flow import _as_batch, bilinear_warp

__all__ = [
    "bilinear_warp",
    "psnr",
    "ssim",
    "epe",
    "flow_magnitude",
    "flow_ratio",
    "sharpness",
    "sharpness_ratio",
    "temporal_consistency",
]

MSE_FLOOR = 1e-10
SSIM_FILTER_SIZE = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
_LUMA = (0.299, 0.587, 0.114)


def _float(x):
    return tf.convert_to_tensor(x, tf.float32)


def psnr(pred, target, *, offset=0.0):
    """PSNR in dB of images in [0, 1]: [..., H, W, C] x2 -> [...].

    ``offset`` is added to each image's MSE (the training term `spiritnet_tf.losses.psnr_loss`
    uses it to cap what an exact frame earns); the evaluation leaves it at 0."""
    pred, target = _float(pred), _float(target)
    mse = tf.reduce_mean(tf.square(pred - target), axis=[-3, -2, -1]) + offset
    return 10.0 * tf.math.log(1.0 / tf.maximum(mse, MSE_FLOOR)) / tf.math.log(10.0)


def _gaussian_1d():
    x = np.arange(SSIM_FILTER_SIZE, dtype=np.float64) - (SSIM_FILTER_SIZE - 1) / 2
    g = np.exp(-(x**2) / (2 * SSIM_SIGMA**2))
    return (g / g.sum()).astype(np.float32)


def ssim(pred, target):
    """SSIM of images in [0, 1] (definition in the module docstring): [..., H, W, C] -> [...].

    H and W must be at least 11 (the window size).
    """
    a, leading = _as_batch(pred, name="pred")
    b, _ = _as_batch(target, name="target")
    if a.shape[1] is not None and a.shape[2] is not None and min(a.shape[1:3]) < SSIM_FILTER_SIZE:
        raise ValueError(f"ssim needs images of at least 11x11, got {a.shape[1]}x{a.shape[2]}")
    channels = tf.shape(a)[-1]
    g = _gaussian_1d()
    kx = tf.tile(tf.reshape(g, [1, SSIM_FILTER_SIZE, 1, 1]), [1, 1, channels, 1])
    ky = tf.tile(tf.reshape(g, [SSIM_FILTER_SIZE, 1, 1, 1]), [1, 1, channels, 1])

    def blur(x):  # separable Gaussian, per channel, valid positions only
        x = tf.nn.depthwise_conv2d(x, kx, [1, 1, 1, 1], "VALID")
        return tf.nn.depthwise_conv2d(x, ky, [1, 1, 1, 1], "VALID")

    c1, c2 = SSIM_K1**2, SSIM_K2**2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a * mu_a
    var_b = blur(b * b) - mu_b * mu_b
    cov = blur(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)
    )
    return tf.reshape(tf.reduce_mean(ssim_map, axis=[1, 2, 3]), leading)


def epe(pred_flow, target_flow):
    """Mean end-point error in pixels: [..., H, W, 2] x2 -> [...]."""
    diff = _float(pred_flow) - _float(target_flow)
    return tf.reduce_mean(tf.norm(diff, axis=-1), axis=[-2, -1])


def flow_magnitude(flow):
    """Mean |flow| in pixels: [..., H, W, 2] -> [...]."""
    return tf.reduce_mean(tf.norm(_float(flow), axis=-1), axis=[-2, -1])


def flow_ratio(pred_flow, teacher_flow):
    """mean |pred| / mean |teacher| over everything given (scalar; inf/NaN if the teacher is 0)."""
    return tf.reduce_mean(flow_magnitude(pred_flow)) / tf.reduce_mean(flow_magnitude(teacher_flow))


def sharpness(image):
    """Laplacian variance of the luma (module docstring): [..., H, W, 3] -> [...]."""
    x, leading = _as_batch(image, 3, name="image")
    luma = tf.reduce_sum(x * tf.constant(_LUMA, tf.float32), axis=-1, keepdims=True)
    laplacian = tf.constant([[0, 1, 0], [1, -4, 1], [0, 1, 0]], tf.float32)
    response = tf.nn.conv2d(luma, tf.reshape(laplacian, [3, 3, 1, 1]), 1, "VALID")
    _, variance = tf.nn.moments(response, axes=[1, 2, 3])
    return tf.reshape(variance, leading)


def sharpness_ratio(frame, image):
    """sharpness(frame) / sharpness(image), elementwise over the leading dimensions."""
    return tf.math.divide_no_nan(sharpness(frame), sharpness(image))


def temporal_consistency(frames, flows, image):
    """Per-step warping error of a generated sequence (module docstring).

    Args:
      frames: [B, T, H, W, 3] generated frames I_1..I_T.
      flows: [B, T, H, W, 2] the method's backward flows F_t (I_t ~ I_{t-1}(x + F_t(x))).
      image: [B, H, W, 3] the input I_0.

    Returns:
      [B, T] mean |I_t - warp(I_{t-1}, F_t)| over pixels and channels.
    """
    frames, flows, image = _float(frames), _float(flows), _float(image)
    previous = tf.concat([image[:, None], frames[:, :-1]], axis=1)
    warped = bilinear_warp(previous, flows)
    return tf.reduce_mean(tf.abs(frames - warped), axis=[-3, -2, -1])
