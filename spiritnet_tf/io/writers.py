"""The project's one output writer: animations, single images and visualisations.

* `AnimationWriter` streams frames one at a time (full-resolution frames never all
  sit in memory) to ``.gif``, ``.mp4``, ``.webp`` or a folder of PNGs.
* `write_animation` writes a whole sequence in one call; `write_image` one picture.
* `apply_loop` turns the T+1 frames of an animation (input first) into the frame
  order written for ``--loop none | boomerang | seamless`` (docs/design.md §2).
* `flow_to_rgb` and `depth_to_rgb` turn flows and inverse depth into pictures.

Frames are float arrays [H, W, 3] in [0, 1] (rounded to 8 bits) or uint8 [H, W, 3];
NumPy arrays and TensorFlow tensors both work.

Safety rules shared by every writer here: an existing output is never replaced
unless ``overwrite=True`` (the error names the file); output goes to a temporary
file (or folder) beside the target and is renamed over it only when everything was
written, so a failed or interrupted run never leaves a half-written file in place
of the user's. The temporary file or folder is given the mode a file or folder
created normally would get under the process's umask (`default_mode`) before it is
renamed, and SIGINT / SIGTERM are held back while an output is being committed, so a
stop at any moment leaves either the old output or the new one, never half of each
(the temporary file is removed when the exception unwinds: see `spiritnet_tf.cli`,
which turns SIGTERM into an exception).

Encoding: GIF, MP4 and WebP go through the ffmpeg binary bundled with
imageio-ffmpeg, fed one raw frame at a time through a pipe. GIF uses a palette
computed per frame (``palettegen=stats_mode=single`` + ``paletteuse=new=1``, so
colours stay good and nothing is buffered; the palette is chosen from the frame's colours
to 7 bits a channel, `_GIF_STATS`) and ordered (Bayer) dithering, whose
pattern does not crawl from frame to frame as error diffusion does; MP4 is H.264
(libx264, CRF 18) in yuv420p, and because yuv420p needs even sides, an odd height
or width is padded by repeating the last row or column (the video is then one pixel
larger on that side); WebP is animated lossy WebP (libwebp, quality 90). GIF and WebP loop forever.
(Pillow's animated GIF/WebP savers collect every frame before writing, which is why
they are not used here.)
"""

import contextlib
import os
import re
import shutil
import signal
import tempfile
import threading
import uuid

import cv2
import imageio_ffmpeg
import numpy as np
from PIL import Image

from spiritnet_tf.io import phone

__all__ = [
    "SUPPORTED_OUTPUTS",
    "LOOP_MODES",
    "AnimationWriter",
    "write_animation",
    "write_image",
    "apply_loop",
    "output_format",
    "output_extension",
    "live_photo_video",
    "output_conflict",
    "check_output_parent",
    "default_mode",
    "temp_file_beside",
    "temp_folder_beside",
    "to_uint8",
    "flow_to_rgb",
    "depth_to_rgb",
    "contact_sheet",
]

SUPPORTED_OUTPUTS = (".gif", ".mp4", ".webp", ".MP.jpg (Android Motion Photo)",
                     ".jpg (Apple Live Photo: NAME.jpg + NAME.mov)",
                     "a folder of PNGs (no extension, or ending in /)")
LOOP_MODES = ("none", "boomerang", "seamless")
DEFAULT_FPS = 8.0
MAX_FPS = 1000.0  # frames per second accepted by the writers (GIF stores 1/100 s anyway)
FRAME_NAME = "frame_{:04d}.png"
# zlib level of frame PNGs: 1 writes a 6 MP frame about 5x faster than Pillow's default
# 6 (measured 0.6 s vs 3.7 s) for files about 15 % larger.
PNG_COMPRESS_LEVEL = 1
_FRAME_FILE = re.compile(r"^frame_\d{4,}\.png$")
_IMAGE_EXTENSIONS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}

# What GIF's palettegen counts: each frame with the lowest bit of every channel set, so
# colours one step apart are counted as one (at most 2^21 colours instead of 2^24). Only
# the palette is chosen from it; paletteuse maps the frame itself. palettegen's time grows
# with the colours it counts: on the example's seven frames at 600x400 ffmpeg took 0.56
# instead of 0.97 s, at 1800x1200 1.96 instead of 4.31 s, for 0.011 dB less PSNR
# (36.086 against 36.097 dB; docs/benchmarks.md).
_GIF_STATS = "lutrgb=r='bitor(val,1)':g='bitor(val,1)':b='bitor(val,1)',"
# ffmpeg settings per container: (codec, output pixel format, extra output arguments).
_FFMPEG = {
    ".gif": (
        "gif",
        "pal8",
        [
            "-filter_complex",
            f"split[a][b];[a]{_GIF_STATS}palettegen=stats_mode=single[p];"
            "[b][p]paletteuse=new=1:dither=bayer:bayer_scale=3",
            "-loop",
            "0",
        ],
    ),
    ".mp4": ("libx264", "yuv420p", ["-crf", "18", "-preset", "medium"]),
    ".webp": ("libwebp_anim", "yuv420p", ["-quality", "90", "-loop", "0"]),
}
# Phone formats (`spiritnet_tf.io.phone`): the video part's container suffix and encoder.
_PHONE_VIDEO = {"motion-photo": ".mp4", "live-photo": ".mov"}
_FFMPEG["motion-photo"] = _FFMPEG[".mp4"]
_FFMPEG["live-photo"] = _FFMPEG[".mp4"]


def output_format(path):
    """``".gif"``, ``".mp4"``, ``".webp"``, ``"motion-photo"``, ``"live-photo"`` or
    ``"folder"`` for an output path.

    ``NAME.MP.jpg`` (any case) is an Android Motion Photo, any other ``.jpg``/``.jpeg``
    an Apple Live Photo (that JPEG plus `live_photo_video` beside it). A path ending in a
    separator or without an extension is a folder of PNGs. Any other extension raises
    ValueError listing the supported outputs.
    """
    path = os.fspath(path)
    if path.endswith(("/", os.sep)):
        return "folder"
    name = os.path.basename(path).lower()
    extension = os.path.splitext(name)[1]
    if extension == "":
        return "folder"
    if extension in _FFMPEG:
        return extension
    if extension in (".jpg", ".jpeg"):
        return "motion-photo" if name.endswith((".mp.jpg", ".mp.jpeg")) else "live-photo"
    raise ValueError(
        f"{path}: unknown output extension {extension!r}; supported: "
        + ", ".join(SUPPORTED_OUTPUTS)
    )


def output_extension(path):
    """The part of ``path``'s name `output_format` reads (".gif", ".MP.jpg", ...; "" for a
    folder): side outputs (`spiritnet_tf.animation.output_paths`) keep it."""
    fmt = output_format(path)
    if fmt == "folder":
        return ""
    base, extension = os.path.splitext(os.path.basename(os.path.normpath(os.fspath(path))))
    if fmt == "motion-photo":  # ".MP" belongs to it
        extension = os.path.splitext(base)[1] + extension
    return extension


def live_photo_video(path):
    """The MOV written beside a Live Photo's JPEG ``path``: same name, ``.MOV`` when the
    JPEG's extension is upper case, else ``.mov``."""
    base, extension = os.path.splitext(os.path.normpath(os.fspath(path)))
    return base + (".MOV" if extension.isupper() else ".mov")


_CONVERT_VALUES = 1 << 20  # float values converted at a time by `to_uint8` (4 MiB of float32)


def to_uint8(frame, name="frame"):
    """[H, W, 3] float in [0, 1] (clipped, rounded) or uint8 -> contiguous uint8 [H, W, 3].

    A float frame is converted a band of rows at a time, so that a full-resolution frame
    (137 MiB of float32 at 4000x3000) needs no float temporary of its own size."""
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[-1] != 3:
        raise ValueError(f"{name} must be [H, W, 3], got shape {frame.shape}")
    if frame.dtype == np.uint8:
        return np.ascontiguousarray(frame)
    if not np.issubdtype(frame.dtype, np.floating):
        raise ValueError(f"{name} must be float in [0, 1] or uint8, got {frame.dtype}")
    out = np.empty(frame.shape, np.uint8)
    rows = max(1, _CONVERT_VALUES // max(1, frame.shape[1] * 3))
    for start in range(0, frame.shape[0], rows):
        band = frame[start:start + rows]
        if not np.isfinite(band).all():
            raise ValueError(f"{name} contains NaN or infinite values")
        scaled = np.clip(band, 0.0, 1.0)  # a band-sized copy, then in place
        scaled *= 255.0
        np.rint(scaled, out=scaled)
        out[start:start + rows] = scaled
    return out


def apply_loop(frames, mode="none", *, close_loop=None):
    """The frames to write for a loop mode, from the T+1 frames of an animation.

    Args:
      frames: sequence (list, array [T+1,H,W,3], ...) of frames, input first.
      mode: ``"none"``: the frames unchanged (T+1). ``"boomerang"``: the frames, then
        the same in reverse without repeating either end: f0..fT, f(T-1)..f1 (2T frames;
        a single frame stays one frame). ``"seamless"``: T+1 frames whose last flows
        back into the first without a visible jump; that needs the model, which passes
        its implementation as ``close_loop``.
      close_loop: hook for ``"seamless"``: a callable taking the list of frames and
        returning the list to write. Ignored by the other modes.

    Returns:
      list of frames.

    Raises:
      ValueError for an unknown mode, or for ``"seamless"`` without ``close_loop``.
    """
    frames = list(frames)
    if mode == "none":
        return frames
    if mode == "boomerang":
        return frames + frames[-2:0:-1]
    if mode == "seamless":
        if close_loop is None:
            raise ValueError(
                "loop mode 'seamless' needs close_loop=..., the model's loop closer "
                "(spiritnet_tf.animate provides it)"
            )
        return list(close_loop(frames))
    raise ValueError(f"unknown loop mode {mode!r}; choose one of {', '.join(LOOP_MODES)}")


def _refuse_existing(path, overwrite):
    conflict = output_conflict(path)
    if overwrite or conflict is None:
        return
    raise FileExistsError(f"{path} {conflict}; pass overwrite=True (--overwrite) to replace it")


def _frame_files(folder):
    return sorted(f for f in os.listdir(folder) if _FRAME_FILE.match(f))


def output_conflict(path, *, folder=False):
    """What writing ``path`` would replace: None (nothing), or a phrase for a message.

    For a file output: ``"already exists"`` when something is there. For a folder of
    PNGs (``folder=True``): ``"already holds frame files (frame_*.png)"`` when it holds
    frames (other files in it are never touched). The one owner of the no-overwrite rule:
    the writers add "pass overwrite=True", the command line "pass --overwrite".

    Raises NotADirectoryError when a file stands where the folder should be and
    IsADirectoryError when a folder stands where the file should be.
    """
    path = os.path.normpath(os.fspath(path))
    if folder:
        if os.path.lexists(path) and not os.path.isdir(path):
            raise NotADirectoryError(f"{path} exists and is not a folder")
        if os.path.isdir(path) and _frame_files(path):
            return "already holds frame files (frame_*.png)"
        return None
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a folder, not a file")
    return "already exists" if os.path.lexists(path) else None


def check_output_parent(path):
    """Raises OSError with a clear message unless ``path`` can be created.

    Its nearest existing ancestor must be a writable folder (the missing folders in
    between are created by the writers): a file in the way gives NotADirectoryError
    naming it, a read-only folder PermissionError.
    """
    parent = os.path.dirname(os.path.abspath(os.fspath(path)))
    ancestor = parent
    while not os.path.lexists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise NotADirectoryError(
            f"{path}: cannot create it there, {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PermissionError(f"{path}: cannot write into {ancestor} (permission denied)")


def _umask():
    try:  # Linux: read it without changing it (os.umask would, for every thread)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_mode(folder=False):
    """The mode ``open()`` / ``os.mkdir`` would give a new file / folder under this
    process's umask: 0o666 & ~umask (files), 0o777 & ~umask (folders)."""
    return (0o777 if folder else 0o666) & ~_umask()


def temp_file_beside(path, suffix=""):
    """A new empty temporary file in the folder of ``path`` (created if missing), named
    ``.NAME.partial-XXXX<suffix>``, with `default_mode` (mkstemp makes it 0600);
    returns its path. Rename it over ``path`` when it is complete."""
    parent = os.path.dirname(os.path.abspath(os.fspath(path)))
    os.makedirs(parent, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{os.path.basename(os.path.normpath(path))}.partial-",
                                suffix=suffix, dir=parent)
    try:
        os.fchmod(fd, default_mode())
    finally:
        os.close(fd)
    return temp


def temp_folder_beside(path):
    """Like `temp_file_beside`, a temporary folder (mkdtemp makes it 0700)."""
    parent = os.path.dirname(os.path.abspath(os.fspath(path)))
    os.makedirs(parent, exist_ok=True)
    temp = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.normpath(path))}.partial-",
                            dir=parent)
    os.chmod(temp, default_mode(folder=True))
    return temp


@contextlib.contextmanager
def signals_held():
    """Holds SIGINT and SIGTERM back (delivered at the end) while an output is committed.

    Only in the main thread of a POSIX process; elsewhere a no-op.
    """
    held = {signal.SIGINT, signal.SIGTERM} if hasattr(signal, "SIGTERM") else set()
    if not held or not hasattr(signal, "pthread_sigmask") or (
            threading.current_thread() is not threading.main_thread()):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class AnimationWriter:
    """Streams frames to an animation file or a folder of PNGs, atomically.

    Use as a context manager::

        with AnimationWriter("out.gif", fps=8) as writer:
            for frame in frames:          # [H, W, 3] float in [0, 1] or uint8
                writer.append(frame)

    The output appears only when the ``with`` block ends without an exception; on an
    exception the temporary output is deleted and the target is left untouched. All
    frames must have the size of the first.

    Args:
      path: ``*.gif``, ``*.mp4``, ``*.webp``, ``*.MP.jpg`` (a Motion Photo: the first
        frame as the still, every frame in the appended MP4), ``*.jpg`` (a Live Photo:
        the first frame as this JPEG, every frame in `live_photo_video` beside it, one
        UUID in both; `spiritnet_tf.io.phone`), or a folder (no extension, or ending in
        ``/``), which receives ``frame_0000.png``, ``frame_0001.png``, ...
      fps: frames per second (GIF stores delays in 1/100 s, so it rounds).
      overwrite: replace an existing file; for a folder, allow one that already holds
        ``frame_*.png`` files (they are removed when the new frames are committed;
        other files in it are kept).

    Raises (at construction, before any work): ValueError for an unknown extension or a
    bad fps; FileExistsError naming the file when it exists and ``overwrite`` is False;
    NotADirectoryError / IsADirectoryError when a file stands where a folder should be
    or the other way round.
    """

    def __init__(self, path, *, fps=DEFAULT_FPS, overwrite=False):
        self.path = os.fspath(path)
        self.format = output_format(self.path)
        if not fps or not np.isfinite(fps) or fps <= 0 or fps > MAX_FPS:
            raise ValueError(f"fps must be a number in (0, {MAX_FPS:g}], got {fps!r}")
        self.fps = float(fps)
        self.overwrite = bool(overwrite)
        self.frames_written = 0
        self._target = os.path.normpath(self.path)
        self._temp = None
        self._encoder = None
        self._size = None
        self._still = None  # first frame of a phone format
        self.targets = [self._target]
        if self.format == "live-photo":
            self.targets.append(live_photo_video(self._target))
        self._check_target()

    def _check_target(self):
        folder = self.format == "folder"
        for target in self.targets:
            conflict = output_conflict(target, folder=folder)
            if conflict is not None and not self.overwrite:
                raise FileExistsError(
                    f"{target} {conflict}; pass overwrite=True (--overwrite) to replace "
                    + ("them" if folder else "it")
                )
        check_output_parent(self._target)

    def __enter__(self):
        if self.format == "folder":
            self._temp = temp_folder_beside(self._target)
        else:
            self._temp = temp_file_beside(
                self._target, suffix=_PHONE_VIDEO.get(self.format, self.format))
        return self

    def append(self, frame):
        """Writes one frame [H, W, 3] (float in [0, 1] or uint8)."""
        if self._temp is None:
            raise RuntimeError("AnimationWriter must be used as a context manager (with ...)")
        frame = to_uint8(frame, name=f"frame {self.frames_written}")
        if self._size is None:
            if self.format in _PHONE_VIDEO:
                phone.check_jpeg_size(*frame.shape[:2], self.path)
                self._still = frame
            self._size = frame.shape[:2]
            self._start()
        elif frame.shape[:2] != self._size:
            raise ValueError(
                f"frame {self.frames_written} is {frame.shape[1]}x{frame.shape[0]}, but the "
                f"animation is {self._size[1]}x{self._size[0]}; all frames must have one size"
            )
        if self.format == "folder":
            name = os.path.join(self._temp, FRAME_NAME.format(self.frames_written))
            Image.fromarray(frame).save(name, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        else:
            if self._codec_needs_even_sides():
                frame = _pad_to_even(frame)
            self._encoder.send(frame)
        self.frames_written += 1

    def _start(self):
        if self.format == "folder":
            return
        codec, pix_fmt, extra = _FFMPEG[self.format]
        extra = list(extra)
        if self.format == "live-photo":
            self.content_identifier = str(uuid.uuid4()).upper()
            extra += ["-movflags", "use_metadata_tags",
                      "-metadata", f"{phone.LIVE_PHOTO_KEY}={self.content_identifier}"]
        height, width = self._size
        if self._codec_needs_even_sides():
            height, width = height + height % 2, width + width % 2
        self._encoder = imageio_ffmpeg.write_frames(
            self._temp,
            (width, height),
            fps=self.fps,
            codec=codec,
            pix_fmt_out=pix_fmt,
            quality=None,
            macro_block_size=1,
            ffmpeg_log_level="error",
            output_params=extra,
        )
        self._encoder.send(None)  # start ffmpeg

    def _codec_needs_even_sides(self):  # H.264 in yuv420p: MP4 and the phone formats' video
        return _FFMPEG[self.format][0] == "libx264"

    def __exit__(self, exc_type, exc, tb):
        try:
            if self._encoder is not None:
                self._encoder.close()  # waits for ffmpeg to finish the file
                self._encoder = None
            if exc_type is None:
                if self.frames_written == 0:
                    raise ValueError(f"{self.path}: no frames were written")
                with signals_held():
                    self._commit()
        finally:
            self._discard_temp()
        return False

    def _commit(self):
        target = self._target
        if self.format == "folder":
            if not os.path.exists(target):
                os.rename(self._temp, target)
                return
            self._check_target()  # the folder may have changed while we worked
            for old in _frame_files(target):
                os.remove(os.path.join(target, old))
            for new in _frame_files(self._temp):
                os.replace(os.path.join(self._temp, new), os.path.join(target, new))
        else:
            if os.path.getsize(self._temp) == 0:
                raise OSError(f"{self.path}: the encoder produced an empty file")
            if self.format == "motion-photo":
                with open(self._temp, "rb") as f:
                    data = phone.motion_photo(self._still, f.read())
                with open(self._temp, "wb") as f:  # the temporary file: its mode is kept
                    f.write(data)
            elif self.format == "live-photo":
                still = temp_file_beside(self._target, suffix=".jpg")
                try:
                    with open(still, "wb") as f:
                        f.write(phone.live_photo_jpeg(self._still, self.content_identifier))
                    self._check_target()
                    os.replace(self._temp, self.targets[1])
                    os.replace(still, target)
                finally:
                    if os.path.lexists(still):
                        os.remove(still)
                return
            self._check_target()
            os.replace(self._temp, target)

    def _discard_temp(self):
        if self._temp is not None and os.path.lexists(self._temp):
            if os.path.isdir(self._temp):
                shutil.rmtree(self._temp, ignore_errors=True)
            else:
                os.remove(self._temp)
        self._temp = None


def _pad_to_even(frame):
    height, width = frame.shape[:2]
    if height % 2 == 0 and width % 2 == 0:
        return frame
    return np.ascontiguousarray(
        np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    )


def write_animation(frames, path, *, fps=DEFAULT_FPS, overwrite=False):
    """Writes frames (any iterable of [H, W, 3]) with `AnimationWriter`; returns the count."""
    with AnimationWriter(path, fps=fps, overwrite=overwrite) as writer:
        for frame in frames:
            writer.append(frame)
    return writer.frames_written


def write_image(image, path, *, overwrite=False):
    """Writes one picture [H, W, 3] (float in [0, 1] or uint8) as PNG, JPEG or WebP.

    Same rules as `AnimationWriter`: no overwrite without ``overwrite=True``, and
    written to a temporary file that is renamed over the target at the end.
    """
    path = os.fspath(path)
    extension = os.path.splitext(path)[1].lower()
    if extension not in _IMAGE_EXTENSIONS:
        raise ValueError(
            f"{path}: unknown image extension {extension!r}; supported: "
            + ", ".join(sorted(_IMAGE_EXTENSIONS))
        )
    _refuse_existing(path, overwrite)
    check_output_parent(path)
    pixels = to_uint8(image, name="image")
    temp = temp_file_beside(path, suffix=extension)
    try:
        Image.fromarray(pixels).save(temp, format=_IMAGE_EXTENSIONS[extension])
        _refuse_existing(path, overwrite)
        with signals_held():
            os.replace(temp, path)
    finally:
        if os.path.lexists(temp):
            os.remove(temp)
    return path


# ----------------------------------------------------------------------------- visualisations


def _colour_wheel():
    """The Middlebury flow colour wheel (Baker et al. 2011): 55 hues, [55, 3] in [0, 1].

    Red -> yellow (15 steps), yellow -> green (6), green -> cyan (4), cyan -> blue (11),
    blue -> magenta (13), magenta -> red (6), linearly interpolated.
    """
    corners = [(1, 0, 0), (1, 1, 0), (0, 1, 0), (0, 1, 1), (0, 0, 1), (1, 0, 1), (1, 0, 0)]
    steps = (15, 6, 4, 11, 13, 6)
    rows = []
    for n, start, end in zip(steps, corners[:-1], corners[1:]):
        t = np.arange(n)[:, None] / n
        rows.append((1 - t) * np.array(start) + t * np.array(end))
    return np.concatenate(rows).astype(np.float32)


def flow_to_rgb(flow, max_magnitude=None):
    """Colours a flow field [..., H, W, 2] (dx, dy in px) with the standard flow wheel.

    Hue is the direction of the vector *as given* (Middlebury convention: a vector
    pointing right, +x, is red; left is cyan/blue; down, +y, is orange-yellow). Our
    flows are backward (docs/design.md §2), so content moving right, whose flow points
    left, shows cyan/blue; pass ``-flow`` to colour the motion instead. Saturation is
    |flow| / ``max_magnitude`` (default: the largest |flow| in the array, so one call
    on a whole sequence gives comparable colours); zero flow is white, and vectors
    longer than ``max_magnitude`` are drawn darker (x 0.75).

    Returns float32 [..., H, W, 3] in [0, 1].
    """
    flow = np.asarray(flow, dtype=np.float32)
    if flow.ndim < 3 or flow.shape[-1] != 2:
        raise ValueError(f"flow must be [..., H, W, 2], got shape {flow.shape}")
    if not np.all(np.isfinite(flow)):
        raise ValueError("flow contains NaN or infinite values")
    u, v = flow[..., 0], flow[..., 1]
    radius = np.hypot(u, v)
    scale = float(radius.max()) if max_magnitude is None else float(max_magnitude)
    radius = radius / (scale if scale > 0 else 1.0)
    wheel = _colour_wheel()
    n = len(wheel)
    position = (np.arctan2(-v, -u) / np.pi + 1) / 2 * (n - 1)  # in [0, n-1]
    k0 = np.floor(position).astype(np.int64)
    k1 = (k0 + 1) % n
    frac = (position - k0)[..., None]
    colour = (1 - frac) * wheel[k0] + frac * wheel[k1]
    r = radius[..., None]
    colour = np.where(r <= 1, 1 - r * (1 - colour), colour * 0.75)
    return colour.astype(np.float32)


def depth_to_rgb(z):
    """Colours inverse depth z [H, W] or [H, W, 1] in (0, 1] with the inferno map.

    Near (z = 1) is bright yellow, far (z -> 0) is black-purple. Returns float32
    [H, W, 3] in [0, 1].
    """
    z = np.asarray(z, dtype=np.float32)
    if z.ndim == 3 and z.shape[-1] == 1:
        z = z[..., 0]
    if z.ndim != 2:
        raise ValueError(f"z must be [H, W] or [H, W, 1], got shape {z.shape}")
    if not np.all(np.isfinite(z)):
        raise ValueError("z contains NaN or infinite values")
    levels = np.round(np.clip(z, 0, 1) * 255).astype(np.uint8)
    bgr = cv2.applyColorMap(levels, cv2.COLORMAP_INFERNO)
    return bgr[..., ::-1].astype(np.float32) / 255.0


def contact_sheet(frames, columns=4, width=300):
    """uint8 frames [N, H, W, 3] -> one uint8 sheet, ``columns`` per row, each ``width``
    wide (a short row is padded with white)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[0] == 0 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [N, H, W, 3] with N >= 1, got shape {frames.shape}")
    height = max(1, round(frames.shape[1] * width / frames.shape[2]))
    tiles = [cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in frames]
    tiles += [np.full_like(tiles[0], 255)] * (-len(tiles) % columns)
    rows = [np.concatenate(tiles[i:i + columns], axis=1) for i in range(0, len(tiles), columns)]
    return np.concatenate(rows, axis=0)
