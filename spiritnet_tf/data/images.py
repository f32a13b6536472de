"""Reading frames from disk for the data sources, with errors that name the file."""

import logging


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
    """Reads an image file as uint8 RGB [H, W, 3] with the project's one image loader.

    :func:`spiritnet_tf.io.images.load_image` does the conversions (grayscale to RGB,
    alpha composited on white, 16-bit scaled, EXIF orientation); any size is accepted
    here because frames are resized and cropped later. Raises
    :class:`CorruptInputError` (naming ``path``) for missing, truncated or non-image
    files.
    """
    from spiritnet_tf.io.images import ImageInputError, load_image
    from spiritnet_tf.io.writers import to_uint8

    try:
        image = load_image(path, min_side=1)
    except ImageInputError as e:
        raise CorruptInputError(path, str(e)) from e
    return to_uint8(image)
