"""Data sources of an experiment -> tf.data, and a record of every source and clip used.

Each `SourceConfig` becomes a dataset of septuplet dicts (``frames`` uint8 [7,H,W,3],
``flows`` [6,H,W,2] backward F_{k+1->k}, optional ``depth`` z [7,H,W,1]) through the
loaders of `spiritnet_tf.data`; `septuplet_dataset` concatenates the sources of a
list, and `training_samples` / `evaluation_samples` turn that into the model's
``(inputs, targets)``.
"""

import glob
import os

import tensorflow as tf

from spiritnet_tf import data
from spiritnet_tf.limits import training_frames
from spiritnet_tf.config import build_config
from spiritnet_tf.training.config import SourceConfig

__all__ = ["load_source", "septuplet_dataset", "training_samples", "evaluation_samples",
           "to_generation_mode", "parse_source_spec"]

_KEYS = ("id", "frames", "flows", "depth")


def _tfrecord_files(path):
    if os.path.isdir(path):
        files = sorted(glob.glob(os.path.join(path, "*.tfrecord")))
    elif any(c in path for c in "*?["):
        files = sorted(glob.glob(path))
    elif os.path.isfile(path):
        files = [path]
    else:
        raise FileNotFoundError(f"TFRecord source {path!r} does not exist")
    if not files:
        raise FileNotFoundError(f"no .tfrecord files in {path!r}")
    return files


def _record_ids(files):
    """The ``id`` of every record in the files (reads only that feature)."""
    spec = {"id": tf.io.FixedLenFeature([], tf.string)}
    ds = tf.data.TFRecordDataset(files).map(lambda r: tf.io.parse_single_example(r, spec)["id"])
    return [i.decode() for i in ds.as_numpy_iterator()]


def load_source(source, progress=True, shuffle_files=None):
    """One source -> (dataset of septuplet dicts, record dict for the manifest).

    The record names the source (type, paths, options) and lists its ``clips``:
    the sample ids (synthetic scenes, video cuts ``file#k``, record ids) or, for
    Vimeo-90K, the split and its size. ``shuffle_files``: a seed reads the files of a
    videos or tfrecord source in a new order on each pass, interleaved
    (`spiritnet_tf.data.read_septuplets`; not with ``take``, whose first samples would
    then change).
    """
    if isinstance(source, dict):
        source = SourceConfig(**source)
    source.validate("source")
    record = {"type": source.type}
    if source.type == "synthetic":
        ds = data.synthetic_dataset(source.count, source.height, source.width, seed=source.seed)
        count = source.count if source.take is None else min(source.take, source.count)
        record.update(count=source.count, seed=source.seed, height=source.height,
                      width=source.width,
                      clips=[f"synthetic/{source.seed}/{i}" for i in range(count)])
        # Scenes are rendered in Python: render each once, then replay from memory.
        ds = ds.take(count).cache()
    elif source.type in ("videos", "tfrecord"):
        if source.type == "videos":
            cache_dir = source.cache_dir or os.path.join(source.path, ".spiritnet-cache")
            sources = data.find_sources(source.path)
            sources = [s for s in sources if os.path.abspath(cache_dir) not in os.path.abspath(s)]
            if not sources:
                raise FileNotFoundError(f"no videos or frame folders in {source.path!r}")
            files = data.cache_videos(sources, cache_dir, teacher=source.teacher,
                                      size=(source.height, source.width),
                                      frame_step=source.frame_step, stride=source.stride,
                                      progress=progress)
            record.update(path=source.path, videos=sources, cache_dir=cache_dir,
                          teacher=source.teacher, height=source.height, width=source.width,
                          frame_step=source.frame_step, stride=source.stride)
            files = [f for f in files if os.path.getsize(f) > 0]
        else:
            files = _tfrecord_files(source.path)
            record.update(path=source.path, with_depth=source.with_depth)
        record["files"] = files
        ids = _record_ids(files)
        if not ids:
            raise ValueError(f"{source.type} source {source.path!r} holds no septuplets")
        ds = data.read_septuplets(files, with_depth=source.with_depth, shuffle_files=(
            shuffle_files if source.take is None else None))
        if source.take is not None:
            ids = ids[:source.take]
            ds = ds.take(source.take)
        record["clips"] = ids
    else:  # vimeo
        ds = data.load_vimeo(source.split, data_dir=source.data_dir, config=source.vimeo_config)
        if source.take is not None:
            ds = ds.take(source.take)
        record.update(data_dir=source.data_dir, split=source.split, config=source.vimeo_config,
                      clips=f"vimeo90k_septuplet/{source.vimeo_config} split {source.split!r}"
                      + ("" if source.take is None else f", first {source.take}"))
    return ds, record


def _with_zero_depth(sample):
    frames = sample["frames"]
    return {**sample, "depth": tf.zeros_like(frames[..., :1], tf.float32)}


def _source_size(ds, record):
    if isinstance(record.get("clips"), list):
        return len(record["clips"])
    size = int(ds.cardinality())
    if size < 0:
        raise ValueError(f"mix_sources needs the size of every source; the {record['type']} "
                         "source's is unknown")
    return size


def septuplet_dataset(sources, progress=True, mix_seed=None):
    """Several sources -> one dataset and their records.

    ``mix_seed`` None: the sources one after another, in order (one pass). A seed: an
    endless stream in which each sample comes from a source drawn at random in
    proportion to its size (`tf.data.Dataset.sample_from_datasets`), every source
    repeating and read in a new, interleaved order of its files on each pass, so that
    every stretch of a run sees all sources (a shuffle buffer smaller than the data
    cannot do that for sources one after another: the run's last epochs would see
    mostly the last sources).

    Sizes may differ (crop them). When some sources have depth and others not, the
    others get all-zero depth maps (z = 0: no ground truth, ignored by the depth
    loss), so a mixed batch still supervises the depth net on the samples that have it.
    """
    loaded = [load_source(s, progress, shuffle_files=mix_seed) for s in sources]
    if not loaded:
        raise ValueError("no data sources given")
    # Every key all sources have, and depth when any has it.
    keys = [k for k in _KEYS
            if (any if k == "depth" else all)(k in ds.element_spec for ds, _ in loaded)]
    parts = []
    for ds, _ in loaded:
        if "depth" in keys and "depth" not in ds.element_spec:
            ds = ds.map(_with_zero_depth)
        parts.append(ds.map(lambda s: {k: s[k] for k in keys}))
    records = [r for _, r in loaded]
    if mix_seed is None:
        combined = parts[0]
        for ds in parts[1:]:
            combined = combined.concatenate(ds)
        return combined, records
    sizes = [_source_size(ds, record) for ds, record in loaded]
    weights = [n / sum(sizes) for n in sizes]
    return tf.data.Dataset.sample_from_datasets(
        [ds.repeat() for ds in parts], weights=weights, seed=mix_seed), records


def _limit_frames(num_frames):
    def limit(inputs, targets):
        return inputs, {k: v[:, :num_frames] for k, v in targets.items()}
    return limit


def training_samples(septuplets, config, training=True):
    """(inputs, targets) batches in prediction mode for `keras.Model.fit`.

    Training samples repeat forever with random crops and flips; validation
    samples (``training=False``) repeat too (Keras draws ``validation_steps`` per
    epoch) with a fixed crop position per sample and no flips. A model with
    ``flow_history`` starts one frame later (`spiritnet_tf.data.to_prediction_mode`),
    leaving 4 targets.
    """
    history = config.model_config().flow_history
    ds = data.training_pipeline(
        septuplets, config.batch_size, crop_size=tuple(config.crop) if config.crop else None,
        flip=config.flip and training, shuffle=config.shuffle if training else 0,
        repeat=True, seed=config.seed if training else config.seed + 1, history=history,
    )
    if config.num_frames < training_frames(history):
        ds = ds.map(_limit_frames(config.num_frames))
    return ds


def to_generation_mode(sample):
    """Septuplet dict -> (inputs, targets) in generation mode (docs/design.md §4).

    state0 is im1 (its flow0 comes from DAFR at evaluation time; ``inputs["flow0"]``
    carries the teacher's F_{2->1} only for the record); targets are im2..im7 and
    the teacher flows F_{2->1}..F_{7->6}.
    """
    frames = tf.image.convert_image_dtype(sample["frames"], tf.float32)
    flows = tf.cast(sample["flows"], tf.float32)
    return {"image": frames[0], "flow0": flows[0]}, {"frames": frames[1:], "flows": flows}


def evaluation_samples(septuplets, mode, batch_size=4, crop=None, seed=0, history=False):
    """One pass of (inputs, targets) batches for `spiritnet_tf.evaluation.evaluate`.

    prediction: state0 = (im2, F_{2->1}), 5 targets (with ``history``: state0 = (im3,
    F_{3->2}), "flow_before" F_{2->1}, 4 targets); generation: state0 = im1, 6
    targets. ``crop`` (H, W): one crop position per sample, drawn from ``seed``.
    """
    if mode == "prediction":
        return data.training_pipeline(septuplets, batch_size, crop_size=crop, flip=False,
                                      shuffle=0, repeat=False, seed=seed, deterministic=True,
                                      drop_remainder=False, history=history)
    ds = septuplets.map(lambda s: {k: s[k] for k in ("frames", "flows")}).enumerate()
    ds = ds.map(lambda i, s: data.random_crop_flip(
        s, tf.stack([tf.cast(seed, tf.int64), i]), crop, flip=False))
    return ds.map(to_generation_mode).batch(batch_size).prefetch(tf.data.AUTOTUNE)


def parse_source_spec(spec, *, height=256, width=448, seed=0, cache_dir=None,
                      split="test", with_depth=None, take=None):
    """A command-line data source -> `SourceConfig`.

    ``spec`` is one of: ``synthetic:N`` (N scenes rendered with ``seed`` at
    ``height`` x ``width``), ``vimeo:DATA_DIR`` (the TFDS dataset, ``split``), a
    ``.tfrecord`` file, a folder of them or a glob, or a folder of videos / frame
    folders (cut at ``height`` x ``width``, cached in ``cache_dir``).
    """
    common = dict(seed=seed, height=height, width=width, take=take)
    if spec.startswith("synthetic:"):
        try:
            count = int(spec.split(":", 1)[1])
        except ValueError:
            raise ValueError(f"--data {spec!r}: expected synthetic:N with N a number") from None
        source = build_config(SourceConfig, "--data", "synthetic", count=count, **common)
    elif spec.startswith("vimeo:"):
        source = build_config(SourceConfig, "--data", "vimeo", data_dir=spec.split(":", 1)[1],
                              split=split, take=take)
    elif spec.endswith(".tfrecord") or any(c in spec for c in "*?[") or (
            os.path.isdir(spec) and glob.glob(os.path.join(spec, "*.tfrecord"))):
        depth = with_depth
        if depth is None:  # synthetic records carry depth; other caches do not
            depth = all(os.path.basename(f).startswith("synthetic-") for f in _tfrecord_files(spec))
        source = build_config(SourceConfig, "--data", "tfrecord", path=spec, with_depth=depth,
                              take=take)
    elif os.path.isdir(spec):
        source = build_config(SourceConfig, "--data", "videos", path=spec, cache_dir=cache_dir,
                              **common)
    else:
        raise FileNotFoundError(
            f"--data {spec!r}: not synthetic:N, vimeo:DIR, a .tfrecord file or folder, or a "
            "folder of videos")
    return source
