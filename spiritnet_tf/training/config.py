"""Experiment files of ``spiritnet train``: one JSON (or TOML) file per experiment.

A file holds one `TrainConfig`; every key is checked (unknown keys and wrong types
are errors naming the key and the file; values are checked by the config classes' own
rules, `spiritnet_tf.config.CheckedConfig`, the package's one validation mechanism).
Example (``configs/small_synthetic.json``)::

    {
      "name": "small_synthetic",
      "preset": "small",
      "model": {"resample_from": "previous", "learning_rate": 1e-4},
      "loss": {"style_weight": 1.0, "vgg_weights": null},
      "train_data": [{"type": "synthetic", "count": 256, "height": 128, "width": 128}],
      "validation_data": [{"type": "synthetic", "count": 8, "seed": 1,
                           "height": 128, "width": 128}],
      "crop": [128, 128], "batch_size": 4, "num_frames": 5,
      "epochs": 10, "steps_per_epoch": 100, "validation_steps": 2, "seed": 0
    }

``model`` overrides fields of `spiritnet_tf.config.SpiritNetConfig` on top of the
preset (learning rates live there: ``learning_rate``, ``depth_learning_rate``);
``loss`` is a `spiritnet_tf.config.LossConfig` (``vgg_weights``: path of a VGG-19
``include_top=False`` weights file, or null for random VGG weights). Relative paths
in a file are relative to the file's folder.
"""

import dataclasses
import json
import os
import typing

from spiritnet_tf.config import (
    RESAMPLE_MODES,
    CheckedConfig,
    ConfigError,
    LossConfig,
    SpiritNetConfig,
    at_least,
    between,
    build_config,
    checked,
    one_of,
    optional,
    rule,
)
from spiritnet_tf.limits import MAX_TRAINING_FRAMES, MIN_SIDE, training_frames

__all__ = ["ConfigError", "SourceConfig", "EvaluationConfig", "TrainConfig", "load_config",
           "parse_config", "SOURCE_TYPES", "STRATEGIES"]

SOURCE_TYPES = ("synthetic", "videos", "tfrecord", "vimeo")
# tf.distribute strategies of `spiritnet_tf.training.make_strategy` (``--strategy``).
STRATEGIES = ("default", "mirrored", "multiworker")


@dataclasses.dataclass
class SourceConfig(CheckedConfig):
    """One data source.

    Attributes:
      type: "synthetic" (procedural parallax scenes, rendered on the fly),
        "videos" (a folder of videos or frame folders, cut into septuplets with
        DIS teacher flows and cached as TFRecords), "tfrecord" (septuplet
        TFRecords written by ``spiritnet data``), "vimeo" (the Vimeo-90K TFDS dataset).
      path: videos: the folder; tfrecord: a file, a folder of ``*.tfrecord`` or a glob.
      count, seed: synthetic: number of scenes and their seed.
      height, width: synthetic: render size; videos: the size clips are cut to.
      cache_dir: videos: where the TFRecords go (default: ``<path>/.spiritnet-cache``).
      frame_step, stride, teacher: videos: as in `spiritnet_tf.data.cache_videos`.
      with_depth: tfrecord: read the depth feature (synthetic records have it).
      data_dir, split, vimeo_config: vimeo: TFDS data folder, split, builder config.
      take: use only the first ``take`` septuplets of the source (None: all).
    """

    type: str = checked(rule=one_of(SOURCE_TYPES))
    path: str = None
    count: int = checked(None, optional(at_least(1, integer=True)))
    seed: int = 0
    height: int = 256
    width: int = 448
    cache_dir: str = None
    frame_step: int = checked(1, at_least(1, integer=True))
    stride: int = checked(7, at_least(1, integer=True))
    teacher: str = "dis"
    with_depth: bool = False
    data_dir: str = None
    split: str = "train"
    vimeo_config: str = "spiritnet"
    take: int = checked(None, optional(at_least(1, integer=True)))
    NEEDS = {"synthetic": "count", "videos": "path", "tfrecord": "path", "vimeo": "data_dir"}

    def validate(self, where=None):
        super().validate(where)
        key = self.NEEDS[self.type]
        if getattr(self, key) is None:
            where = where or type(self).__name__
            raise ConfigError(f"{where}: a {self.type!r} source needs {key!r}", where=where)
        return self


@dataclasses.dataclass
class EvaluationConfig(CheckedConfig):
    """Evaluation at the end of training (docs/design.md §5) on ``validation_data``.

    Attributes:
      mode: "prediction" or "generation".
      batches: at most this many validation batches (None: all).
      resample_from: evaluate the trained weights with each of these resampling
        modes of the model (docs/design.md §3.9), e.g. ["previous", "input"]; empty:
        only the trained configuration.
      seed: DAFR seed of generation mode.
    """

    mode: str = checked("prediction", one_of(("prediction", "generation")))
    batches: int = checked(None, optional(at_least(1, integer=True)))
    resample_from: list = checked(factory=list, rule=rule(
        f"a list of {', '.join(map(repr, RESAMPLE_MODES))}",
        lambda v: isinstance(v, (list, tuple)) and all(m in RESAMPLE_MODES for m in v)))
    seed: int = 0


@dataclasses.dataclass
class TrainConfig(CheckedConfig):
    """One training experiment (see the module docstring for a full example).

    Attributes:
      name: a label stored in the manifest.
      preset: model preset ("small" or "paper", `spiritnet_tf.model.PRESETS`).
      model: `SpiritNetConfig` overrides on top of the preset.
      loss: `LossConfig` fields (loss weights, VGG layers and weights file).
      train_data, validation_data: lists of `SourceConfig` dicts (validation may be empty).
      crop: [H, W] random crop of the training samples (None: none; all samples
        must then share one size); validation uses the same crop.
      batch_size: global batch (split across replicas by the strategy).
      num_frames: generated frames per sample, 1..5 (1..4 with ``model.flow_history``;
        prediction mode has 5 targets;
        fewer shortens the unrolled recurrence and its compile time).
      flip: random horizontal and vertical flips.
      shuffle: shuffle buffer (0: none).
      mix_sources: False reads the training sources one after another (with a shuffle
        buffer smaller than the data, a run then sees them in stretches, its last
        epochs mostly the last sources); True draws each sample from a source picked in
        proportion to its size, every source's files in a new order on each pass
        (`spiritnet_tf.training.septuplet_dataset`).
      epochs, steps_per_epoch: training length (steps = epochs x steps_per_epoch).
      validation_steps: validation batches per epoch (0: no validation).
      seed: seeds Keras (weights) and the data pipeline.
      previews: number of validation (else training) samples in the image summaries
        and animated previews written after each epoch (0: none).
      evaluation: `EvaluationConfig` dict, or None for no final evaluation.
      depth_weights: path of a ``.weights.h5`` file of the depth net (e.g. converted
        official MegaDepth for the "paper" depth preset) loaded before training.
      init_weights: path of a ``.weights.h5`` file of the whole model (this preset and
        ``model`` architecture, e.g. a finished run's ``model.weights.h5``) loaded before
        training: a warm start (``depth_weights``, when given too, replace its depth net).
        A resumed run restores its own state over it.
      decay_to: None (the default) keeps the main learning rate (``model.learning_rate``)
        constant; a fraction f in [0, 1] makes it follow a cosine from the learning rate
        down to f times it at the last of the epochs x steps_per_epoch steps (the depth
        net's rate stays constant). `learning_rate_schedule` makes it; a resumed run
        continues it from its restored step.
      depth_pretraining: `spiritnet_tf.training.depth.DepthPretraining` dict: train
        the depth net alone on synthetic scenes first (its weights are kept in the
        run directory, so a resumed run does not repeat it); None: no such stage.
        Pair either with ``model.pretrained_depth: true`` (frozen batch norm, tiny
        depth learning rate).
    """

    train_data: list = checked(rule=rule("a list of at least one source",
                                         lambda v: isinstance(v, (list, tuple)) and len(v) >= 1))
    name: str = "experiment"
    preset: str = "small"
    model: dict = dataclasses.field(default_factory=dict)
    loss: dict = dataclasses.field(default_factory=dict)
    validation_data: list = dataclasses.field(default_factory=list)
    crop: list = checked(None, optional(rule(
        f"[height, width], each an int >= {MIN_SIDE}",
        lambda v: len(v) == 2 and all(
            isinstance(x, int) and not isinstance(x, bool) and x >= MIN_SIDE for x in v))))
    batch_size: int = checked(4, at_least(1, integer=True))
    num_frames: int = checked(5, between(1, MAX_TRAINING_FRAMES, integer=True))
    flip: bool = True
    shuffle: int = checked(256, at_least(0, integer=True))
    mix_sources: bool = False
    epochs: int = checked(10, at_least(1, integer=True))
    steps_per_epoch: int = checked(100, at_least(1, integer=True))
    validation_steps: int = checked(0, at_least(0, integer=True))
    seed: int = 0
    previews: int = checked(2, at_least(0, integer=True))
    evaluation: dict = None
    depth_weights: str = None
    init_weights: str = None
    decay_to: float = checked(None, optional(between(0, 1)))
    depth_pretraining: dict = None

    def learning_rate_schedule(self):
        """The main optimizer's learning rate: ``model.learning_rate`` (of the preset and
        ``model``) when ``decay_to`` is None, else a `keras.optimizers.schedules.CosineDecay`
        from it to ``decay_to`` times it over the run's epochs x steps_per_epoch steps."""
        rate = self.model_config().learning_rate
        if self.decay_to is None:
            return rate
        import keras

        return keras.optimizers.schedules.CosineDecay(
            rate, decay_steps=self.epochs * self.steps_per_epoch, alpha=float(self.decay_to))

    def validate(self, where=None):
        """The fields' rules, then the checks across fields (what needs validation data,
        depth_weights or depth_pretraining)."""
        super().validate(where)
        where = where or type(self).__name__
        if self.validation_steps and not self.validation_data:
            raise ConfigError(f"{where}.validation_steps: needs validation_data", where=where)
        if self.evaluation is not None and not self.validation_data:
            raise ConfigError(f"{where}.evaluation: needs validation_data to evaluate on",
                              where=where)
        if self.num_frames > training_frames(self.model.get("flow_history")):
            raise ConfigError(
                f"{where}.num_frames: {self.num_frames} > {training_frames(True)}: with "
                "model.flow_history the samples start one frame later (the flow before "
                f"flow0 comes first), leaving {training_frames(True)} targets", where=where)
        if self.depth_weights is not None and self.depth_pretraining is not None:
            raise ConfigError(f"{where}: give depth_weights or depth_pretraining, not both",
                              where=where)
        return self

    def to_dict(self):
        return dataclasses.asdict(self)

    def model_config(self):
        """The `SpiritNetConfig` of the experiment: the preset with ``model`` applied."""
        from spiritnet_tf.model import PRESETS

        return dataclasses.replace(PRESETS[self.preset], **self.model)

    def loss_config(self):
        return LossConfig.from_dict(self.loss)

    def sources(self, which):
        return [SourceConfig(**s) for s in getattr(self, which)]

    def evaluation_config(self):
        return None if self.evaluation is None else EvaluationConfig(**self.evaluation)

    def depth_pretraining_config(self):
        from spiritnet_tf.training.depth import DepthPretraining

        return None if self.depth_pretraining is None else DepthPretraining(
            **self.depth_pretraining)


# ----------------------------------------------------------------------------- checking


def _type_name(tp):
    return getattr(tp, "__name__", str(tp))


def _check_value(value, tp, where):
    """Checks one value against a field's annotation (None is allowed where the default is)."""
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp in (list, tuple):
        ok = isinstance(value, (list, tuple))
    else:
        ok = isinstance(value, tp)
    if not ok:
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {type(value).__name__} "
                          f"{value!r}")


def _check_fields(cls, values, where):
    """Checks ``values`` (a dict) against dataclass ``cls``: known keys, right types."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected an object/table, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
                          f"known: {', '.join(sorted(fields))}")
    for name, field in fields.items():
        if name not in values:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{where}: missing required key {name!r}")
            continue
        value = values[name]
        if value is None and (field.default is None):
            continue
        _check_value(value, hints[name], f"{where}.{name}")


def _resolve(path, base):
    if path is None or os.path.isabs(path) or "://" in path:
        return path
    return os.path.normpath(os.path.join(base, path))


def parse_config(values, where="config", base_dir="."):
    """Checks a config dict and returns a `TrainConfig` (paths resolved against base_dir)."""
    _check_fields(TrainConfig, values, where)
    values = dict(values)
    for which in ("train_data", "validation_data"):
        sources = []
        for i, source in enumerate(values.get(which) or []):
            at = f"{where}.{which}[{i}]"
            _check_fields(SourceConfig, source, at)
            source = dict(source)
            for key in ("path", "cache_dir", "data_dir"):
                source[key] = _resolve(source.get(key), base_dir)
            build_config(SourceConfig, at, **source)
            sources.append(source)
        values[which] = sources
    config = build_config(TrainConfig, where, **values)
    # Model and loss options: the same checks, against the model's own dataclasses.
    _check_fields(SpiritNetConfig, config.model, f"{where}.model")
    _check_fields(LossConfig, config.loss, f"{where}.loss")
    if config.loss.get("vgg_weights") is not None:
        config.loss["vgg_weights"] = _resolve(config.loss["vgg_weights"], base_dir)
        if not os.path.exists(config.loss["vgg_weights"]):
            raise ConfigError(f"{where}.loss.vgg_weights: file {config.loss['vgg_weights']!r} "
                              "does not exist")
    if config.depth_weights is not None:
        config.depth_weights = _resolve(config.depth_weights, base_dir)
        if not os.path.exists(config.depth_weights):
            raise ConfigError(f"{where}.depth_weights: file {config.depth_weights!r} does not exist")
    if config.init_weights is not None:  # checked by `train`, like the data (made later)
        config.init_weights = _resolve(config.init_weights, base_dir)
    if config.depth_pretraining is not None:
        from spiritnet_tf.training.depth import DepthPretraining

        _check_fields(DepthPretraining, config.depth_pretraining, f"{where}.depth_pretraining")
        for key in ("textures", "footage", "photos"):
            if config.depth_pretraining.get(key):
                config.depth_pretraining[key] = _resolve(config.depth_pretraining[key], base_dir)
        build_config(DepthPretraining, f"{where}.depth_pretraining", **config.depth_pretraining)
    from spiritnet_tf.model import PRESETS

    if config.preset not in PRESETS:
        raise ConfigError(f"{where}.preset: unknown preset {config.preset!r}; "
                          f"choose one of {', '.join(sorted(PRESETS))}")
    if config.evaluation is not None:
        _check_fields(EvaluationConfig, config.evaluation, f"{where}.evaluation")
        build_config(EvaluationConfig, f"{where}.evaluation", **config.evaluation)
    try:
        build_config(config.model_config, f"{where}.model")
        build_config(config.loss_config, f"{where}.loss")
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from None
    return config


def load_config(path):
    """Reads and checks an experiment file (``.json`` or ``.toml``); returns a `TrainConfig`.

    Raises:
      FileNotFoundError: the file does not exist (the message names it).
      ValueError (`ConfigError`): unreadable file, unknown key, wrong type or
        impossible value; the message names the file and the key.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file {path!r} does not exist")
    extension = os.path.splitext(path)[1].lower()
    try:
        if extension == ".json":
            with open(path) as f:
                values = json.load(f)
        elif extension == ".toml":
            import tomllib

            with open(path, "rb") as f:
                values = tomllib.load(f)
        else:
            raise ConfigError(f"config file {path!r}: expected a .json or .toml file")
    except (json.JSONDecodeError, ValueError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"config file {path!r} is not valid {extension[1:].upper()}: {e}") \
            from None
    return parse_config(values, where=path, base_dir=os.path.dirname(os.path.abspath(path)))
