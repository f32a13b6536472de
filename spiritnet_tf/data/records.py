"""The septuplet TFRecord format shared by the video cache and the synthetic source.

A *septuplet* is a dict (NumPy on the writing side, tensors on the reading side):

* ``"id"``: string naming the sample.
* ``"frames"``: uint8 [7, H, W, 3], frames im1..im7.
* ``"flows"``: [6, H, W, 2] teacher (or exact) backward flows F_{k+1->k}, k = 1..6
  (entry 0 is F_{2->1}); stored as float16, read back as float32.
* ``"depth"`` (only where the source has exact depth): float32 [7, H, W, 1],
  inverse depth z of each frame as in docs/design.md §2.

Each record is a ``tf.train.Example`` holding the size and the raw bytes (frames
as they are; flows and depth zlib-compressed, which halves a 256x448 record), so
that files stream through tf.data with no Python in the loop.
"""

import zlib

import numpy as np
import tensorflow as tf

__all__ = ["serialize_septuplet", "write_septuplets", "read_septuplets", "NUM_FRAMES"]

NUM_FRAMES = 7


def _bytes(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int(value):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def serialize_septuplet(sample):
    """Serialises one septuplet dict (see module docstring) to ``tf.train.Example`` bytes."""
    frames = np.asarray(sample["frames"])
    flows = np.asarray(sample["flows"])
    n, h, w, c = frames.shape
    if frames.dtype != np.uint8 or (n, c) != (NUM_FRAMES, 3):
        raise ValueError(f"frames must be uint8 [7, H, W, 3], got {frames.dtype} {frames.shape}")
    if flows.shape != (NUM_FRAMES - 1, h, w, 2):
        raise ValueError(f"flows must be [6, {h}, {w}, 2], got {flows.shape}")
    feature = {
        "id": _bytes(str(sample.get("id", "")).encode()),
        "height": _int(h),
        "width": _int(w),
        "frames": _bytes(frames.tobytes()),
        "flows": _bytes(zlib.compress(flows.astype(np.float16).tobytes(), 1)),
    }
    if sample.get("depth") is not None:
        depth = np.asarray(sample["depth"], np.float32)
        if depth.shape != (NUM_FRAMES, h, w, 1):
            raise ValueError(f"depth must be [7, {h}, {w}, 1], got {depth.shape}")
        feature["depth"] = _bytes(zlib.compress(depth.tobytes(), 1))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_septuplets(path, samples):
    """Writes septuplet dicts to one TFRecord file; returns how many were written."""
    count = 0
    with tf.io.TFRecordWriter(str(path)) as writer:
        for sample in samples:
            writer.write(serialize_septuplet(sample))
            count += 1
    return count


def read_septuplets(files, with_depth=False, num_parallel_reads=None, shuffle_files=None):
    """A tf.data.Dataset of septuplet dicts read from TFRecord files written here.

    Args:
      files: a path or list of paths.
      with_depth: read the ``"depth"`` feature (every record must have it).
      shuffle_files: None reads the files one after another, in the order given; a seed
        reads them in a new random order on each pass, up to 8 at a time, one record from
        each in turn (consecutive septuplets then come from different clips).
    """
    if isinstance(files, (str, bytes)) or hasattr(files, "__fspath__"):
        files = [files]
    files = [str(f) for f in files]
    if not files:
        raise ValueError("no TFRecord files given")
    spec = {
        "id": tf.io.FixedLenFeature([], tf.string),
        "height": tf.io.FixedLenFeature([], tf.int64),
        "width": tf.io.FixedLenFeature([], tf.int64),
        "frames": tf.io.FixedLenFeature([], tf.string),
        "flows": tf.io.FixedLenFeature([], tf.string),
    }
    if with_depth:
        spec["depth"] = tf.io.FixedLenFeature([], tf.string)

    def parse(record):
        ex = tf.io.parse_single_example(record, spec)
        h, w = ex["height"], ex["width"]

        def raw(key, dtype, shape, compressed=True):
            data = tf.io.decode_compressed(ex[key], "ZLIB") if compressed else ex[key]
            return tf.reshape(tf.io.decode_raw(data, dtype), shape)

        out = {
            "id": ex["id"],
            "frames": raw("frames", tf.uint8, [NUM_FRAMES, h, w, 3], compressed=False),
            "flows": tf.cast(raw("flows", tf.float16, [NUM_FRAMES - 1, h, w, 2]), tf.float32),
        }
        if with_depth:
            out["depth"] = raw("depth", tf.float32, [NUM_FRAMES, h, w, 1])
        return out

    if shuffle_files is None:
        ds = tf.data.TFRecordDataset(files, num_parallel_reads=num_parallel_reads)
    else:
        ds = tf.data.Dataset.from_tensor_slices(files).shuffle(
            len(files), seed=shuffle_files, reshuffle_each_iteration=True).interleave(
            tf.data.TFRecordDataset, cycle_length=min(len(files), 8), block_length=1)
    return ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
