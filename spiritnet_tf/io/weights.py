"""SpiritNet weights: every rule for checking and loading them, in one place
(docs/design.md §7).

    from spiritnet_tf.io.weights import load_model
    model = load_model()                                  # the bundled default weights
    model = load_model("runs/x/model.keras")              # a .keras model (safe_mode)
    model = load_model("my.weights.h5", preset="small")   # weights of a preset's model
    model = load_model("runs/x")                          # a run directory: its model.keras

What a ``weights`` argument may be, for every loader of the package (`spiritnet_tf.animate`,
`spiritnet_tf.animation.load_model`, ``SpiritNet.from_preset(weights=...)``,
``spiritnet evaluate``, the bundle step, the export scripts):

* None or ``"default"``: the bundled weights of the "small" preset
  (`spiritnet_tf.config.DEFAULT_WEIGHTS`); FileNotFoundError naming the way out when an
  installation lacks them;
* a `spiritnet_tf.model.SpiritNet`, used as it is;
* a ``.keras`` model file, loaded with ``safe_mode=True`` (it must hold a SpiritNet);
* a ``.weights.h5`` file saved from a model of ``preset`` (or, with ``run_config=True``,
  of the configuration recorded by the run directory it sits in);
* a run directory (its ``model.keras``);
* on command lines, ``"none"`` (`RANDOM`): a randomly initialised ``preset`` model
  (`model_from_option`).

Before anything is built, `check_weights_file` opens a ``.keras`` model (a zip archive
holding ``config.json`` and ``model.weights.h5``) or a ``.weights.h5`` file (HDF5) just far
enough to tell whether it is a SpiritNet's, so that a corrupt or foreign file is refused
with "not a SpiritNet weights file" and the reason (no TensorFlow needed for that); whether
the weights fit the architecture is checked when they are loaded.

The bundled weights' ``MANIFEST.json`` (`spiritnet_tf.config.DEFAULT_MANIFEST`) records the
configuration their quality gate measured (``resample_from``, ``depth_mapping``, the DAFR
rule); `bundled_overrides` reads it and `configure_preset` applies it, the one place that
does, whenever the bundled file is loaded, however it is named (None, ``"default"`` or its
path). Loaded files are cached (by path, size, modification time and options), so animating
many photos in one process loads the weights once.
"""

import dataclasses
import functools
import json
import os
import zipfile

from spiritnet_tf import config as _config

__all__ = ["WeightsFileError", "check_weights_file", "WEIGHTS_EXTENSIONS", "DEFAULT_PRESET", "RANDOM",
           "RUN_MODEL", "bundled_overrides", "bundled_weights", "is_bundled", "configure_preset",
           "weights_path", "load_model", "model_from_option", "with_resample"]

KERAS_SUFFIX = ".keras"
WEIGHTS_SUFFIX = ".weights.h5"
WEIGHTS_EXTENSIONS = (KERAS_SUFFIX, WEIGHTS_SUFFIX)
DEFAULT_PRESET = "small"  # the preset of the bundled weights
RANDOM = "none"  # the command lines' spelling of "random initialisation"
RUN_MODEL = "model.keras"  # the final model of a run directory (spiritnet_tf.training.run)
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class WeightsFileError(ValueError):
    """A weights file cannot be used; the message names the file and the reason."""


def _refuse(path, reason):
    raise WeightsFileError(f"{path}: not a SpiritNet weights file ({reason})")


def check_weights_file(path):
    """Raises `WeightsFileError` unless ``path`` looks like SpiritNet weights.

    FileNotFoundError for a missing file; WeightsFileError for an unknown extension,
    an unreadable or corrupt file, or the weights/model of another network.
    Returns ``"keras"`` or ``"weights.h5"``.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise WeightsFileError(f"{path}: is a folder; weights must be a .keras or .weights.h5 file")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such weights file")
    if not path.endswith(WEIGHTS_EXTENSIONS):
        raise WeightsFileError(f"{path}: weights must be a .keras model or a .weights.h5 file")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise WeightsFileError(f"{path}: cannot be read ({e.strerror or e})") from None
    if path.endswith(KERAS_SUFFIX):
        _check_keras(path)
        return "keras"
    if head != _HDF5_SIGNATURE:
        _refuse(path, "not an HDF5 file")
    _check_h5(path)
    return "weights.h5"


def _check_keras(path):
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            missing = {"config.json", "model.weights.h5"} - names
            if missing:
                _refuse(path, f"the Keras archive lacks {', '.join(sorted(missing))}")
            bad = archive.testzip()
            if bad is not None:
                _refuse(path, f"{bad} in the archive is corrupt")
            config = json.loads(archive.read("config.json"))
    except zipfile.BadZipFile as e:
        _refuse(path, f"not a Keras .keras archive: {e}")
    except (OSError, ValueError, EOFError) as e:
        if isinstance(e, WeightsFileError):
            raise
        _refuse(path, f"corrupt Keras archive: {e}")
    name = config.get("class_name") if isinstance(config, dict) else None
    if name != "SpiritNet":
        _refuse(path, f"it holds a {name or 'model of unknown type'}, not a SpiritNet")


def _check_h5(path):
    import h5py

    try:
        with h5py.File(path, "r") as f:
            groups = set(f.keys())
    except (OSError, ValueError) as e:
        _refuse(path, f"corrupt HDF5 file: {e}")
    if not {"cell", "dafr"} <= groups:
        _refuse(path, "it holds the weights of another model: no 'cell' and 'dafr' groups")


# ----------------------------------------------------------------------------- loading


def bundled_overrides():
    """`SpiritNetConfig` fields the bundled weights were gated with (their ``MANIFEST.json``):
    ``model`` (the training run's overrides on the preset, e.g. the depth net's width and
    side, ``depth_every_step``; absent from manifests that predate it), then, winning over
    it, ``resample_from`` (the mode their evaluation chose), ``depth_mapping`` (how their
    depth output becomes z: "max" when the manifest predates the field, as those weights
    were trained and gated with it), ``dafi_holes`` (what DAFI writes into its holes:
    "zero" when the manifest predates the field) and ``dafr`` (the DAFR rule their gate measured), so
    that a change of the defaults never changes their animations. With no manifest
    installed, only ``depth_mapping`` ("max") and ``dafi_holes`` ("zero")."""
    manifest = {}
    if os.path.isfile(_config.DEFAULT_MANIFEST):
        with open(_config.DEFAULT_MANIFEST) as f:
            manifest = json.load(f)
    fields = {f.name for f in dataclasses.fields(_config.SpiritNetConfig)}
    model = manifest.get("model") if isinstance(manifest.get("model"), dict) else {}
    overrides = {k: v for k, v in model.items() if k in fields}  # the run's model section
    mapping = manifest.get("depth_mapping", "max")
    overrides["depth_mapping"] = mapping if mapping in _config.DEPTH_MAPPINGS else "max"
    if manifest.get("resample_from") in _config.RESAMPLE_MODES:
        overrides["resample_from"] = manifest["resample_from"]
    if isinstance(manifest.get("dafr"), dict):
        overrides["dafr"] = dict(manifest["dafr"])
    old = _config.RECORDED_DEFAULTS["dafi_holes"]
    holes = manifest.get("dafi_holes", overrides.get("dafi_holes", old))
    overrides["dafi_holes"] = holes if holes in _config.DAFI_HOLES else old
    return overrides


def bundled_weights():
    """The path of the bundled weights (`spiritnet_tf.config.DEFAULT_WEIGHTS`), checked:
    FileNotFoundError saying how to get them or what to pass instead when it is missing."""
    path = _config.DEFAULT_WEIGHTS
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"the bundled default weights ({path}) are not in this installation "
            "(`make default-weights` trains them, docs/training.md). Pass your own with "
            "weights=PATH (command line: --weights PATH), a .keras model or a "
            f".weights.h5 file of the {DEFAULT_PRESET!r} preset (see `spiritnet train`)"
        )
    return path


def is_bundled(weights):
    """Whether ``weights`` names the bundled file: ``"default"`` or its path (however spelt)."""
    if isinstance(weights, str) and weights == "default":
        return True
    if not isinstance(weights, (str, os.PathLike)):
        return False
    bundled = _config.DEFAULT_WEIGHTS
    return (os.path.isfile(bundled) and os.path.exists(weights)
            and os.path.samefile(weights, bundled))


def configure_preset(name, weights=None, **overrides):
    """``(config, weights file or None)`` of ``SpiritNet.from_preset(name, weights, **overrides)``.

    ``weights``: None (random initialisation), a ``.weights.h5`` path, or ``"default"`` (the
    bundled file, `bundled_weights`). When ``weights`` names the bundled file (`is_bundled`),
    the manifest's `bundled_overrides` apply under ``overrides``: the one place the manifest
    is applied. ValueError for an unknown preset or bundled weights of another preset.
    """
    from spiritnet_tf.model import PRESETS

    if name not in PRESETS:
        raise ValueError(f"unknown SpiritNet preset {name!r}; choose one of {sorted(PRESETS)}")
    if weights is not None and is_bundled(weights):
        if name != DEFAULT_PRESET:
            raise ValueError(f"bundled weights exist for the {DEFAULT_PRESET!r} preset only, "
                             f"not {name!r}")
        overrides = {**bundled_overrides(), **overrides}  # what their gate measured
        weights = bundled_weights()
    elif weights is not None:
        weights = os.fspath(weights)
    return dataclasses.replace(PRESETS[name], **overrides), weights


def with_resample(model, resample_from):
    """``model``, or a copy with the same weights whose ``resample_from`` is the one asked
    (None keeps the model's)."""
    if resample_from is None or resample_from == model.config.resample_from:
        return model
    return model.with_config(resample_from=resample_from)


def weights_path(weights):
    """The checked file that ``weights`` (a path, or a run directory: its ``model.keras``)
    names: FileNotFoundError when it is missing, `WeightsFileError` unless it looks like
    SpiritNet weights (`check_weights_file`). The command lines call it before any data or
    photo is read."""
    path = os.fspath(weights)
    if os.path.isdir(path):
        path = os.path.join(path, RUN_MODEL)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such weights file")
    check_weights_file(path)
    return path


def load_model(weights=None, *, preset=DEFAULT_PRESET, resample_from=None, run_config=False,
               members=None):
    """The SpiritNet that ``weights`` names (module docstring), loaded once per file.

    Args:
      weights: None or ``"default"`` (the bundled weights), a SpiritNet, a path to a
        ``.keras`` or ``.weights.h5`` file, or a run directory.
      preset: the preset whose architecture a ``.weights.h5`` file fits.
      resample_from: None (keep the model's) or ``"previous"`` / ``"input"``
        (docs/design.md §3.9); a different mode gives a copy with the same weights.
      members: None (all of the model's) or how many of an ensemble's members to keep,
        the first ones (``SpiritNet.first_members``: faster, not what the gate measured);
        from a file, also made once per file and count.
      run_config: a ``.weights.h5`` file inside a run directory (or its
        ``checkpoints/``) gets the architecture that the run's ``manifest.json`` or
        ``config.json`` records (``spiritnet evaluate``, the bundle step); ``preset``
        otherwise.

    Raises:
      FileNotFoundError when the file (or the bundled default) is missing; ValueError
      for an unknown file type, a file that is not SpiritNet weights (`WeightsFileError`)
      or weights that do not fit the architecture.
    """
    from spiritnet_tf.model import SpiritNet

    if isinstance(weights, SpiritNet):
        return _with_members(with_resample(weights, resample_from), members)
    if weights is None or (isinstance(weights, str) and weights == "default"):
        path = weights_path(bundled_weights())
    else:
        path = weights_path(weights)
    stat = os.stat(path)
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns, preset, resample_from,
           bool(run_config))
    return _load_cached(*key) if members is None else _first_members_cached(*key, members)


def _with_members(model, members):
    """``model`` with its first ``members`` members (None: all of them)."""
    return model if members is None else model.first_members(members)


@functools.lru_cache(maxsize=2, typed=True)  # typed: members True is refused, not 1
def _first_members_cached(path, size, mtime_ns, preset, resample_from, run_config, members):
    """`_load_cached`'s model with its first ``members`` members, also made once per file
    and count (a server or a page asked for fewer members again and again, or a process
    animating many photos, pays it once). A ``.weights.h5`` file is read straight into a
    model of that many members: Keras reads each layer's weights by its path, so the
    first members' come from the file and the others stay there (the six-member ensemble
    bundled until 2026-12-06: one member built and loaded in about 2.5 s, where all six
    and the cut took 5.3 s; 1.6-1.7 s since `_built_from_file`); a ``.keras`` file is
    loaded whole, then cut (`SpiritNet.first_members`). All of them: `_load_cached`'s
    model itself, as `SpiritNet.first_members` gives."""
    from spiritnet_tf.model import check_member_count

    if path.endswith(KERAS_SUFFIX):
        return _load_cached(path, size, mtime_ns, preset, resample_from, run_config).first_members(members)
    config = _weights_file_config(path, preset, resample_from, run_config)
    check_member_count(members, config.members)
    if members == config.members:
        return _load_cached(path, size, mtime_ns, preset, resample_from, run_config)
    return _from_weights_file(path, preset, dataclasses.replace(config, members=members))


@functools.lru_cache(maxsize=2)
def _load_cached(path, size, mtime_ns, preset, resample_from, run_config):
    import keras

    from spiritnet_tf.model import SpiritNet

    if not path.endswith(KERAS_SUFFIX):
        return _from_weights_file(path, preset,
                                  _weights_file_config(path, preset, resample_from, run_config))
    try:
        model = keras.saving.load_model(path, safe_mode=True)
        if not isinstance(model, SpiritNet):
            raise ValueError(f"it holds a {type(model).__name__}, not a SpiritNet")
        return with_resample(model, resample_from)
    except (ValueError, KeyError, TypeError) as e:
        raise _cannot_load(path, preset, e) from None


def _weights_file_config(path, preset, resample_from, run_config):
    """The `SpiritNetConfig` a ``.weights.h5`` file is read into: the architecture that
    `load_model`'s ``run_config`` and ``preset`` pick, with ``resample_from`` if given."""
    try:
        overrides = {} if resample_from is None else {"resample_from": resample_from}
        config = _run_config(path) if run_config and not is_bundled(path) else None
        if config is None:  # the preset's (and, for the bundled file, its manifest's)
            config, _ = configure_preset(preset, path, **overrides)
        elif overrides:
            config = dataclasses.replace(config, **overrides)
        return config
    except (ValueError, KeyError, TypeError) as e:
        raise _cannot_load(path, preset, e) from None


def _from_weights_file(path, preset, config):
    """A built SpiritNet of ``config`` (`_weights_file_config`, or that with fewer members:
    Keras reads the first members' weights by their paths) with the file's weights."""
    from spiritnet_tf.model import SpiritNet

    try:
        return _built_from_file(SpiritNet(config), path)
    except Exception:  # the plain way below: the same model, or the error that names the problem
        pass
    try:
        model = SpiritNet(config)
        model.build()
        model.load_weights(path)
        return model
    except (ValueError, KeyError, TypeError) as e:
        raise _cannot_load(path, preset, e) from None


def _built_from_file(model, path):
    """``model.build()`` then ``model.load_weights(path)``, with each variable created once,
    from the file's value: the build and Keras's walk of the file run in a
    `keras.StatelessScope` that defers the variables (Keras's deferred initialisation)
    and collects the values read for them, then each variable is initialised with its
    value instead of its random initialiser (a variable the file does not hold keeps its
    initialiser, as ``load_weights`` leaves it). Same weights as the plain way (test),
    without the initialisers' random draws and one assignment per variable: one member of
    the ensemble then bundled in 1.61-1.71 s against 2.46-2.50 s (docs/benchmarks.md).
    Keras's walk reads the file through `_read_weights_file` (every array read once into
    memory, instead of an HDF5 lookup per group and name): the single model bundled since
    2026-12-06 in 1.26 s of CPU against 1.70 s. Uses Keras internals outside its
    public API (the variables' ``_initializer`` and ``_deferred_initialize``, the saving
    library's ``_load_state`` and ``H5IOStore``); `_from_weights_file` falls back to the
    plain way if this raises."""
    import keras
    from keras.src.backend.common import global_state
    from keras.src.saving import saving_lib

    pending = global_state.get_global_attribute("uninitialized_variables", [], set_to_default=True)
    start = len(pending)
    try:
        with keras.StatelessScope(initialize_variables=False) as scope:
            model.build()
            failed, errors = set(), {}
            saving_lib._load_state(model, weights_store=_read_weights_file(path),
                                   assets_store=None, inner_path="", visited_saveables=set(),
                                   failed_saveables=failed, error_msgs=errors)
            if failed:  # the plain way then names the problem
                raise ValueError(f"{len(failed)} objects could not be loaded")
    finally:  # this model's deferred variables: initialised here, or dropped with it
        deferred = pending[start:]
        del pending[start:]
    for variable in deferred:
        value = scope.get_current_value(variable)
        if value is not None:
            variable._initializer = lambda shape, dtype, value=value: value
        variable._deferred_initialize()
    return model


def _read_weights_file(path):
    """A Keras ``H5IOStore`` of the ``.weights.h5`` file ``path`` whose arrays are all read
    at once into memory (`_built_from_file`): Keras's walk of the model then looks its
    groups up in dicts, not in the file (reading the bundled file and walking it: 0.37 s
    against 0.87-1.0 s, docs/benchmarks.md). Only hard-linked datasets are read, and a
    file declaring more than twice its size in arrays is refused (ValueError): the plain
    way, with Keras's own checks, then reads it or names the problem."""
    import h5py
    from keras.src.saving.saving_lib import H5IOStore

    class Store(H5IOStore):
        def __init__(self, groups):  # read mode, no file kept open
            self.mode, self.archive, self.io_file = "r", None, None
            self._h5_entry_path, self._h5_entry_group = None, {}
            self._h5_entry_metadata, self._h5_entry_initialized = None, True
            self._groups = groups
            self._paths = {"/".join(parts[:k]) for parts in (g.split("/") for g in groups)
                           for k in range(1, len(parts) + 1)}

        def __bool__(self):
            return True

        def get(self, path):
            self._h5_entry_path = path
            self._h5_entry_group = self._groups.get(f"{path}/vars" if path else "vars", {})
            return self

        def has_path(self, path):
            return path in self._paths

        def __getitem__(self, key):
            return self._h5_entry_group[key]

        def close(self):
            pass

    groups, budget = {}, 2 * os.path.getsize(path) + 2**20
    with h5py.File(path, "r") as f:
        def read(name, item):
            nonlocal budget
            if isinstance(item, h5py.Dataset):
                budget -= item.size * item.dtype.itemsize
                if budget < 0:
                    raise ValueError(f"{path}: declares more array bytes than it holds")
                group, key = name.rsplit("/", 1) if "/" in name else ("", name)
                groups.setdefault(group, {})[key] = item[()]

        f.visititems(read)
    return Store(groups)


def _cannot_load(path, preset, error):
    return ValueError(f"{path}: cannot load SpiritNet weights (preset {preset!r}): {error}")


def _run_config(path):
    """The `SpiritNetConfig` recorded by the run directory holding ``path`` (the folder of
    the file or its parent, for ``checkpoints/``), or None outside a run directory."""
    from spiritnet_tf.config import SpiritNetConfig
    from spiritnet_tf.training.config import parse_config
    from spiritnet_tf.training.run import CONFIG as RUN_CONFIG
    from spiritnet_tf.training.run import MANIFEST as RUN_MANIFEST

    here = os.path.dirname(os.path.abspath(path))
    for folder in (here, os.path.dirname(here)):
        manifest, config = os.path.join(folder, RUN_MANIFEST), os.path.join(folder, RUN_CONFIG)
        if os.path.exists(manifest):
            with open(manifest) as f:
                return SpiritNetConfig.from_recorded(json.load(f)["model_config"])
        if os.path.exists(config):
            with open(config) as f:
                return parse_config(json.load(f), where=config, base_dir=folder).model_config()
    return None


def model_from_option(weights, preset=DEFAULT_PRESET, **options):
    """`load_model` for a command line's ``--weights`` value: `RANDOM` (``"none"``, any case)
    gives a randomly initialised, built ``preset`` model; anything else `load_model`."""
    if isinstance(weights, str) and weights.lower() == RANDOM:
        from spiritnet_tf.model import SpiritNet

        model = SpiritNet.from_preset(preset)
        model.build()
        return model
    return load_model(weights, preset=preset, **options)
