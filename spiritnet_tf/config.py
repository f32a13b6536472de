"""Configuration objects of the SpiritNet model and its training losses.

One dataclass per concern, each with ``to_dict`` / ``from_dict`` so that a model or
an experiment is a plain dict (and a file) you can diff. Presets live in
`spiritnet_tf.model.PRESETS`.
"""

import dataclasses
import os

__all__ = ["SpiritNetConfig", "LossConfig", "RESAMPLE_MODES", "DEPTH_MAPPINGS", "STYLE_LAYERS",
           "DEFAULT_WEIGHTS", "DEFAULT_MANIFEST", "bundled_overrides", "EDGES", "DEFAULT_EDGES",
           "DEFAULT_MAX_ZOOM", "check_edges"]

# Where the bundled weights of the "small" preset go (with MANIFEST.json beside them);
# `make default-weights` installs them there only if they pass the quality gate.
DEFAULT_WEIGHTS = os.path.join(os.path.dirname(__file__), "weights", "spiritnet_small.weights.h5")
DEFAULT_MANIFEST = os.path.join(os.path.dirname(DEFAULT_WEIGHTS), "MANIFEST.json")

RESAMPLE_MODES = ("previous", "input")
DEPTH_MAPPINGS = ("max", "percentile")  # how spiritnet_tf.depth.inverse_depth makes z

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


class DictConfig:
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
      pretrained_depth: True when the depth net carries converted official
        weights: it is then trained at ``depth_learning_rate`` (1e-7, the paper)
        with batch norm frozen (inference mode); False (default bundled model):
        trained from scratch at the main rate with the supervised depth loss.
      context_width: channels of the context extractor (docs/design.md §3.5).
      kernel_widths: U-Net widths of the kernel estimator (docs/design.md §3.6).
      fill_hole_width, fill_hole_blocks, fill_hole_iterations: flow fill-hole
        network (docs/design.md §3.4).
      synthesis_width, synthesis_blocks: frame synthesis (docs/design.md §3.8).
      resample_from: "previous" (the paper: warp the previous generated frame)
        or "input" (compose backward flows, warp the input once per frame).
      control_dim: size of the per-step control vector (zeros by default).
      dafr: options of `spiritnet_tf.layers.DAFRConfig` (empty: its defaults).
      learning_rate: Adam rate of everything but a pretrained depth net.
      depth_learning_rate: Adam rate of a pretrained depth net.
      clipnorm: clip each optimizer's gradients to this global norm (None: no clipping;
        the free-running recurrence can produce rare huge gradients).
      depth_mapping: how the depth net's output becomes z (`spiritnet_tf.depth.inverse_depth`):
        "percentile" (default: relative inverse depth, 2nd-98th percentiles mapped to
        (0, 1], trained with `spiritnet_tf.losses.relative_depth`) or "max" (exp(-log
        depth) over its maximum, trained with the scale-invariant log-depth loss; the
        bundled weights use it, `bundled_overrides`).
      depth_loss_only: the depth net learns from the supervised depth loss alone (the
        flow and image losses do not reach it). Trained end to end from scratch, the
        small preset's inverse depth collapsed onto the 1e-3 floor everywhere (no
        gradient left there), so DAFR drew almost no motion (docs/training.md).
    """

    depth_preset: str = "small"
    depth_width: float = None
    pretrained_depth: bool = False
    context_width: int = 64
    kernel_widths: tuple = (16, 32, 64, 128)
    fill_hole_width: int = 64
    fill_hole_blocks: int = 3
    fill_hole_iterations: int = 1
    synthesis_width: int = 64
    synthesis_blocks: int = 3
    resample_from: str = "previous"
    control_dim: int = 2
    dafr: dict = dataclasses.field(default_factory=dict)
    learning_rate: float = 1e-4
    depth_learning_rate: float = 1e-7
    clipnorm: float = None
    depth_loss_only: bool = False
    depth_mapping: str = "percentile"

    def __post_init__(self):
        if self.depth_mapping not in DEPTH_MAPPINGS:
            raise ValueError(
                f"depth_mapping must be one of {DEPTH_MAPPINGS}, got {self.depth_mapping!r}")
        self.kernel_widths = tuple(int(w) for w in self.kernel_widths)
        if self.resample_from not in RESAMPLE_MODES:
            raise ValueError(
                f"resample_from must be one of {RESAMPLE_MODES}, got {self.resample_from!r}"
            )
        if self.control_dim < 1:
            raise ValueError(f"control_dim must be >= 1, got {self.control_dim}")


@dataclasses.dataclass
class LossConfig(DictConfig):
    """Weights of the training losses (docs/design.md §3.9) and the VGG-19 set-up.

    Attributes:
      flow_weight: L1 between predicted and teacher flows.
      style_weight: VGG-19 Gram-matrix style loss between generated and real frames.
      tv_weight: total variation of the generated frames.
      pixel_weight: L1 between generated and real frames (not in the paper, whose
        image loss is style + TV only; 0 keeps the paper's losses).
        configs/default_weights.json uses it: ImageNet VGG-19 weights cannot be loaded here.
      sharpness_weight: `spiritnet_tf.losses.sharpness_gap` between generated and real
        frames (not in the paper): position-free, it counters the blur that the pixel L1
        teaches the warp kernels (docs/training.md).
      depth_weight: the depth net's supervised loss, applied when a batch carries depth:
        `spiritnet_tf.losses.relative_depth` for the "percentile" depth mapping,
        `spiritnet_tf.losses.scale_invariant_log_depth` for "max".
      style_layers: (VGG-19 layer name, weight) pairs, see `STYLE_LAYERS`.
      vgg_weights: path of a VGG-19 ``include_top=False`` weights file, or None
        for random weights (tests; ImageNet weights cannot be downloaded here).
        Record which one trained a checkpoint.
    """

    flow_weight: float = 1.0
    style_weight: float = 1.0
    tv_weight: float = 0.01
    pixel_weight: float = 0.0
    sharpness_weight: float = 0.0
    depth_weight: float = 0.1
    style_layers: tuple = STYLE_LAYERS
    vgg_weights: str = None

    def __post_init__(self):
        self.style_layers = tuple((str(n), float(w)) for n, w in self.style_layers)
