"""Any folder of videos or frame folders, cut into septuplets and cached as TFRecords.

Sources: video files (``.mp4``, ``.mov``, ``.gif``, and other containers ffmpeg
reads: ``.avi``, ``.mkv``, ``.webm``), read with imageio-ffmpeg (GIFs with
imageio), and folders of numbered frames (``.png``/``.jpg``, sorted by name).
Each source becomes consecutive septuplets (7 frames, every ``frame_step``-th
frame, a new septuplet every ``stride`` frames), resized to fill ``size`` and
centre-cropped, with teacher flows computed once. The cache holds one TFRecord
file per source (format: :mod:`spiritnet_tf.data.records`); a file is reused
while the source, options and teacher are unchanged.
"""

import hashlib
import json
import logging
import os

import numpy as np

from spiritnet_tf.data.images import CorruptInputError, handle_bad_input, read_rgb
from spiritnet_tf.data.records import NUM_FRAMES, write_septuplets
from spiritnet_tf.data.teachers import get_teacher

__all__ = ["find_sources", "read_frames", "find_shots", "video_septuplets", "cache_videos",
           "VIDEO_EXTENSIONS", "IMAGE_EXTENSIONS"]

VIDEO_EXTENSIONS = (".mp4", ".mov", ".gif", ".avi", ".mkv", ".webm", ".m4v")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
_log = logging.getLogger("spiritnet_tf.data")


def find_sources(directory):
    """Video files and frame folders under ``directory`` (recursive), sorted.

    A folder counts as a frame folder when it directly holds image files.
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"video directory {directory!r} does not exist")
    sources = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        if any(f.lower().endswith(IMAGE_EXTENSIONS) for f in files):
            sources.append(root)
        sources += [os.path.join(root, f) for f in sorted(files)
                    if f.lower().endswith(VIDEO_EXTENSIONS)]
    return sorted(sources)


def _to_rgb(frame, path):
    frame = np.asarray(frame)
    if frame.ndim == 2:
        frame = np.repeat(frame[..., None], 3, -1)
    if frame.ndim != 3 or frame.shape[-1] not in (3, 4) or frame.dtype != np.uint8:
        raise CorruptInputError(path, f"unexpected frame {frame.dtype} {frame.shape}")
    return np.ascontiguousarray(frame[..., :3])


def read_frames(source):
    """Yields the frames of a video file or frame folder as uint8 RGB [H, W, 3].

    Raises :class:`CorruptInputError` naming the file for anything unreadable
    (including a video that breaks off part-way: ffmpeg's error is reported).
    """
    source = os.fspath(source)
    if os.path.isdir(source):
        for name in sorted(os.listdir(source)):
            if name.lower().endswith(IMAGE_EXTENSIONS):
                yield read_rgb(os.path.join(source, name))
        return
    if not os.path.isfile(source):
        raise CorruptInputError(source, "no such file")
    if source.lower().endswith(".gif"):
        import imageio.v3 as iio

        try:
            frames = list(iio.imiter(source))
        except Exception as e:
            raise CorruptInputError(source, f"{type(e).__name__}: {e}") from e
        for frame in frames:
            yield _to_rgb(frame, source)
        return
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(source, pix_fmt="rgb24", bits_per_pixel=24)
    count = 0
    try:
        meta = next(reader)
        width, height = meta["size"]
        for data in reader:
            count += 1
            yield np.frombuffer(data, np.uint8).reshape(height, width, 3)
    except (OSError, RuntimeError, StopIteration, KeyError, ValueError) as e:
        raise CorruptInputError(source, f"ffmpeg could not decode it: {_ffmpeg_reason(e)}") from e
    finally:
        reader.close()
    # A file cut short after its header decodes without an ffmpeg error: compare the
    # frames decoded with the duration the header announces.
    expected = float(meta.get("duration") or 0) * float(meta.get("fps") or 0)
    if np.isfinite(expected) and count < expected - max(2.0, 0.05 * expected):
        raise CorruptInputError(
            source, f"truncated: decoded {count} frames, the header announces about "
            f"{expected:.0f}")


def find_shots(thumbnails, *, min_jump=12.0, ratio=3.0, window=12, min_length=1):
    """Cuts between shots of a film from small grey thumbnails ``[N, h, w]`` (0-255).

    Frame t starts a new shot when its mean absolute difference from frame t - 1 is at
    least ``min_jump`` grey levels and ``ratio`` times the median difference of its
    ``window`` neighbours on each side (steady motion changes every frame a little; a
    cut changes one frame a lot). Returns ``[(first, last), ...]``, inclusive frame
    ranges of the shots at least ``min_length`` frames long, in order.
    """
    t = np.asarray(thumbnails, np.float32)
    if t.ndim != 3 or len(t) == 0:
        raise ValueError(f"thumbnails must be [N, h, w] with N >= 1, got shape {t.shape}")
    jumps = np.concatenate([[0.0], np.abs(np.diff(t, axis=0)).mean(axis=(1, 2))])
    starts = [0]
    for i in range(1, len(t)):
        around = np.concatenate([jumps[max(1, i - window):i], jumps[i + 1:i + 1 + window]])
        local = np.median(around) if len(around) else 0.0
        if jumps[i] >= min_jump and jumps[i] >= ratio * local:
            starts.append(i)
    ends = starts[1:] + [len(t)]
    return [(a, b - 1) for a, b in zip(starts, ends) if b - a >= min_length]


def _ffmpeg_reason(error):
    """The last lines of ffmpeg's message (its banner and build configuration dropped)."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    return " | ".join(lines[:1] + lines[-2:]) if len(lines) > 3 else " | ".join(lines)


def _fit(frame, size):
    """Resizes to cover ``size`` (H, W) keeping the aspect ratio, then centre-crops."""
    import cv2

    if size is None:
        return frame
    th, tw = size
    h, w = frame.shape[:2]
    scale = max(th / h, tw / w)
    nh, nw = max(th, round(h * scale)), max(tw, round(w * scale))
    if (nh, nw) != (h, w):
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        frame = cv2.resize(frame, (nw, nh), interpolation=interp)
    y, x = (nh - th) // 2, (nw - tw) // 2
    return frame[y:y + th, x:x + tw]


def video_septuplets(source, size=(256, 448), frame_step=1, stride=NUM_FRAMES):
    """Yields uint8 [7, H, W, 3] septuplets cut from one source.

    Args:
      source: video file or frame folder.
      size: (H, W) after resize-and-centre-crop, or None to keep the native size
        (then every frame must have the same size).
      frame_step: use every ``frame_step``-th frame (1 = all).
      stride: distance in used frames between the starts of two septuplets
        (7 = non-overlapping).
    """
    if frame_step < 1 or stride < 1:
        raise ValueError(f"frame_step and stride must be >= 1, got {frame_step}, {stride}")
    window = []
    skip = 0  # used frames still to drop before the next septuplet starts
    for index, frame in enumerate(read_frames(source)):
        if index % frame_step:
            continue
        if skip:
            skip -= 1
            continue
        frame = _fit(frame, size)
        if window and frame.shape != window[0].shape:
            raise CorruptInputError(source, f"frame {index} has size {frame.shape[:2]}, "
                                    f"earlier frames {window[0].shape[:2]}")
        window.append(frame)
        if len(window) == NUM_FRAMES:
            yield np.stack(window)
            window = window[stride:] if stride < NUM_FRAMES else []
            skip = max(0, stride - NUM_FRAMES)


def _cache_key(source, teacher_name, size, frame_step, stride):
    stat = os.stat(source)
    if os.path.isdir(source):  # a frame folder changes when any of its files does
        stamps = [(e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in os.scandir(source)]
        content = sorted(stamps)
    else:
        content = (stat.st_size, stat.st_mtime_ns)
    blob = json.dumps([os.path.abspath(source), content, teacher_name, size, frame_step, stride],
                      default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def cache_videos(sources, cache_dir, teacher="dis", size=(256, 448), frame_step=1,
                 stride=NUM_FRAMES, on_error="fail", progress=True):
    """Cuts sources into septuplets with teacher flows and caches them as TFRecords.

    Args:
      sources: a directory (searched with :func:`find_sources`) or a list of
        video files / frame folders.
      cache_dir: where the ``*.tfrecord`` files go (created if needed).
      teacher: a :class:`~spiritnet_tf.data.teachers.FlowTeacher` or its name.
      size, frame_step, stride: as in :func:`video_septuplets`.
      on_error: "fail" raises :class:`CorruptInputError` naming the bad file;
        "skip" logs it and goes on.
      progress: show a progress bar.
    Returns:
      list of TFRecord paths, one per usable source (sources too short for one
      septuplet produce none); read them with
      :func:`spiritnet_tf.data.records.read_septuplets`.
    """
    from tqdm.auto import tqdm

    if isinstance(sources, (str, os.PathLike)):
        sources = find_sources(sources)
    teacher = get_teacher(teacher)
    size = tuple(size) if size is not None else None
    os.makedirs(cache_dir, exist_ok=True)
    outputs = []
    bar = tqdm(sources, desc="videos", unit="source", disable=not progress)
    for source in bar:
        stem = os.path.splitext(os.path.basename(os.path.normpath(source)))[0]
        try:
            key = _cache_key(source, teacher.name, size, frame_step, stride)
        except OSError as e:
            handle_bad_input(CorruptInputError(source, e), on_error)
            continue
        path = os.path.join(cache_dir, f"{stem}-{key}.tfrecord")
        if not os.path.exists(path):
            tmp = path + ".partial"
            samples = (
                {"id": f"{source}#{i}", "frames": clip, "flows": teacher.sequence_flows(clip)}
                for i, clip in enumerate(video_septuplets(source, size, frame_step, stride))
            )
            try:
                count = write_septuplets(tmp, samples)
            except CorruptInputError as e:
                os.remove(tmp)
                handle_bad_input(e, on_error)
                continue
            os.replace(tmp, path)
            bar.set_postfix_str(f"{stem}: {count} septuplets")
            if count == 0:
                _log.warning("%s has fewer than %d frames; no septuplets", source, NUM_FRAMES)
        outputs.append(path)
    return outputs
