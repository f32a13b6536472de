"""The project's one image loader (photos, depth maps, masks) and its resizing helpers.

Every public entry point that takes a picture goes through `load_image`, so the
rules of docs/design.md §2 hold everywhere:

* result: float32 NumPy array [H, W, 3], RGB, values in [0, 1];
* grayscale becomes RGB; alpha (RGBA, LA, palette images with transparency) is
  composited on white; 16-bit images are scaled exactly (65535 -> 1.0);
* the EXIF orientation tag is applied (the array is what a viewer shows);
* a file whose header declares more than ``max_pixels`` pixels is refused *before*
  its pixels are decoded (decompression bombs), and images with a side under
  ``min_side`` are refused;
* every problem raises `ImageInputError` (a ``ValueError``) whose message names the
  file and the problem: missing file, not an image, corrupt or truncated data, too
  small, too many pixels, unsupported pixel format, NaN/inf values.

Depth maps (`load_depth_map`) become inverse depth z in (0, 1] (1 = nearest,
clamped below at 1e-3, docs/design.md §2); masks (`load_mask`) become {0, 1} with 1 =
static.
"""

import io
import os
import warnings

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from spiritnet_tf.limits import MAX_PIXELS as DEFAULT_MAX_PIXELS  # public names kept
from spiritnet_tf.limits import MIN_INVERSE_DEPTH
from spiritnet_tf.limits import MIN_SIDE as DEFAULT_MIN_SIDE

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MIN_SIDE",
    "ImageInputError",
    "UNIT_RANGE_TOLERANCE",
    "check_unit_range",
    "load_image",
    "load_depth_map",
    "load_mask",
    "working_size",
    "resize_to_working_side",
    "PHOTO_EXTENSIONS",
    "check_image",
]

UNIT_RANGE_TOLERANCE = 1.0 / 255  # float pixels may stray this far outside [0, 1]
_ORIENTATION_TAG = 0x0112
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ImageInputError(ValueError):
    """A picture given to spiritnet_tf cannot be used; the message says which and why."""


# ----------------------------------------------------------------------------- decoding


def _read_source(source, name):
    """Returns (encoded bytes or None, PIL image or None, array or None, display name)."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        name = name or path
        try:
            with open(path, "rb") as f:
                return f.read(), None, None, name
        except FileNotFoundError:
            raise ImageInputError(f"{name}: no such file") from None
        except IsADirectoryError:
            raise ImageInputError(f"{name}: is a directory, not an image file") from None
        except OSError as e:
            raise ImageInputError(f"{name}: cannot be read ({e.strerror or e})") from None
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), None, None, name or "<encoded bytes>"
    if isinstance(source, Image.Image):
        return None, source, None, name or "<PIL image>"
    try:
        array = np.asarray(source)
    except Exception:  # noqa: BLE001 - anything that is not array-like
        array = None
    if array is None or array.dtype == object:
        raise ImageInputError(
            f"{name or 'image'}: expected a file path, encoded image bytes or an array "
            f"[H,W,3], got {type(source).__name__}"
        )
    return None, None, array, name or "<array>"


def _open_checked(data, name, max_pixels, min_side):
    """Opens encoded data with Pillow (header only) and checks its size; pixels not decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise ImageInputError(
            f"{name}: too many pixels ({e}); refusing to decode it (limit {max_pixels:,})"
        ) from None
    except UnidentifiedImageError:
        raise ImageInputError(
            f"{name}: not an image (unrecognised or unsupported format)"
        ) from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageInputError(f"{name}: corrupt image header ({e})") from None
    _check_size(im.size[1], im.size[0], name, max_pixels, min_side)
    return im


def _check_size(height, width, name, max_pixels, min_side):
    if height * width > max_pixels:
        raise ImageInputError(
            f"{name}: too many pixels ({width}x{height} = {width * height:,}, limit "
            f"{max_pixels:,}); resize it first or raise the pixel limit (--max-pixels)"
        )
    if min(height, width) < min_side:
        raise ImageInputError(
            f"{name}: too small ({width}x{height}); each side must be at least {min_side} px"
        )


def _png_bit_depth(data):
    """Bit depth from a PNG's IHDR chunk, or None if data is not a PNG."""
    if data is not None and data[:8] == _PNG_SIGNATURE and len(data) > 24:
        return data[24]
    return None


def _pixels_from_pil(im, name):
    """Decodes a PIL image to uint8/uint16 [H,W,C], C = 1 (gray), 2 (gray+alpha), 3, 4."""
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(im, dtype=np.uint16)[..., None]
    if mode == "I":
        array = np.asarray(im)
        if array.size and (array.min() < 0 or array.max() > 65535):
            raise ImageInputError(f"{name}: unsupported 32-bit integer pixel values")
        return array.astype(np.uint16)[..., None]
    if mode == "F":
        raise ImageInputError(f"{name}: unsupported pixel format (32-bit float image)")
    if mode in ("L", "1"):
        return np.asarray(im.convert("L"))[..., None]
    if mode in ("LA", "La"):
        return np.asarray(im.convert("LA"))
    if im.has_transparency_data:
        return np.asarray(im.convert("RGBA"))
    return np.asarray(im.convert("RGB"))


def _decode(data, name, max_pixels, min_side):
    """Encoded bytes -> uint8/uint16 [H,W,C] (C in 1..4, RGB order), EXIF orientation applied."""
    im = _open_checked(data, name, max_pixels, min_side)
    try:
        if _png_bit_depth(data) == 16:
            # Pillow reduces 16-bit RGB(A) PNGs to 8 bits; OpenCV keeps all 16.
            array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
            if array is None:
                raise OSError("OpenCV could not decode the 16-bit PNG data")
            if array.ndim == 2:
                array = array[..., None]
            elif array.shape[-1] in (3, 4):
                array = array[..., [2, 1, 0, 3][: array.shape[-1]]]  # BGR(A) -> RGB(A)
        else:
            im.load()
            array = _pixels_from_pil(im, name)
    except ImageInputError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageInputError(f"{name}: corrupt or truncated image data ({e})") from None
    try:
        orientation = int(im.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block must not stop the image
        orientation = 1
    return _apply_orientation(array, orientation)


def _apply_orientation(array, orientation):
    """Applies EXIF orientation 1..8 to [H,W,C] so the array looks as a viewer shows it."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
        8: lambda a: np.rot90(a, 1),
    }
    op = ops.get(orientation)
    return np.ascontiguousarray(op(array)) if op else array


def check_unit_range(array, name):
    """Raises `ImageInputError` unless float pixels lie in [0, 1].

    The one owner of the input range (docs/design.md §2): `load_image` (hence `animate`),
    `SpiritNet.call` on concrete tensors and the dev server's float ``image`` input
    all use it. Values up to `UNIT_RANGE_TOLERANCE` outside are accepted (rounding
    of 8-bit data); the caller clips them. ``array``: NumPy array or eager tensor;
    ``name`` starts the message.
    """
    array = np.asarray(array)
    if array.size:
        low, high = float(array.min()), float(array.max())
        if low < -UNIT_RANGE_TOLERANCE or high > 1 + UNIT_RANGE_TOLERANCE:
            raise ImageInputError(
                f"{name}: float values must lie in [0, 1], got [{low:.4g}, {high:.4g}] "
                "(divide 8-bit values by 255)"
            )


def _scale_to_unit(array, name):
    """Integer or float [H,W,C] -> float32 in [0, 1] (uint8 / 255, uint16 / 65535)."""
    if array.dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255)
    if array.dtype == np.uint16:
        return (array.astype(np.float64) / 65535.0).astype(np.float32)
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32)
        if not np.all(np.isfinite(array)):
            raise ImageInputError(f"{name}: contains NaN or infinite values")
        check_unit_range(array, name)
        return np.clip(array, 0.0, 1.0)
    raise ImageInputError(
        f"{name}: unsupported pixel dtype {array.dtype} (use uint8, uint16 or float in [0, 1])"
    )


def _to_rgb(array, name, background=1.0):
    """[H,W,C] in [0,1] with C in 1..4 -> [H,W,3]; alpha composited on ``background``."""
    channels = array.shape[-1]
    if channels in (2, 4):
        alpha = array[..., -1:]
        array = array[..., :-1] * alpha + np.float32(background) * (1 - alpha)
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return np.ascontiguousarray(array, dtype=np.float32)


def _as_hwc(array, name):
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 2, 3, 4):
        raise ImageInputError(
            f"{name}: expected an image array [H,W], [H,W,1], [H,W,3] or [H,W,4], got shape "
            f"{array.shape}"
        )
    return array


def _load_raw(source, name, max_pixels, min_side):
    """Any source -> ([H,W,C] array with C in 1..4, uint or float, display name)."""
    data, pil, array, name = _read_source(source, name)
    if data is not None:
        array = _decode(data, name, max_pixels, min_side)
    else:
        if pil is not None:
            _check_size(pil.size[1], pil.size[0], name, max_pixels, min_side)
            array = _pixels_from_pil(pil, name)
        array = _as_hwc(array, name)
        _check_size(array.shape[0], array.shape[1], name, max_pixels, min_side)
    return array, name


# ----------------------------------------------------------------------------- public API


def load_image(
    source, *, max_pixels=DEFAULT_MAX_PIXELS, min_side=DEFAULT_MIN_SIDE, name=None
):
    """Loads a photo as float32 RGB [H, W, 3] in [0, 1] (docs/design.md §2).

    Args:
      source: a file path, the encoded bytes of an image file (JPEG, PNG, WebP, ...),
        a PIL image, or an array [H,W], [H,W,1], [H,W,3] or [H,W,4] of uint8, uint16 or
        float in [0, 1] (e.g. a decoded frame or a tensor).
      max_pixels: refuse images with more pixels than this. For files this is checked
        on the header, before any pixel is decoded. (Pillow itself refuses anything above
        about 179 MP whatever this says.)
      min_side: refuse images whose height or width is below this.
      name: how to call the image in error messages (default: the path).

    Returns:
      float32 ndarray [H, W, 3] in [0, 1]; H, W after EXIF orientation.

    Raises:
      ImageInputError (a ValueError) naming the file and the problem.
    """
    array, name = _load_raw(source, name, max_pixels, min_side)
    return _to_rgb(_scale_to_unit(array, name), name, background=1.0)


def _resize(array, size, interpolation=None):
    """Resizes [H,W,C] float32 to size (height, width); area filter when shrinking."""
    height, width = int(size[0]), int(size[1])
    if (height, width) == array.shape[:2]:
        return array
    if interpolation is None:
        shrinking = height * width < array.shape[0] * array.shape[1]
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    out = cv2.resize(array, (width, height), interpolation=interpolation)
    return out.reshape(height, width, array.shape[-1])


def _check_target_size(size, name):
    if size is None:
        return None
    try:
        height, width = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: size must be (height, width), got {size!r}") from None
    if height < 1 or width < 1:
        raise ValueError(f"{name}: size must be positive, got {size!r}")
    return height, width


def load_depth_map(
    source, *, kind="depth", size=None, max_pixels=DEFAULT_MAX_PIXELS, name=None
):
    """Loads a user depth map and converts it to inverse depth z [H, W, 1] (docs/design.md §2).

    Args:
      source: a ``.npy`` file ([H,W] or [H,W,1], any real dtype), an image file (8- or
        16-bit PNG, ...; single channel, or RGB with equal channels), encoded bytes or an
        array.
      kind: ``"depth"``: values proportional to distance (larger = farther); every value
        must be positive; z = (1/D) / max(1/D). ``"inverse"``: disparity-like values
        (larger = nearer), non-negative and not all zero; z = v / max(v).
      size: optional (height, width) to resample z to (e.g. the working size); the
        result is renormalised so that its maximum is 1.
      max_pixels: as in `load_image` (no minimum side: depth maps may be small).

    Returns:
      float32 ndarray [H, W, 1], z in [1e-3, 1] (1 = nearest).

    Raises:
      ImageInputError for unreadable files, NaN/inf, non-positive depths (kind="depth"),
      negative or all-zero values (kind="inverse"); ValueError for an unknown kind.
    """
    if kind not in ("depth", "inverse"):
        raise ValueError(f"depth map kind must be 'depth' or 'inverse', got {kind!r}")
    if isinstance(source, (str, os.PathLike)) and os.fspath(source).lower().endswith(".npy"):
        name = name or os.fspath(source)
        try:
            source = np.load(source, mmap_mode="r", allow_pickle=False)  # shape first
        except FileNotFoundError:
            raise ImageInputError(f"{name}: no such file") from None
        except (OSError, ValueError) as e:
            raise ImageInputError(f"{name}: not a readable .npy array ({e})") from None
        if source.ndim == 3 and source.shape[-1] != 1:
            raise ImageInputError(
                f"{name}: a depth array must be [H,W] or [H,W,1], got shape {source.shape}"
            )
    array, name = _load_raw(source, name, max_pixels, 1)
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise ImageInputError(f"{name}: depth values must be numbers, got {array.dtype}")
    values = array.astype(np.float64)
    if values.shape[-1] in (2, 4):  # drop alpha
        values = values[..., :-1]
    if values.shape[-1] == 3:
        if not (np.array_equal(values[..., 0], values[..., 1])
                and np.array_equal(values[..., 0], values[..., 2])):
            raise ImageInputError(
                f"{name}: a depth map must have one channel (or three equal ones), got a "
                "colour image"
            )
        values = values[..., :1]
    if not np.all(np.isfinite(values)):
        raise ImageInputError(f"{name}: depth map contains NaN or infinite values")
    if kind == "depth":
        bad = int(np.count_nonzero(values <= 0))
        if bad:
            raise ImageInputError(
                f"{name}: depth must be positive everywhere, {bad} pixel(s) are <= 0 (for a "
                "disparity-like map, where larger means nearer, use kind='inverse')"
            )
        z = values.min() / values  # (1/D) / max(1/D)
    else:
        if np.any(values < 0):
            raise ImageInputError(f"{name}: inverse depth must not be negative")
        if values.max() <= 0:
            raise ImageInputError(f"{name}: inverse depth is zero everywhere")
        z = values / values.max()
    z = np.maximum(z, MIN_INVERSE_DEPTH).astype(np.float32)
    size = _check_target_size(size, name)
    if size is not None:
        z = _resize(z, size)
        z = np.maximum(z / z.max(), MIN_INVERSE_DEPTH).astype(np.float32)
    return z


def load_mask(source, size=None, *, max_pixels=DEFAULT_MAX_PIXELS, name=None):
    """Loads a static-region mask as float32 [H, W, 1] with values {0, 1} (1 = static).

    A pixel is static where the mask's gray level is at least 0.5 (white); transparent
    pixels count as black (moving), so a mask can be painted on a transparent layer.
    With ``size`` = (height, width) the mask is resampled (area/linear) and then
    thresholded, so it stays binary.
    """
    array, name = _load_raw(source, name, max_pixels, 1)
    rgb = _to_rgb(_scale_to_unit(array, name), name, background=0.0)
    gray = rgb.mean(axis=-1, keepdims=True)
    size = _check_target_size(size, name)
    if size is not None:
        gray = _resize(gray, size)
    return (gray >= 0.5).astype(np.float32)


def working_size(height, width, working_side):
    """(h, w) whose long side is ``working_side`` with the aspect ratio kept.

    Never enlarges: an image whose long side is already at most ``working_side`` keeps
    its size. Sides are rounded to the nearest integer (at least 1).
    """
    if working_side is None or max(height, width) <= working_side:
        return int(height), int(width)
    scale = working_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_to_working_side(image, working_side):
    """Shrinks a float32 image [H, W, C] so its long side is ``working_side`` (area filter).

    Returns the image unchanged when it is already small enough (see `working_size`).
    The flow scale factor back to full resolution is ``W_full / w_working`` per axis.
    """
    image = np.asarray(image, dtype=np.float32)
    return _resize(image, working_size(image.shape[0], image.shape[1], working_side))


# ----------------------------------------------------------------------------- checking


# Files taken from a folder given as input (`spiritnet animate FOLDER`); any file that
# Pillow reads works when named directly.
PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


def check_image(source, *, max_pixels=DEFAULT_MAX_PIXELS, min_side=DEFAULT_MIN_SIDE, name=None):
    """Checks a picture file the way `load_image` would, from its header only.

    Raises `ImageInputError` naming the file for a missing or unreadable file, a file
    that is not an image, a corrupt header, too many pixels or a side under
    ``min_side``; pixels are not decoded (so damage inside the pixel data shows only
    when the image is loaded). Returns (height, width) as stored (before EXIF rotation).
    """
    data, pil, array, name = _read_source(source, name)
    if data is not None:
        im = _open_checked(data, name, max_pixels, min_side)
        return im.size[1], im.size[0]
    height, width = (pil.size[1], pil.size[0]) if pil is not None else array.shape[:2]
    _check_size(height, width, name, max_pixels, min_side)
    return height, width
