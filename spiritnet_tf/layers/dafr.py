"""DAFR, depth-aware flow randomisation: the first flow F0 from inverse depth alone.

docs/design.md §3.2. The inverse depth z is median-filtered, then cut into clusters at the largest gaps of
its sorted values (or, when no gap is wide enough, into equal shares); every cluster gets one
coherent motion whose speed grows linearly with its mean inverse depth, from f0 / R for the
farthest (z -> 0) to f0 for the nearest (z = 1), and whose direction stays within
``max_turn_deg`` of a common direction phi. Randomness comes only from stateless random ops driven by an
explicit seed, so the same seed gives the same flow.
"""

import dataclasses
import math

import keras
import numpy as np
import tensorflow as tf

from spiritnet_tf.config import DictConfig, at_least, between, checked, one_of, optional, rule
from spiritnet_tf.layers.common import check_rank4

__all__ = ["DAFR", "DAFRConfig", "TopKGapThresholds", "SPEED_RULES", "LEGACY_RULE"]

SPEED_RULES = ("linear", "sigmoid")
# The DAFRConfig fields that give back the rule of the first design (sigmoid speed, raw z,
# one cluster when no gap qualifies): the pin of weights that were gated with it.
LEGACY_RULE = {"speed_rule": "sigmoid", "smooth_size": 1, "quantile_fallback": False}


@dataclasses.dataclass
class DAFRConfig(DictConfig):
    """Every DAFR constant, with the defaults of docs/design.md §3.2.

    Clustering (on z median-filtered, then min-max rescaled to [0, 1] per image):
      smooth_size: side of the median filter applied to z first (odd; 1: none). It keeps
        pixel noise and texture-scale speckles from scattering the clusters, and unlike a
        Gaussian it leaves the boundary between two depth layers where it is.
      max_cuts: k, the most cuts, so at most k + 1 clusters.
      min_gap: a cut is made only at a gap between consecutive sorted values wider than
        this (a fraction of the rescaled range): three flat planes give three clusters.
      quantile_fallback: when no cut is left (no gap wider than ``min_gap``, as in a
        continuous depth map, or only cuts of clusters below ``min_share``), cut at the
        quantiles instead: k + 1 clusters of equal shares (a flat z still gives
        one). False: one cluster then (the earlier rule).
      min_share: a cluster holding less than this share of the pixels is merged into the
        neighbour whose values are closer (the boundary with the smaller gap is dropped).
      max_samples: how many pixels are sorted (a regular sub-grid of the image).
    Motion of cluster c with mean inverse depth zc (z itself, not rescaled):
      speed_rule "linear" (default): ``|M| = f0 * (1/R + (1 - 1/R) * zc)`` with
        R = near_far_ratio (3): the nearest content (z = 1) moves at f0, the farthest
        (z -> 0) at f0 / R, linearly in between;
      speed_rule "sigmoid" (the earlier rule, kept for weights gated with it):
        ``|M| = sigmoid(sigmoid_slope * (zc - sigmoid_center)) * f0`` (a = 8, b = 0.5);
      ``angle(M) = phi + exp(turn_gain * (zc - 1)) * theta0`` (g = 2), with
      phi ~ U(0, 360) degrees and theta0 ~ U(-max_turn_deg, max_turn_deg).
      f0_fraction: f0 = f0_fraction * image width in pixels (about 1.5 %), unless
        f0_pixels is set.
      phi_per_cluster: draw phi once per cluster instead of once per image.
    Noise (zero-mean Gaussian, spatially smoothed over ``noise_cell`` pixels):
      magnitude_noise: std relative to |M| (5 %); angle_noise_deg: std in degrees (3).
      The angle offset from phi is clipped to +-max_turn_deg, so every pixel's motion
      stays within max_turn_deg of phi.
    """

    smooth_size: int = checked(5, rule("an odd int >= 1",
                                       lambda v: isinstance(v, int) and v >= 1 and v % 2 == 1))
    max_cuts: int = checked(3, at_least(0, integer=True))
    min_gap: float = checked(0.05, at_least(0))
    min_share: float = checked(0.02, between(0, 1, high_open=True))
    quantile_fallback: bool = checked(True, one_of((False, True)))
    max_samples: int = checked(16384, at_least(2, integer=True))
    speed_rule: str = checked("linear", one_of(SPEED_RULES))
    near_far_ratio: float = checked(3.0, at_least(1))
    sigmoid_slope: float = 8.0
    sigmoid_center: float = 0.5
    turn_gain: float = checked(2.0, at_least(0))
    max_turn_deg: float = checked(15.0, at_least(0))
    f0_fraction: float = checked(0.015, at_least(0))
    f0_pixels: float | None = checked(None, optional(at_least(0)))
    phi_per_cluster: bool = False
    magnitude_noise: float = checked(0.05, at_least(0))
    angle_noise_deg: float = checked(3.0, at_least(0))
    noise_cell: int = checked(16, at_least(1, integer=True))


@keras.saving.register_keras_serializable(package="spiritnet")
class TopKGapThresholds:
    """The paper's "top-k difference" thresholding, as a replaceable strategy.

    Called on sorted values ``[B, S]`` (rescaled z, ascending), returns cut values
    ``[B, max_cuts]`` ascending; unused cuts are +inf. A pixel's cluster is the number of
    cuts below its value (0 = farthest). Cuts sit half-way across the ``max_cuts`` widest
    gaps between consecutive values that are wider than ``min_gap``; then, while a
    non-empty cluster holds less than ``min_share`` of the values, the smallest such
    cluster loses the one of its two boundaries with the smaller gap (it merges into the
    closer neighbour). When no cut is left and ``quantile_fallback`` is set, the cuts sit
    at the quantiles instead (just above the sorted value at each ``i / (max_cuts + 1)``
    share), so a continuous depth map gives ``max_cuts + 1`` clusters of about equal
    shares (equal values are never split). Another strategy (e.g. learnable thresholds) only needs the same
    call contract, ``max_cuts`` and get_config/from_config.
    """

    def __init__(self, max_cuts=3, min_gap=0.05, min_share=0.02, quantile_fallback=False):
        self.max_cuts = int(max_cuts)
        self.min_gap = float(min_gap)
        self.min_share = float(min_share)
        self.quantile_fallback = bool(quantile_fallback)

    def __call__(self, sorted_values):
        k = self.max_cuts
        v = sorted_values
        b, s = tf.shape(v)[0], tf.shape(v)[1]
        if k == 0:
            return tf.zeros(tf.stack([b, 0]), v.dtype)
        # Padding with zero gaps makes top_k valid for tiny inputs; they are never cuts.
        gaps = tf.concat([v[:, 1:] - v[:, :-1], tf.zeros(tf.stack([b, k]), v.dtype)], axis=1)
        width, pos = tf.math.top_k(gaps, k)
        valid = width > self.min_gap
        last = s - 1
        def tidy(pos, width, valid):
            pos = tf.where(valid, pos, last)
            order = tf.argsort(pos, axis=1, stable=True)
            return (tf.gather(t, order, batch_dims=1) for t in (pos, width, valid))

        pos, width, valid = tidy(pos, width, valid)
        min_count = self.min_share * tf.cast(s, tf.float32)
        no = tf.zeros(tf.stack([b, 1]), tf.bool)
        for _ in range(k):  # each round merges at most one cluster
            edge = tf.zeros_like(pos[:, :1])
            bounds = tf.concat([edge - 1, pos, edge + last], 1)
            sizes = bounds[:, 1:] - bounds[:, :-1]  # [B, k+1] values per cluster
            small = (sizes > 0) & (tf.cast(sizes, tf.float32) < min_count)
            c = tf.argmin(tf.where(small, sizes, tf.int32.max), axis=1, output_type=tf.int32)
            padded_valid = tf.concat([no, valid, no], 1)  # cut c-1 / c bound cluster c
            zero = tf.zeros_like(width[:, :1])
            padded_width = tf.concat([zero, width, zero], 1)
            left_ok = tf.gather(padded_valid, c, batch_dims=1)
            right_ok = tf.gather(padded_valid, c + 1, batch_dims=1)
            left_w = tf.gather(padded_width, c, batch_dims=1)
            right_w = tf.gather(padded_width, c + 1, batch_dims=1)
            remove = tf.where(left_ok & (~right_ok | (left_w <= right_w)), c - 1, c)
            act = tf.reduce_any(small, axis=1) & (left_ok | right_ok)
            kill = tf.one_hot(remove, k, on_value=True, off_value=False) & act[:, None]
            pos, width, valid = tidy(pos, width, valid & ~kill)
        if self.quantile_fallback:  # no cut left: k + 1 equal shares instead
            share = tf.cast(tf.range(1, k + 1), tf.float32) / (k + 1)
            at = tf.cast(tf.round(share * tf.cast(s, tf.float32)), tf.int32) - 1
            at = tf.broadcast_to(tf.clip_by_value(at, 0, last)[None], tf.shape(pos))
            quantile = ~tf.reduce_any(valid, axis=1, keepdims=True)
            pos = tf.where(quantile, at, pos)
            valid = tf.where(quantile, tf.gather(v, at, batch_dims=1) < v[:, -1:], valid)
        lo = tf.gather(v, pos, batch_dims=1)
        hi = tf.gather(v, tf.minimum(pos + 1, last), batch_dims=1)
        return tf.where(valid, (lo + hi) / 2, tf.constant(np.inf, v.dtype))

    def get_config(self):
        return {"max_cuts": self.max_cuts, "min_gap": self.min_gap, "min_share": self.min_share,
                "quantile_fallback": self.quantile_fallback}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="spiritnet")
class DAFR(keras.layers.Layer):
    """Depth-aware flow randomisation: z -> initial backward flow F0 (no weights).

    Call: ``z [B,H,W,1]`` inverse depth in (0, 1] (docs/design.md §2), ``seed`` int64 scalar,
    ``direction`` degrees of *motion* (0 = content moves right, 90 = down; scalar or [B];
    None = random phi from the seed), ``magnitude`` (scalar or [B], multiplies f0),
    ``mask [B,H,W,1]`` (1 = static: zero flow there; soft values scale the flow by
    1 - mask) -> ``F0 [B,H,W,2]`` backward flow in pixels, ``F0 = -M`` with M the motion:
    content moving right has ``F0[..., 0] < 0``.

    Same seed, same flow (stateless random ops; image i of a batch uses row i of each
    draw). ``thresholds`` replaces the clustering strategy (default:
    `TopKGapThresholds` from the config). See `DAFRConfig` for the constants.
    """

    def __init__(self, config=None, thresholds=None, **kwargs):
        super().__init__(**kwargs)
        self.config = config = DAFRConfig.coerce(config)
        self._custom_thresholds = thresholds is not None
        if thresholds is None:
            thresholds = TopKGapThresholds(config.max_cuts, config.min_gap, config.min_share,
                                           config.quantile_fallback)
        elif isinstance(thresholds, dict):
            thresholds = keras.saving.deserialize_keras_object(thresholds)
        self.thresholds = thresholds
        # `mask` in call is DAFR's static-pixel mask, not a Keras sequence mask: accept it
        # without Keras' "destroys the mask" warning and attach no mask to the output.
        self.supports_masking = True
        # `seed` (and `direction`) may be plain Python numbers passed positionally.
        self._allow_non_tensor_positional_args = True

    def compute_mask(self, inputs, previous_mask=None):
        return None

    def _smoothed(self, z):
        """z after a ``smooth_size`` x ``smooth_size`` median filter (edges mirrored): it
        removes pixel noise and thin speckles but keeps a depth layer's boundary in place."""
        size = self.config.smooth_size
        if size <= 1:
            return z
        r = size // 2
        padded = tf.pad(z, [[0, 0], [r, r], [r, r], [0, 0]], mode="SYMMETRIC")
        patches = tf.image.extract_patches(padded, [1, size, size, 1], [1, 1, 1, 1], [1, 1, 1, 1], "VALID")
        return tf.math.top_k(patches, size * size // 2 + 1).values[..., -1:]

    def cluster(self, z):
        """Per-pixel cluster labels ``[B,H,W,1]`` int32: 0 = farthest, up to ``max_cuts``.

        Clustering sees z median-filtered (`smooth_size`) and min-max rescaled per image.
        """
        check_rank4(self, z=(z, 1))
        z = self._smoothed(tf.cast(z, tf.float32))
        lo = tf.reduce_min(z, axis=[1, 2, 3], keepdims=True)
        zr = (z - lo) / tf.maximum(tf.reduce_max(z, axis=[1, 2, 3], keepdims=True) - lo, 1e-6)
        shape = tf.shape(zr)
        pixels = tf.cast(shape[1] * shape[2], tf.float32)
        step = tf.cast(tf.math.ceil(tf.sqrt(pixels / self.config.max_samples)), tf.int32)
        step = tf.maximum(step, 1)  # a regular sub-grid of at most ~max_samples values
        sample = tf.reshape(zr[:, ::step, ::step, 0], tf.stack([shape[0], -1]))
        cuts = self.thresholds(tf.sort(sample, axis=1))  # [B, k]
        above = zr > cuts[:, None, None, :]
        return tf.reduce_sum(tf.cast(above, tf.int32), axis=-1, keepdims=True)

    def _smooth_noise(self, seed, shape):
        """Zero-mean Gaussian noise, [B,H,W]: unit std on a grid of ``noise_cell`` pixels,
        bilinearly interpolated in between (so the std there is between 0.5 and 1)."""
        cell = self.config.noise_cell
        coarse = tf.stack([shape[0], shape[1] // cell + 2, shape[2] // cell + 2, 1])
        noise = tf.random.stateless_normal(coarse, seed, dtype=tf.float32)
        return tf.image.resize(noise, shape[1:3], method="bilinear")[..., 0]

    def call(self, z, seed, direction=None, magnitude=1.0, mask=None):
        cfg = self.config
        check_rank4(self, z=(z, 1))
        z = tf.cast(z, tf.float32)
        labels = self.cluster(z)[..., 0]
        num_clusters = self.thresholds.max_cuts + 1
        onehot = tf.one_hot(labels, num_clusters, dtype=tf.float32)  # [B,H,W,K]
        count = tf.reduce_sum(onehot, axis=[1, 2])
        zbar = tf.reduce_sum(onehot * z, axis=[1, 2]) / tf.maximum(count, 1.0)  # [B,K]

        shape = tf.shape(z)
        batch = shape[0]
        seed = tf.cast(seed, tf.int64)
        if seed.shape.rank not in (None, 0):
            raise ValueError(f"DAFR: `seed` must be a scalar, got shape {tuple(seed.shape)}")
        seeds = [tf.stack([seed, tf.constant(salt, tf.int64)]) for salt in range(4)]
        if cfg.f0_pixels is not None:
            f0 = tf.constant(cfg.f0_pixels, tf.float32)
        else:
            f0 = cfg.f0_fraction * tf.cast(shape[2], tf.float32)
        if cfg.speed_rule == "linear":
            slowest = 1.0 / cfg.near_far_ratio
            speed = (slowest + (1.0 - slowest) * zbar) * f0
        else:
            speed = tf.sigmoid(cfg.sigmoid_slope * (zbar - cfg.sigmoid_center)) * f0
        speed *= tf.reshape(tf.cast(magnitude, tf.float32), [-1, 1])
        theta0 = tf.random.stateless_uniform(
            tf.stack([batch, 1]), seeds[0], -cfg.max_turn_deg, cfg.max_turn_deg
        )
        turn = tf.exp(cfg.turn_gain * (zbar - 1.0)) * theta0  # [B,K], |turn| <= max_turn
        if direction is None:
            phi = tf.random.stateless_uniform(
                tf.stack([batch, num_clusters if cfg.phi_per_cluster else 1]), seeds[1], 0.0, 360.0
            )
        else:
            phi = tf.reshape(tf.cast(direction, tf.float32), [-1, 1])
            phi *= tf.ones(tf.stack([batch, 1]))

        def per_pixel(values):  # [B,K] or [B,1] -> [B,H,W]
            return tf.reduce_sum(onehot * values[:, None, None, :], axis=-1)

        speed = per_pixel(speed)
        if cfg.magnitude_noise:
            speed *= tf.nn.relu(1.0 + cfg.magnitude_noise * self._smooth_noise(seeds[2], shape))
        offset = per_pixel(turn)
        if cfg.angle_noise_deg:
            offset += cfg.angle_noise_deg * self._smooth_noise(seeds[3], shape)
        offset = tf.clip_by_value(offset, -cfg.max_turn_deg, cfg.max_turn_deg)
        angle = (per_pixel(phi) + offset) * (math.pi / 180.0)
        flow = -tf.stack([speed * tf.cos(angle), speed * tf.sin(angle)], axis=-1)  # F0 = -M
        if mask is not None:
            check_rank4(self, mask=(mask, 1))
            flow *= 1.0 - tf.cast(mask, tf.float32)
        return tf.cast(flow, self.compute_dtype)

    def compute_output_shape(self, z_shape, *args, **kwargs):
        return tuple(z_shape[:-1]) + (2,)

    def get_config(self):
        config = {**super().get_config(), "config": self.config.to_dict()}
        if self._custom_thresholds:
            config["thresholds"] = keras.saving.serialize_keras_object(self.thresholds)
        return config
