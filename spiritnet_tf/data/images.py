"""Reading frames from disk for the data sources, with errors that name the file."""

import logging

import numpy as np

__all__ = ["CorruptInputError", "read_rgb", "ON_ERROR", "handle_bad_input"]

ON_ERROR = ("fail", "skip")
_log = logging.getLogger("spiritnet_tf.data")


class CorruptInputError(ValueError):
    """An image or video that cannot be decoded. ``path`` names the file."""

    def __init__(self, path, reason):
        self.path = str(path)
        self.reason = str(reason)
        super().__init__(f"cannot read {self.path}: {self.reason}")


def handle_bad_input(error, on_error):
    """Re-raises ``error`` when ``on_error == "fail"``; logs it (with its path) when "skip"."""
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    if on_error == "fail":
        raise error
    _log.warning("skipping: %s", error)


def read_rgb(path):
    """Reads an image file as uint8 RGB [H, W, 3].

    Grayscale becomes RGB, alpha is dropped, 16-bit images are scaled to 8 bit.
    Raises :class:`CorruptInputError` (naming ``path``) for missing, truncated or
    non-image files.
    """
    import imageio.v3 as iio

    try:
        image = np.asarray(iio.imread(path))
    except Exception as e:  # imageio raises many types for bad files
        raise CorruptInputError(path, f"{type(e).__name__}: {e}") from e
    if image.dtype == np.uint16:
        image = (image.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    elif image.dtype == np.bool_:
        image = image.astype(np.uint8) * 255
    elif image.dtype != np.uint8:
        raise CorruptInputError(path, f"unsupported pixel type {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] not in (1, 3, 4):
        raise CorruptInputError(path, f"not a single RGB image (array shape {image.shape})")
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    return np.ascontiguousarray(image[..., :3])
