"""Checks of SpiritNet weight files, before anything is loaded (no TensorFlow needed).

`check_weights_file` opens a ``.keras`` model (a zip archive holding ``config.json``
and ``model.weights.h5``) or a ``.weights.h5`` file (HDF5) just far enough to tell
whether it is a SpiritNet's, so that a corrupt or foreign file is refused with
"not a SpiritNet weights file" and the reason, before a model is built. Whether the
weights fit the chosen architecture is checked when they are loaded
(`spiritnet_tf.animation.load_model`).
"""

import json
import os
import zipfile

__all__ = ["WeightsFileError", "check_weights_file", "WEIGHTS_EXTENSIONS"]

WEIGHTS_EXTENSIONS = (".keras", ".weights.h5")
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
    if path.endswith(".keras"):
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
