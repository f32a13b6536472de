"""Configuration objects of the SpiritNet model and its training losses.

One dataclass per concern, each with ``to_dict`` / ``from_dict`` so that a model or
an experiment is a plain dict (and a file) you can diff. Presets live in
`spiritnet_tf.model.PRESETS`.
"""

import dataclasses
import os

__all__ = ["ConfigError", "CheckedConfig", "Rule", "one_of", "at_least", "above", "between",
           "optional", "rule", "ordered_pair", "checked", "build_config", "SpiritNetConfig",
           "LossConfig", "RESAMPLE_MODES", "DEPTH_MAPPINGS", "DAFI_HOLES", "WARP_OUTSIDE", "RECORDED_DEFAULTS", "STYLE_LAYERS",
           "REPO", "DEFAULT_WEIGHTS", "DEFAULT_MANIFEST", "bundled_overrides", "EDGES", "DEFAULT_EDGES",
           "DEFAULT_MAX_ZOOM", "check_edges"]

# Where the bundled weights of the "small" preset go (with MANIFEST.json beside them);
# `make default-weights` installs them there only if they pass the quality gate.
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the checkout's root
DEFAULT_WEIGHTS = os.path.join(os.path.dirname(__file__), "weights", "spiritnet_small.weights.h5")
DEFAULT_MANIFEST = os.path.join(os.path.dirname(DEFAULT_WEIGHTS), "MANIFEST.json")

RESAMPLE_MODES = ("previous", "input")
DEPTH_MAPPINGS = ("max", "percentile")  # how spiritnet_tf.depth.inverse_depth makes z
DEPTH_LEVELS = 4  # nested hourglass levels of the official MegaDepth net (spiritnet_tf.depth)
DAFI_HOLES = ("zero", "fill")  # what spiritnet_tf.layers.DAFI writes into its holes
WARP_OUTSIDE = ("copy", "clamp")  # what the model's warps show where a sample falls outside
# What a recorded model config (a run's manifest, a saved .keras model, the bundled
# manifest) made before a field existed was made with: `SpiritNetConfig.from_recorded`.
RECORDED_DEFAULTS = {"dafi_holes": "zero"}

# Full-resolution edges (`spiritnet_tf.fullres`): "zoom" crops every frame alike so that no
# pixel shows content from outside the photo; "extend" does not crop.
EDGES = ("zoom", "extend")
DEFAULT_EDGES = "zoom"
DEFAULT_MAX_ZOOM = 1.15


def bundled_overrides():
    """The configuration the bundled weights were gated with (their ``MANIFEST.json``):
    `spiritnet_tf.io.weights.bundled_overrides`, the owner of every loading rule (this name
    is kept for existing callers)."""
    from spiritnet_tf.io.weights import bundled_overrides as owner

    return owner()


def check_edges(edges, max_zoom=DEFAULT_MAX_ZOOM):
    """Validates ``edges`` and ``max_zoom`` (see `spiritnet_tf.fullres`); returns them, max_zoom
    as a float. The messages name the options of `spiritnet animate` too."""
    if edges not in EDGES:
        raise ValueError(f"unknown edges mode {edges!r} (--edges); choose one of {', '.join(EDGES)}")
    if isinstance(max_zoom, bool) or not isinstance(max_zoom, (int, float)) or not max_zoom >= 1:
        raise ValueError(f"max_zoom (--max-zoom) must be a number >= 1, got {max_zoom!r}")
    return edges, float(max_zoom)


# VGG-19 layers of the Gram-matrix style loss and their weights (Gatys et al.:
# the first convolution of every block). Data, not code: a LossConfig may
# replace it with any (keras.applications.VGG19 layer name, weight) pairs.
STYLE_LAYERS = (
    ("block1_conv1", 0.2),
    ("block2_conv1", 0.2),
    ("block3_conv1", 0.2),
    ("block4_conv1", 0.2),
    ("block5_conv1", 0.2),
)


# ----------------------------------------------------------------------------- validation
# One mechanism for every config dataclass of the package (SpiritNetConfig, LossConfig,
# DAFRConfig, the training and data configs): a class declares each field's `Rule` with its
# default (``name: type = checked(default, rule)``) and derives from `CheckedConfig`, whose
# ``__post_init__`` calls ``validate``; a bad value raises `ConfigError` naming the class (or
# the file key, `ConfigError.at`), the field and what it allows. Checks that involve several
# fields go into the class's ``validate``.


class ConfigError(ValueError):
    """A bad configuration value (or a bad experiment file): the message names where
    (a config class or a file's key), the field and the values it allows.

    ``where`` is the message's leading location when it has one (`at` replaces it);
    ``field``, ``allowed`` and ``value`` are set for a single field's bad value."""

    def __init__(self, message, *, where=None, field=None, allowed=None, value=None):
        super().__init__(message)
        self.where, self.field, self.allowed, self.value = where, field, allowed, value

    @classmethod
    def bad_value(cls, where, field, allowed, value):
        """``<where>.<field> must be <allowed>, got <value>``."""
        return cls(f"{where}.{field} must be {allowed}, got {value!r}", where=where, field=field,
                   allowed=allowed, value=value)

    def at(self, where):
        """The same error located at ``where`` (e.g. ``exp.json.model``) instead of the class."""
        message = str(self)
        if self.where is not None and message.startswith(self.where):
            message = where + message[len(self.where):]
        else:
            message = f"{where}: {message}"
        return type(self)(message, where=where, field=self.field, allowed=self.allowed,
                          value=self.value)


@dataclasses.dataclass(frozen=True)
class Rule:
    """What one config field allows: ``allowed`` (words for the message) and ``check``
    (value -> bool; a TypeError or ValueError counts as False)."""

    allowed: str
    check: object

    def ok(self, value):
        try:
            return bool(self.check(value))
        except (TypeError, ValueError):
            return False


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def one_of(choices):
    """A value among ``choices``."""
    choices = tuple(choices)
    return Rule(f"one of {', '.join(map(repr, choices))}", lambda v: v in choices)


def at_least(low, *, integer=False):
    """A number >= ``low`` (an int with ``integer``)."""
    kind = (lambda v: isinstance(v, int) and not isinstance(v, bool)) if integer else _number
    return Rule(f"{'an int' if integer else 'a number'} >= {low}", lambda v: kind(v) and v >= low)


def above(low):
    """A number > ``low``."""
    return Rule(f"a number > {low}", lambda v: _number(v) and v > low)


def between(low, high, *, integer=False, high_open=False):
    """A number in [low, high] (or [low, high) with ``high_open``); ints ``low..high``
    with ``integer``."""
    if integer:
        return Rule(f"in {low}..{high}", lambda v: isinstance(v, int) and not isinstance(v, bool)
                    and low <= v <= high)
    return Rule(f"in [{low}, {high}{')' if high_open else ']'}",
                lambda v: _number(v) and low <= v and (v < high if high_open else v <= high))


def optional(rule):
    """None or what ``rule`` allows."""
    return Rule(f"None or {rule.allowed}", lambda v: v is None or rule.ok(v))


def rule(allowed, check):
    """Any other rule: ``allowed`` words and a ``check``."""
    return Rule(allowed, check)


def ordered_pair(low=0, *, strict=False):
    """A (low, high) pair of numbers with ``low`` <= low <= high (``low`` < low with
    ``strict``)."""
    first = (lambda v: low < v) if strict else (lambda v: low <= v)
    return Rule(f"a (low, high) pair with {low} {'<' if strict else '<='} low <= high",
                lambda v: len(v) == 2 and all(map(_number, v)) and first(v[0]) and v[0] <= v[1])


def checked(default=dataclasses.MISSING, rule=None, *, factory=dataclasses.MISSING):
    """A config dataclass field with its ``default`` (or default ``factory``; neither: a
    required field) and the `Rule` its value must keep (`CheckedConfig.validate`)."""
    return dataclasses.field(default=default, default_factory=factory, metadata={"rule": rule})


class CheckedConfig:
    """Base of the config dataclasses: the fields' rules (`checked`, `rules`) checked by `validate`
    when an instance is made (``__post_init__``). Subclasses that normalise a field do it in
    their own ``__post_init__`` and call ``super().__post_init__()``; checks across fields go
    into ``validate`` (after ``super().validate(where)``)."""

    def __post_init__(self):
        self.validate()

    def validate(self, where=None):
        """Raises `ConfigError` naming ``where`` (default: the class name), the first field
        whose value breaks its rule, and what the field allows; returns self."""
        where = where or type(self).__name__
        for name, field_rule in self.rules().items():
            value = getattr(self, name)
            if not field_rule.ok(value):
                raise ConfigError.bad_value(where, name, field_rule.allowed, value)
        return self

    @classmethod
    def rules(cls):
        """{field name: `Rule`} of the fields declared with `checked`, in field order."""
        return {f.name: f.metadata["rule"] for f in dataclasses.fields(cls) if "rule" in f.metadata}


def build_config(cls, where, /, *args, **values):
    """``cls(*args, **values)``, a `ConfigError` of a bad value located at ``where`` (a file's
    key such as ``exp.json.model``, or a command-line option) instead of the class name."""
    try:
        return cls(*args, **values)
    except ConfigError as e:
        raise e.at(where) from None


class DictConfig(CheckedConfig):
    """``to_dict`` / ``from_dict`` for a config dataclass; unknown keys are an error."""

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown field(s) {unknown}; known: {sorted(names)}")
        return cls(**values)

    @classmethod
    def coerce(cls, config):
        """``None`` -> the defaults, a dict -> `from_dict`, an instance -> itself."""
        if config is None:
            return cls()
        if isinstance(config, dict):
            return cls.from_dict(config)
        if isinstance(config, cls):
            return config
        raise TypeError(f"expected a {cls.__name__}, a dict or None, got {type(config).__name__}")


@dataclasses.dataclass
class SpiritNetConfig(DictConfig):
    """Architecture of `spiritnet_tf.SpiritNet` (docs/design.md §3).

    Attributes:
      depth_preset: MegaDepth preset name ("small" or "paper") of the depth net.
      depth_width: MegaDepth width multiplier overriding the preset's (None: the preset's).
      depth_levels: nested hourglass levels of the depth net, 1 to 4 (4: the official
        layout, which converted official weights need; the tests' tiny configuration
        keeps one, for speed).
      pretrained_depth: True when the depth net carries converted official
        weights: it is then trained at ``depth_learning_rate`` (1e-7, the paper)
        with batch norm frozen (inference mode); False (default bundled model):
        trained from scratch at the main rate with the supervised depth loss.
      context_width: channels of the context extractor (docs/design.md §3.5).
      kernel_widths: U-Net widths of the kernel estimator (docs/design.md §3.6).
      fill_hole_width, fill_hole_blocks, fill_hole_iterations: flow fill-hole
        network (docs/design.md §3.4).
      fill_hole_global: the fill-hole network also sees its features averaged over the
        whole picture (`spiritnet_tf.layers.FlowFillHole`'s ``global_context``; not in
        the paper; False: the bundled weights and the paper).
      fill_hole_gain: with ``fill_hole_global``, the fill-hole network also scales the
        flow by one learned factor per picture (`spiritnet_tf.layers.FlowFillHole`'s
        ``global_gain``; not in the paper; False: the bundled weights and the paper).
      flow_history: the fill-hole network also sees how the flow changed over the last
        step, ``F_t(x) - F_{t-1}(x + F_t(x))`` (zero for a steady pan, large for a shaking
        camera; not in the paper). The first step's change needs the flow before flow0
        (the model's optional "flow_before" input; zero without it), so training in
        prediction mode then starts one frame later (state0 = (im3, F_{3->2}), 4
        targets). False: the bundled weights and the paper.
      synthesis_history: with ``flow_history``, the frame synthesis also sees that change
        (the one the step's fill-hole network saw), moved to the new frame with the
        step's flow: where the motion is erratic the synthesis may render softly, where
        it carries on sharply (not in the paper; False: the bundled weights and the paper).
      synthesis_width, synthesis_blocks: frame synthesis (docs/design.md §3.8).
      resample_from: "previous" (the paper: warp the previous generated frame)
        or "input" (compose backward flows, warp the input once per frame).
      control_dim: size of the per-step control vector (zeros by default).
      dafr: options of `spiritnet_tf.layers.DAFRConfig` (empty: its defaults).
      learning_rate: Adam rate of everything but a pretrained depth net.
      depth_learning_rate: Adam rate of a pretrained depth net; 0 freezes it (a training
        step then takes no gradient for it, which skips its backward pass when
        ``depth_every_step`` is off).
      clipnorm: clip each optimizer's gradients to this global norm (None: no clipping;
        the free-running recurrence can produce rare huge gradients).
      ema_momentum: when set (e.g. 0.999), the main optimizer keeps an exponential
        moving average of the weights it trains (Keras's ``use_ema``) and ``fit`` ends
        by replacing them with it (None: no average; the bundled weights).
      depth_mapping: how the depth net's output becomes z (`spiritnet_tf.depth.inverse_depth`):
        "percentile" (default: relative inverse depth, 2nd-98th percentiles mapped to
        (0, 1], trained with `spiritnet_tf.losses.relative_depth`) or "max" (exp(-log
        depth) over its maximum, trained with the scale-invariant log-depth loss; the
        bundled weights use it, `bundled_overrides`).
      depth_side: when set, the depth net runs on the image resized so that its long side
        is about this many pixels (each side rounded to a multiple of 32, at least 32) and
        its output is resized bilinearly back: the net then sees the whole photo at the
        scale it was trained at (its receptive field covers it), whatever the working
        size (the bundled weights: 128, their manifest's `bundled_overrides`). None
        (default; the paper preset): at the image's size.
      depth_every_step: True (default; the paper): every step runs the depth net on its
        frame. False (the bundled weights, their manifest's `bundled_overrides`; the
        tests' tiny configuration): the depth net runs once per sequence, on the
        input (z0, which DAFR also uses), and each step carries z to its new frame by
        warping it bilinearly with the step's flow, as the image is moved (a training step
        then runs the depth net once per sample instead of once per generated frame).
      dafi_holes: what DAFI writes where no flow lands (`spiritnet_tf.layers.DAFI`):
        "fill" (default: the flow around the hole, `spiritnet_tf.layers.dafi.fill_holes`)
        or "zero" (the paper; the weights bundled before the option, `bundled_overrides`).
      warp_outside: what the model's warps of the image and the context features show
        where a sample point ``p + F(p)`` falls outside the picture: "copy" (default; the
        warp op's rule, the paper and every weight file trained before the option: the
        pixel itself, so a pan repeats stale pixels along the edge it uncovers) or
        "clamp" (the nearest edge pixel, `spiritnet_tf.ops.flow.clamp_to_frame`). Both
        rules apply at the edges of the model's grid, whose bottom and right are
        reflect-padded to a multiple of 32 (`spiritnet_tf.model.MULTIPLE`). The
        flows themselves are not changed; `animate`'s "zoom" edges keep every sample
        inside, so there it changes nothing.
      members: how many recurrences the model runs and averages (an ensemble, K; default 1).
        K cells of this architecture, each trained alone and joined afterwards
        (`spiritnet_tf.training.ensemble`), share the depth net, z0 and DAFR's flow0; each
        runs its own recurrence from the same first state, and the model's frames, flows
        and residuals are their mean at every step. Costs K times the cell's time and
        weights; such a model is not trained as a whole (``compile`` refuses it).
      depth_loss_only: the depth net learns from the supervised depth loss alone (the
        flow and image losses do not reach it). Trained end to end from scratch, the
        small preset's inverse depth collapsed onto the 1e-3 floor everywhere (no
        gradient left there), so DAFR drew almost no motion (docs/training.md).
    """

    depth_preset: str = "small"
    depth_width: float = checked(None, optional(above(0)))
    depth_levels: int = checked(DEPTH_LEVELS, between(1, DEPTH_LEVELS, integer=True))
    pretrained_depth: bool = False
    context_width: int = checked(64, at_least(1, integer=True))
    kernel_widths: tuple = checked((16, 32, 64, 128), rule(
        "a non-empty list of ints >= 1", lambda v: len(v) > 0 and all(int(w) == w >= 1 for w in v)))
    fill_hole_width: int = checked(64, at_least(1, integer=True))
    fill_hole_blocks: int = checked(3, at_least(0, integer=True))
    fill_hole_iterations: int = checked(1, at_least(1, integer=True))
    fill_hole_global: bool = False
    fill_hole_gain: bool = False
    flow_history: bool = False
    synthesis_history: bool = False
    synthesis_width: int = checked(64, at_least(1, integer=True))
    synthesis_blocks: int = checked(3, at_least(0, integer=True))
    resample_from: str = checked("previous", one_of(RESAMPLE_MODES))
    control_dim: int = checked(2, at_least(1, integer=True))
    dafr: dict = checked(factory=dict,
                         rule=rule("a dict of DAFRConfig fields", lambda v: isinstance(v, dict)))
    learning_rate: float = checked(1e-4, above(0))
    depth_learning_rate: float = checked(1e-7, at_least(0))
    clipnorm: float = checked(None, optional(above(0)))
    ema_momentum: float = checked(None, optional(between(0, 1, high_open=True)))
    depth_loss_only: bool = False
    depth_every_step: bool = True
    depth_mapping: str = checked("percentile", one_of(DEPTH_MAPPINGS))
    depth_side: int = checked(None, optional(at_least(32, integer=True)))
    dafi_holes: str = checked("fill", one_of(DAFI_HOLES))
    warp_outside: str = checked("copy", one_of(WARP_OUTSIDE))
    members: int = checked(1, at_least(1, integer=True))

    @classmethod
    def from_recorded(cls, values):
        """`from_dict` of a config recorded earlier: a field it lacks whose default has
        changed since takes the value it was made with (`RECORDED_DEFAULTS`), so that
        reloading a model never changes what it was trained and gated with."""
        return cls.from_dict({**RECORDED_DEFAULTS, **values})

    def __post_init__(self):
        if isinstance(self.kernel_widths, (list, tuple)):
            self.kernel_widths = tuple(int(w) if _number(w) else w for w in self.kernel_widths)
        super().__post_init__()

    def validate(self, where=None):
        super().validate(where)
        if self.synthesis_history and not self.flow_history:
            where = where or type(self).__name__
            raise ConfigError(f"{where}.synthesis_history needs flow_history (the change it "
                              "shows is the flow history's)", where=where,
                              field="synthesis_history", allowed="False without flow_history",
                              value=True)
        return self


@dataclasses.dataclass
class LossConfig(DictConfig):
    """Weights of the training losses (docs/design.md §3.9) and the VGG-19 set-up.

    Attributes:
      flow_weight: L1 between predicted and teacher flows.
      path_weight: L1 between the running sums of predicted and teacher flows over the
        steps (`spiritnet_tf.losses.path_l1`, not in the paper): it charges flows that err
        the same way at every step, which the per-step flow L1 barely sees; 0 (the
        default) leaves it out.
      style_weight: VGG-19 Gram-matrix style loss between generated and real frames.
      tv_weight: total variation of the generated frames.
      pixel_weight: L1 (or L2, ``pixel_norm``) between generated and real frames (not in the paper, whose
        image loss is style + TV only; 0 keeps the paper's losses).
        configs/default_weights.json uses it: ImageNet VGG-19 weights cannot be loaded here.
      pixel_norm: "l1" (the default) or "l2": the pixel term as the mean absolute or the
        mean squared difference (`spiritnet_tf.losses.step_weighted_l1`); L2 (PSNR's own
        error) lets a frame blur where its content's place is uncertain.
      psnr_weight: minus the mean PSNR of the generated frames, one per sample and step
        (`spiritnet_tf.losses.psnr_loss`, not in the paper): the gate's own
        metric, in which a nearly right frame counts as much as a far-off one; 0 (the
        default) leaves it out.
      sharpness_weight: `spiritnet_tf.losses.sharpness_gap` between generated and real
        frames (not in the paper): position-free, it counters the blur that the pixel L1
        teaches the warp kernels (docs/training.md).
      late_step_weight: how much more the later generated steps count in the flow and
        pixel terms: step t of T weighs ``1 + late_step_weight * t / (T - 1)``, scaled to
        mean 1 (`spiritnet_tf.losses.step_weights`); 0 (the default) weighs them alike.
      depth_weight: the depth net's supervised loss, applied when a batch carries depth:
        `spiritnet_tf.losses.relative_depth` for the "percentile" depth mapping,
        `spiritnet_tf.losses.scale_invariant_log_depth` for "max". At 0 the term is not
        computed (no pass of the depth net over the frames) and is logged as 0.
      style_layers: (VGG-19 layer name, weight) pairs, see `STYLE_LAYERS`.
      vgg_weights: path of a VGG-19 ``include_top=False`` weights file, or None
        for random weights (tests; ImageNet weights cannot be downloaded here).
        Record which one trained a checkpoint.
    """

    flow_weight: float = checked(1.0, at_least(0))
    style_weight: float = checked(1.0, at_least(0))
    tv_weight: float = checked(0.01, at_least(0))
    pixel_weight: float = checked(0.0, at_least(0))
    pixel_norm: str = checked("l1", one_of(("l1", "l2")))
    psnr_weight: float = checked(0.0, at_least(0))
    sharpness_weight: float = checked(0.0, at_least(0))
    late_step_weight: float = checked(0.0, at_least(0))
    path_weight: float = checked(0.0, at_least(0))
    depth_weight: float = checked(0.1, at_least(0))
    style_layers: tuple = checked(STYLE_LAYERS, rule(
        "(VGG-19 layer name, weight >= 0) pairs",
        lambda v: all(isinstance(n, str) and w >= 0 for n, w in v)))
    vgg_weights: str = checked(None, optional(rule(
        "a path", lambda v: isinstance(v, (str, os.PathLike)))))

    def __post_init__(self):
        try:
            self.style_layers = tuple((str(n), float(w)) for n, w in self.style_layers)
        except (TypeError, ValueError):
            pass  # validate names it
        super().__post_init__()
