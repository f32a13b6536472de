"""Keras port of the MegaDepth hourglass (Li & Snavely, CVPR 2018) and inverse depth.

The network is the "HourGlass" of the public MegaDepth code (zhengqili/MegaDepth,
``pytorch_DIW_scratch.py``), itself a port of the Torch hourglass of Chen et al.
(NIPS 2016, "Depth in the Wild"):

* stem: 7x7 conv 3->128, batch norm (affine), ReLU, at full resolution;
* four nested hourglass levels. Each level adds two paths: a *skip* path of
  inception blocks at the level's resolution, and a *pooled* path: 2x2 pooling
  (max at the two outer levels, average at the two inner ones), inception
  blocks, the next level, more inception blocks, nearest-neighbour 2x upsampling;
* head: 3x3 conv 64->1, predicting log depth.

Inception block: the concatenation of a 1x1 conv branch and three branches of
1x1 reduction then a k x k conv (k in 3/5/7/11); every conv is followed by
non-affine batch norm (eps 1e-5) and ReLU. The configuration below (``_A`` ..
``_H``, ``_LEVEL1`` .. ``_LEVEL4``) is our reading of the official definition; ``MegaDepth.torch_layout`` gives the matching official
state-dict names (see ``official_keys.txt`` and ``keylist.py``).

With ``width_multiplier=w`` every channel count c becomes ``max(1, round(c * w))``
(the layout stays the same); ``w = 1`` is the official network with 5,357,153
parameters (trainable ones; batch-norm statistics are not counted, as in PyTorch).
With ``levels=L`` below 4 only the outer L hourglass levels are kept (the L-th has no
inner level; every level maps C channels to C, so nothing else changes): a shallower
net for quick tests (the tests' tiny configuration uses one level), which the official
weights do not fit.
"""

import keras
import tensorflow as tf

from spiritnet_tf.limits import MIN_INVERSE_DEPTH
from spiritnet_tf.config import DEPTH_LEVELS as LEVELS  # nested levels of the official net
from spiritnet_tf.config import DEPTH_MAPPINGS

__all__ = ["MegaDepth", "InceptionBlock", "HourglassLevel", "inverse_depth", "PRESETS"]

# Inception configurations: one list per branch of (kernel size, filters) conv stages.
def _inception(first, *branches):
    return [[(1, first)]] + [[(1, reduce), (k, out)] for k, reduce, out in branches]


_A = _inception(32, (3, 32, 32), (5, 32, 32), (7, 32, 32))  # -> 128
_B = _inception(32, (3, 64, 32), (5, 64, 32), (7, 64, 32))  # -> 128
_C = _inception(32, (3, 64, 32), (7, 64, 32), (11, 64, 32))  # -> 128
_D = _inception(16, (3, 32, 16), (7, 32, 16), (11, 32, 16))  # -> 64
_E = _inception(16, (3, 64, 16), (7, 64, 16), (11, 64, 16))  # -> 64
_G = _inception(64, (3, 32, 64), (5, 32, 64), (7, 32, 64))  # -> 256
_H = _inception(64, (3, 64, 64), (7, 64, 64), (11, 64, 64))  # -> 256

# Levels from the outermost (half resolution) to the innermost (1/16).
# pooled path = pool, *down, inner level, *up, upsample; output = pooled + skip.
# ``skip_first`` is the order of the two paths in the official nn.Sequential,
# which only matters for the state-dict names.
_LEVEL4 = dict(pool="avg", down=[_G, _G, _G], inner=None, up=[], skip=[_G, _G], skip_first=True)
_LEVEL3 = dict(pool="avg", down=[_G, _G], inner=_LEVEL4, up=[_G, _H], skip=[_G, _H], skip_first=True)
_LEVEL2 = dict(pool="max", down=[_A, _G], inner=_LEVEL3, up=[_G, _A], skip=[_A, _C], skip_first=False)
_LEVEL1 = dict(pool="max", down=[_A, _A], inner=_LEVEL2, up=[_B, _D], skip=[_E], skip_first=False)
_STEM_FILTERS = 128

PRESETS = {
    # The official network: 5,357,153 parameters.
    "paper": dict(width_multiplier=1.0),
    # A quarter of every channel count: 339,833 parameters, 9.7 GFLOP at 256x448 (paper:
    # 141), about 0.3 s on 2 CPU cores. Same layout; every branch keeps >= 4 channels
    # (width 0.125 would be 86,629 parameters but leave 2-channel branches).
    "small": dict(width_multiplier=0.25),
}


def _scale_channels(c, width_multiplier):
    return max(1, int(round(c * width_multiplier)))


def _scale_inception(branches, w):
    return [[(k, _scale_channels(f, w)) for k, f in branch] for branch in branches]


def _scale_level(level, w, levels=LEVELS):
    """``level``'s configuration with channels scaled by ``w``, keeping ``levels`` levels
    (this one and ``levels - 1`` inner ones)."""
    if level is None or levels < 1:
        return None
    return dict(
        pool=level["pool"],
        down=[_scale_inception(b, w) for b in level["down"]],
        inner=_scale_level(level["inner"], w, levels - 1),
        up=[_scale_inception(b, w) for b in level["up"]],
        skip=[_scale_inception(b, w) for b in level["skip"]],
        skip_first=level["skip_first"],
    )


def _batch_norm(affine):
    # PyTorch momentum 0.1 is Keras momentum 0.9; eps 1e-5 as in the official net.
    return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, center=affine, scale=affine)


def _fused_batch_norm(y, norm):
    """``norm(y, training=True)`` for a Keras ``BatchNormalization`` ``norm`` over the last
    axis of a float32 ``[B, H, W, C]`` ``y``: normalised by the batch's mean and (biased)
    variance, scaled and shifted when affine, and the moving statistics updated as Keras
    does (``moving = moving * momentum + batch * (1 - momentum)``, biased variance). One
    ``FusedBatchNormV3`` op and its one gradient op replace the layer's two dozen ops per
    call: the depth net's training graph (155 batch norms in the small preset) is what
    tracing and starting a training step spends most of its time on."""
    channels = y.shape[-1]
    scale = norm.gamma.value if norm.scale else tf.ones([channels], y.dtype)
    offset = norm.beta.value if norm.center else tf.zeros([channels], y.dtype)
    out, mean, variance = tf.compat.v1.nn.fused_batch_norm(
        y, scale, offset, epsilon=norm.epsilon, is_training=True)
    # The op returns the unbiased (Bessel-corrected) variance; Keras keeps the biased one.
    count = tf.cast(tf.size(y), y.dtype) / channels
    variance = variance * ((count - 1.0) / count)
    # moving * momentum + batch * (1 - momentum), in fewer graph nodes.
    rate = 1.0 - norm.momentum
    norm.moving_mean.value.assign_sub((norm.moving_mean.value - mean) * rate)
    norm.moving_variance.value.assign_sub((norm.moving_variance.value - variance) * rate)
    return out


def _conv_norm_relu(x, conv, norm, training):
    """``relu(norm(conv(x)))`` for a stride-1 "same" ``conv`` with a bias. In inference
    (``training`` None or False) the batch norm's statistics (and scale and offset when
    affine) are folded into the convolution's kernel and bias, so one conv2d, a bias and
    a ReLU run instead of the two layers' calls: the same maths up to rounding, and far
    fewer eager ops (an eager pass of the small net at 304x448 spent most of its 450 ms
    in the layers' Python, not in arithmetic). Training uses batch statistics and updates
    the moving ones: one fused batch-norm op where the norm is trainable
    (`_fused_batch_norm`), else the layer itself (a frozen norm: its fixed statistics)."""
    if training is not None and training is not False:
        y = conv(x)
        if norm.trainable and y.dtype == tf.float32:
            return tf.nn.relu(_fused_batch_norm(y, norm))
        return tf.nn.relu(norm(y, training=training))
    scale = tf.math.rsqrt(norm.moving_variance.value + norm.epsilon)
    if norm.scale:
        scale = scale * norm.gamma.value
    shift = (conv.bias.value - norm.moving_mean.value) * scale
    if norm.center:
        shift = shift + norm.beta.value
    y = tf.nn.conv2d(x, conv.kernel.value * scale, strides=1, padding="SAME")
    return tf.nn.relu(tf.nn.bias_add(y, shift))


def _build_chain(layers, input_shape):
    """Builds layers applied one after the other; returns the output shape."""
    shape = tuple(input_shape)
    for layer in layers:
        layer.build(shape)
        shape = tuple(layer.compute_output_shape(shape))
    return shape


@keras.saving.register_keras_serializable(package="spiritnet_tf")
class InceptionBlock(keras.layers.Layer):
    """Inception block of the hourglass: concat of conv branches, each conv + BN + ReLU.

    Args:
      branches: list of branches, each a list of ``(kernel_size, filters)`` conv
        stages applied in order ("same" padding, stride 1, with bias), each
        followed by non-affine batch norm (eps 1e-5) and ReLU.

    Call: ``x`` [B,H,W,C] float32 -> [B,H,W,sum of the branches' last filters].
    """

    def __init__(self, branches, **kwargs):
        super().__init__(**kwargs)
        self.branches = [[(int(k), int(f)) for k, f in branch] for branch in branches]
        self.convs, self.norms = [], []
        for branch in self.branches:
            for k, f in branch:
                self.convs.append(keras.layers.Conv2D(f, k, padding="same"))
                self.norms.append(_batch_norm(affine=False))

    def _stages(self):
        """Yields (branch index, stage index, conv, norm)."""
        i = 0
        for b, branch in enumerate(self.branches):
            for s in range(len(branch)):
                yield b, s, self.convs[i], self.norms[i]
                i += 1

    def build(self, input_shape):
        chains = {}
        for b, _, conv, norm in self._stages():
            chains.setdefault(b, []).extend([conv, norm])
        for chain in chains.values():
            _build_chain(chain, input_shape)

    def call(self, x, training=None):
        outputs, h = [], None
        for b, s, conv, norm in self._stages():
            h = x if s == 0 else h
            h = _conv_norm_relu(h, conv, norm, training)
            if s == len(self.branches[b]) - 1:
                outputs.append(h)
        return tf.concat(outputs, axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (sum(branch[-1][1] for branch in self.branches),)

    def torch_layout(self, prefix):
        """Yields (official module path, layer): branch j is ``prefix.j``; in it, the
        s-th conv is ``.{3s}`` and its batch norm ``.{3s+1}`` (ReLU is ``.{3s+2}``)."""
        for b, s, conv, norm in self._stages():
            yield f"{prefix}.{b}.{3 * s}", conv
            yield f"{prefix}.{b}.{3 * s + 1}", norm

    def get_config(self):
        return {**super().get_config(), "branches": [[list(st) for st in br] for br in self.branches]}


@keras.saving.register_keras_serializable(package="spiritnet_tf")
class HourglassLevel(keras.layers.Layer):
    """One hourglass level: ``skip(x) + upsample(up(inner(down(pool(x)))))``.

    Args:
      pool: "max" or "avg" (2x2, stride 2).
      down, up, skip: lists of inception configurations (see InceptionBlock).
      inner: the next level's configuration (a dict of these arguments) or None.
      skip_first: whether the skip path comes first in the official definition
        (state-dict naming only).

    Call: ``x`` [B,H,W,C] with H, W divisible by 2**depth -> [B,H,W,C_out].
    """

    def __init__(self, pool, down, inner, up, skip, skip_first, **kwargs):
        super().__init__(**kwargs)
        if pool not in ("max", "avg"):
            raise ValueError(f"pool must be 'max' or 'avg', got {pool!r}")
        self.pool, self.skip_first = pool, bool(skip_first)
        self.pooling = (keras.layers.MaxPooling2D if pool == "max" else keras.layers.AveragePooling2D)(2)
        self.down = [InceptionBlock(b) for b in down]
        self.inner = None if inner is None else HourglassLevel(**inner)
        self.up = [InceptionBlock(b) for b in up]
        self.skip = [InceptionBlock(b) for b in skip]
        self.upsample = keras.layers.UpSampling2D(2, interpolation="nearest")

    def _pooled_path(self):
        return [self.pooling, *self.down, *([self.inner] if self.inner else []), *self.up, self.upsample]

    def build(self, input_shape):
        _build_chain(self._pooled_path(), input_shape)
        _build_chain(self.skip, input_shape)

    def call(self, x, training=None):
        pooled, skip = x, x
        for layer in self._pooled_path():
            pooled = layer(pooled, training=training)
        for layer in self.skip:
            skip = layer(skip, training=training)
        return pooled + skip

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.skip:
            shape = layer.compute_output_shape(shape)
        return shape

    def torch_layout(self, prefix):
        """Yields (official module path, layer) in state-dict order. ``prefix.0`` is the
        ConcatTable of the two paths, ``prefix.1`` the CAddTable."""
        pooled_index, skip_index = (1, 0) if self.skip_first else (0, 1)
        pooled = []
        for i, layer in enumerate(self._pooled_path()):
            if isinstance(layer, (InceptionBlock, HourglassLevel)):
                pooled.extend(layer.torch_layout(f"{prefix}.0.{pooled_index}.{i}"))
        skip = []
        for i, layer in enumerate(self.skip):
            skip.extend(layer.torch_layout(f"{prefix}.0.{skip_index}.{i}"))
        yield from (skip + pooled) if self.skip_first else (pooled + skip)

    def level_config(self):
        """This level's arguments (nested for the inner levels), as plain lists."""

        def cfg(blocks):
            return [b.get_config()["branches"] for b in blocks]

        return {
            "pool": self.pool,
            "down": cfg(self.down),
            "inner": None if self.inner is None else self.inner.level_config(),
            "up": cfg(self.up),
            "skip": cfg(self.skip),
            "skip_first": self.skip_first,
        }

    def get_config(self):
        return {**super().get_config(), **self.level_config()}


def _check_images_shape(shape, levels):
    shape = tuple(shape)
    if len(shape) != 4 or shape[-1] != 3:
        raise ValueError(f"MegaDepth expects images of shape [B, H, W, 3], got {shape}")
    multiple = 2**levels
    for axis, name in ((1, "height"), (2, "width")):
        if shape[axis] is not None and shape[axis] % multiple:
            raise ValueError(
                f"MegaDepth with {levels} levels needs the image {name} to be a multiple of "
                f"{multiple}, got {shape[axis]} (shape {shape})"
            )


@keras.saving.register_keras_serializable(package="spiritnet_tf")
class MegaDepth(keras.Model):
    """MegaDepth hourglass: RGB image -> log depth.

    Args:
      width_multiplier: scales every channel count (1.0 = the official network,
        5,357,153 parameters; see ``PRESETS``).
      levels: nested hourglass levels kept, 1 to 4 (4, the default, is the official
        layout; fewer keep the outer ones, for quick tests).

    Call: ``images`` [B,H,W,3] float32 RGB in [0, 1] (no mean subtraction, as in the
    official demo), H and W multiples of 2**levels (16) -> log depth [B,H,W,1] (up to an
    unknown scale: larger = farther). Use ``inverse_depth`` to get z. ``training`` switches batch
    norm to batch statistics; with ``trainable=False`` batch norm stays in inference mode.
    In inference (``training`` None or False) every batch norm is folded into the
    convolution before it (``_conv_norm_relu``): the same result up to float rounding.
    """

    def __init__(self, width_multiplier=1.0, levels=LEVELS, **kwargs):
        super().__init__(**kwargs)
        if not width_multiplier > 0:
            raise ValueError(f"width_multiplier must be > 0, got {width_multiplier!r}")
        if isinstance(levels, bool) or not isinstance(levels, int) or not 1 <= levels <= LEVELS:
            raise ValueError(f"levels must be an integer from 1 to {LEVELS}, got {levels!r}")
        self.width_multiplier = float(width_multiplier)
        self.levels = int(levels)
        w = self.width_multiplier
        self.stem_conv = keras.layers.Conv2D(_scale_channels(_STEM_FILTERS, w), 7, padding="same")
        self.stem_norm = _batch_norm(affine=True)
        self.hourglass = HourglassLevel(**_scale_level(_LEVEL1, w, self.levels))
        self.head = keras.layers.Conv2D(1, 3, padding="same")

    @classmethod
    def from_preset(cls, preset, weights=None, **kwargs):
        """``preset``: "paper" or "small" (see PRESETS). ``weights``: optional path of a
        Keras ``.weights.h5`` file for this preset (e.g. written by ``depth.convert``), or
        of the official checkpoint (``.pth``/``.pt``, needs PyTorch; or ``.npz``) for "paper"."""
        if preset not in PRESETS:
            raise ValueError(f"unknown MegaDepth preset {preset!r}; choose one of {sorted(PRESETS)}")
        model = cls(**{**PRESETS[preset], **kwargs})
        if weights is not None and str(weights).endswith(".weights.h5"):
            model.build((None, None, None, 3))
            model.load_weights(str(weights))
        elif weights is not None:
            from spiritnet_tf.depth.convert import load_state_dict

            load_state_dict(model, weights)
        return model

    def freeze_batch_norm(self, frozen=True):
        """Puts every batch norm in inference mode with fixed statistics and parameters
        (``trainable = not frozen``), leaving the convolutions trainable: the setting for
        fine-tuning pretrained weights (docs/design.md §3.1). Not saved in ``.keras`` files."""
        for layer in self._flatten_layers():
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = not frozen

    def build(self, input_shape):
        _check_images_shape(input_shape, self.levels)
        shape = _build_chain([self.stem_conv, self.stem_norm, self.hourglass, self.head], input_shape)
        self.built = True
        return shape

    def call(self, images, training=None):
        _check_images_shape(images.shape, self.levels)
        x = _conv_norm_relu(images, self.stem_conv, self.stem_norm, training)
        x = self.hourglass(x, training=training)
        return self.head(x)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (1,)

    def torch_layout(self):
        """Yields (official module path without ``module.``, Keras Conv2D or
        BatchNormalization) in the order of the official state dict."""
        yield "0", self.stem_conv
        yield "1", self.stem_norm
        yield from self.hourglass.torch_layout("3")  # 2 is the ReLU
        yield "4", self.head

    def get_config(self):
        return {**super().get_config(), "width_multiplier": self.width_multiplier,
                "levels": self.levels}


# Floor on p98 - p2 of the net's relative inverse depth d (the percentile mapping): a
# photo whose d spans less (a flat wall) keeps a nearly flat z around 0.5 instead of
# having its noise stretched over the whole range. d is trained at the scale of the
# normalised targets (`spiritnet_tf.losses.relative_depth`: mean absolute deviation 1,
# so p98 - p2 is about 3 on a scene with real depth).
DEPTH_RANGE_FLOOR = 0.25


def _percentile(x, q):
    """Per-image ``q``-th percentile (nearest rank) of ``x`` [B, N]."""
    n = tf.shape(x)[1]
    k = tf.cast(tf.round(q / 100.0 * tf.cast(n - 1, tf.float32)), tf.int32)
    return tf.sort(x, axis=1)[:, k]


def inverse_depth(log_depth, mapping="max", floor=DEPTH_RANGE_FLOOR):
    """Inverse depth z in [1e-3, 1] (1 = nearest) from the depth net's output: the one
    place where the net's output becomes z (docs/design.md §2, docs/training.md "Depth").

    ``log_depth`` [B,H,W,1] is the net's output (larger = farther). ``mapping``:
      * ``"percentile"`` (new configs): ``d = -log_depth`` is the net's relative inverse
        depth (trained up to a scale and a shift, `spiritnet_tf.losses.relative_depth`),
        and ``z = clip((d - p2) / max(p98 - p2, floor), 1e-3, 1)`` per image, p2/p98 its
        2nd/98th percentiles, written as ``0.5 + (d - (p2 + p98) / 2) / max(p98 - p2,
        floor)`` so that where the range is below ``floor`` (a flat wall) z stays nearly
        flat around 0.5. z then carries the order of the pixels, not ratios of depth.
      * ``"max"`` (the bundled weights, trained with it): ``exp(-log_depth)`` divided by
        its per-image maximum (1 = nearest pixel), clamped below at 1e-3; computed as
        ``exp(min - log_depth)``, which cannot overflow.
    """
    log_depth = tf.convert_to_tensor(log_depth, tf.float32)
    if log_depth.shape.rank != 4 or log_depth.shape[-1] != 1:
        raise ValueError(f"inverse_depth expects log depth of shape [B, H, W, 1], got {log_depth.shape}")
    if mapping not in DEPTH_MAPPINGS:
        raise ValueError(f"unknown depth mapping {mapping!r}; choose one of {DEPTH_MAPPINGS}")
    if mapping == "max":
        nearest = tf.reduce_min(log_depth, axis=[1, 2, 3], keepdims=True)
        return tf.maximum(tf.exp(nearest - log_depth), MIN_INVERSE_DEPTH)
    d = -log_depth
    flat = tf.reshape(d, tf.stack([tf.shape(d)[0], -1]))
    p2, p98 = _percentile(flat, 2.0), _percentile(flat, 98.0)
    middle = tf.reshape((p2 + p98) / 2.0, [-1, 1, 1, 1])
    span = tf.reshape(tf.maximum(p98 - p2, floor), [-1, 1, 1, 1])
    return tf.clip_by_value(0.5 + (d - middle) / span, MIN_INVERSE_DEPTH, 1.0)
