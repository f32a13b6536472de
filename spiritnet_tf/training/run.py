"""The training driver behind ``spiritnet train`` and the model evaluation behind ``evaluate``.

A *run directory* holds one experiment::

    config.json            the checked experiment (paths resolved); written first, once
                           the folder, the config and the data sources have been checked
    logs/train, logs/validation   TensorBoard scalars: one per loss term (epoch_loss,
                           epoch_flow, epoch_pixel, epoch_sharpness, epoch_style, epoch_tv,
                           epoch_depth)
    logs/preview           image summaries and animated previews (PreviewCallback)
    previews/epoch-NNN.gif the same animations as files
    checkpoints/epoch-NNN.weights.h5   ModelCheckpoint, every epoch
    backup/                BackupAndRestore state (weights + optimizers + epoch)
    history.csv            every epoch's losses (appended across resumes)
    depth_pretrained.weights.h5, depth_pretraining.json   the depth pre-training
                           stage's weights and loss summary (when configured)
    model.weights.h5, model.keras      the final model (no optimizer state)
    evaluation/            JSON, Markdown and PNG reports (when configured)
    manifest.json          written last: the run is complete

Rerunning ``spiritnet train`` with the same config and ``--out`` resumes an
interrupted run from its last finished epoch (the backup holds the weights, both
optimizers and the epoch counter), and the training data continues where it stopped
(`resumed_data`: the batches the finished epochs drew are skipped, so a resumed run sees
the batches an uninterrupted one would, not the first epochs' again). A finished run, a
run of another config, or a folder that is not a run directory is never replaced without
``--overwrite``.
"""

import dataclasses
import datetime
import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf

from spiritnet_tf.config import REPO
from spiritnet_tf.training.callbacks import PreviewCallback
from spiritnet_tf.training.config import STRATEGIES, TrainConfig
from spiritnet_tf.training.data import evaluation_samples, septuplet_dataset, training_samples

__all__ = ["train", "evaluate_model", "evaluate_weights", "make_strategy", "STRATEGIES",
           "check_run_dir", "prepare_run_dir", "load_model", "repository_relative", "portable_json",
           "write_portable_json"]

# The checkout this package runs from: manifests record paths inside it relative to it.
MANIFEST = "manifest.json"
CONFIG = "config.json"
DEPTH_WEIGHTS = "depth_pretrained.weights.h5"
DEPTH_LOG = "depth_pretraining.json"


def repository_relative(value, root=None):
    """``value`` (a JSON-able structure) with every string that is an absolute path inside
    ``root`` (the repository) rewritten relative to it, e.g. ``/x/repo/data/a.mp4#3`` ->
    ``data/a.mp4#3``; other values, and paths outside ``root``, as they are. ``root``
    defaults to `REPO`, this checkout.

    Run manifests and the bundled ``MANIFEST.json`` go through it, so that they read the
    same on every machine (the data folders of a run are ``data/...``, not where the
    checkout happened to be)."""
    root = REPO if root is None else root
    if isinstance(value, dict):
        return {k: repository_relative(v, root) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [repository_relative(v, root) for v in value]
    if isinstance(value, str) and os.path.isabs(value):
        for base in dict.fromkeys((os.path.abspath(root), os.path.realpath(root))):
            if value == base:
                return "."
            if value.startswith(base + os.sep):
                return value[len(base) + len(os.sep):]
    return value


def portable_json(value):
    """``value`` as a JSON file holds it (tuples as lists, other objects as their ``str``),
    with `repository_relative` paths: what run manifests, the bundled ``MANIFEST.json`` and
    the gate's figures are written as, so that they read the same on every machine."""
    return repository_relative(json.loads(json.dumps(value, default=str)))


def write_portable_json(path, value):
    """Writes `portable_json` of ``value`` to ``path`` (indented, a final newline) through a
    ``.partial`` file renamed over it, so that a reader never sees half a file; returns
    what was written. The one writer of run manifests, the bundled ``MANIFEST.json``, the
    gate's figures and a joined ensemble's manifest."""
    value = portable_json(value)
    with open(path + ".partial", "w") as f:
        json.dump(value, f, indent=2)
        f.write("\n")
    os.replace(path + ".partial", path)
    return value


def make_strategy(name):
    """A `tf.distribute.Strategy` by name (docs/design.md §8).

    default: the default strategy (one device); mirrored: `MirroredStrategy` over all
    local GPUs (or the CPU); multiworker: `MultiWorkerMirroredStrategy`, the cluster
    read from the ``TF_CONFIG`` environment variable.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            print("spiritnet train: TF_CONFIG is not set; multiworker runs as a single worker",
                  file=sys.stderr)
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")


def _is_chief(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker" and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict())


def check_run_dir(out_dir, config, overwrite=False):
    """What `prepare_run_dir` would do, without writing: ``"new"``, ``"resume"`` or
    ``"replace"`` (an existing run, with ``overwrite``).

    Raises ValueError when ``out_dir`` holds a finished run, a run of a different
    config, or files that are not a run (unless ``overwrite``; a folder that is not
    a run directory is never deleted); OSError when it cannot be created (a file in
    the way, no permission).
    """
    from spiritnet_tf.io.writers import check_output_parent

    config_path = os.path.join(out_dir, CONFIG)
    if os.path.lexists(out_dir) and not os.path.isdir(out_dir):
        raise NotADirectoryError(f"--out {out_dir}: exists and is not a folder")
    check_output_parent(out_dir)
    if not (os.path.isdir(out_dir) and os.listdir(out_dir)):
        return "new"
    if not os.path.exists(config_path):
        raise ValueError(
            f"{out_dir!r} exists and is not a spiritnet run directory (no {CONFIG}); "
            "choose another --out (it is not deleted, even with --overwrite)")
    with open(config_path) as f:
        previous = json.load(f)
    if overwrite:
        return "replace"
    if os.path.exists(os.path.join(out_dir, MANIFEST)):
        raise ValueError(f"{out_dir!r} holds a finished run; pass --overwrite to replace it "
                         "or choose another --out")
    if previous != json.loads(json.dumps(config.to_dict())):
        raise ValueError(
            f"{out_dir!r} holds an unfinished run of a different config; pass --overwrite "
            "to start over or rerun with the config it was started with")
    return "resume"


def completed_epochs(out_dir):
    """The epochs an interrupted run in ``out_dir`` finished (its BackupAndRestore
    state), 0 when it has none."""
    meta = os.path.join(out_dir, "backup", "training_metadata.json")
    if not os.path.exists(meta):
        return 0
    with open(meta) as f:
        return int(json.load(f)["epoch"])


def resumed_data(dataset, epochs_done, steps_per_epoch):
    """``dataset`` (the training batches, drawn from the config's seed) without the
    ``epochs_done * steps_per_epoch`` batches that the finished epochs drew."""
    return dataset.skip(epochs_done * steps_per_epoch) if epochs_done else dataset


def prepare_run_dir(out_dir, config, overwrite=False):
    """Creates or reopens a run directory; returns True when it resumes a run.

    Raises as `check_run_dir` does (which checks, writing nothing).
    """
    config_path = os.path.join(out_dir, CONFIG)
    wanted = json.loads(json.dumps(config.to_dict()))  # as stored: tuples become lists
    action = check_run_dir(out_dir, config, overwrite)
    if action == "resume":
        return True
    if action == "replace":
        shutil.rmtree(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    with open(config_path, "w") as f:
        json.dump(wanted, f, indent=2)
        f.write("\n")
    return False


def _git_revision():
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        rev = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _versions():
    import spiritnet_tf

    return {"spiritnet_tf": spiritnet_tf.__version__, "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": np.__version__,
            "python": sys.version.split()[0]}


def load_model(weights=None, preset="small"):
    """The model to evaluate.

    ``weights``: a ``.keras`` file (loaded with ``safe_mode=True``); a ``.weights.h5``
    file (its architecture from the ``manifest.json`` or ``config.json`` of its run
    directory, else ``preset``); a run directory (its ``model.keras``); ``"default"`` (the
    bundled weights); or None (random initialisation, for testing the pipeline). The
    rules are `spiritnet_tf.io.weights.load_model`'s (``run_config=True``).
    """
    from spiritnet_tf.io import weights as weights_io

    return weights_io.model_from_option(weights_io.RANDOM if weights is None else weights,
                                        preset, run_config=True)


def _dafr_flow0(model, seed):
    """Generation mode's flow0: the model's depth net and DAFR on the input (docs/design.md §5)."""

    def flow0(inputs):
        return model.initial_flow(tf.convert_to_tensor(inputs["image"], tf.float32), seed)

    return flow0


def evaluate_model(model, septuplets, mode, *, batch_size=4, crop=None, seed=0,
                   max_batches=None, progress=True, name="model", history=None):
    """Evaluates ``model`` and the baselines (docs/design.md §5); returns an `EvaluationResult`.

    ``model`` may also be a dict name -> model to evaluate several side by side.
    In generation mode flow0 is drawn once per batch by the (first) model's DAFR with
    ``seed`` and every predictor, baselines included, starts from it. ``history``:
    prediction mode one frame later with the flow before flow0 (`evaluation_samples`),
    which models with ``flow_history`` read and the others ignore; None: when any of the
    models has ``flow_history``.
    """
    from tqdm.auto import tqdm

    from spiritnet_tf.evaluation import BASELINES, evaluate

    models = model if isinstance(model, dict) else {name: model}
    if history is None:
        history = any(m.config.flow_history for m in models.values())
    predictors = {}
    for key, m in models.items():
        def predict(image, flow0, num_frames, *, teacher_flows=None, flow_before=None, m=m):
            inputs = {"image": image, "flow0": flow0}
            if flow_before is not None and m.config.flow_history:
                inputs["flow_before"] = flow_before
            return m(inputs, num_frames=num_frames)
        predictors[key] = predict
    predictors.update(BASELINES)
    samples = evaluation_samples(septuplets, mode, batch_size, crop, seed, history=history)
    samples = tqdm(samples, desc=f"evaluate ({mode})", unit="batch", disable=not progress,
                   total=max_batches)
    flow0_fn = _dafr_flow0(next(iter(models.values())), seed) if mode == "generation" else None
    return evaluate(predictors, samples, mode, flow0_fn=flow0_fn, max_batches=max_batches)


def _first_batch(dataset):
    inputs, targets = next(iter(dataset))
    return ({k: v.numpy() for k, v in inputs.items()}, {k: v.numpy() for k, v in targets.items()})


def _initial_depth(config, model, path, progress):
    """The depth weights the run starts from: ``(file or None, pre-training summary or None)``.

    ``depth_weights`` as given, or the depth pre-training stage's file in the run
    directory (trained now unless an interrupted run already wrote it).
    """
    options = config.depth_pretraining_config()
    if options is None:
        return config.depth_weights, None
    from spiritnet_tf.layers.cell import depth_net_for
    from spiritnet_tf.training.depth import pretrain_depth

    weights, log = path(DEPTH_WEIGHTS), path(DEPTH_LOG)
    if not (os.path.exists(weights) and os.path.exists(log)):
        net = depth_net_for(model.config)
        losses = pretrain_depth(net, options, progress)
        net.save_weights(weights)
        tenth = max(1, len(losses) // 10)
        summary = {"steps": len(losses), "weights": DEPTH_WEIGHTS,
                   "loss_first_tenth": float(np.mean(losses[:tenth])),
                   "loss_last_tenth": float(np.mean(losses[-tenth:]))}
        with open(log, "w") as f:
            json.dump(summary, f, indent=2)
    with open(log) as f:
        return weights, json.load(f)


def train(config, out_dir, *, strategy="default", overwrite=False, progress=True,
          extra_callbacks=()):
    """Runs (or resumes) one experiment into ``out_dir``; returns the manifest dict.

    Args:
      config: a `TrainConfig` (see `spiritnet_tf.training.load_config`).
      out_dir: the run directory (see the module docstring).
      strategy: "default", "mirrored", "multiworker" or a `tf.distribute.Strategy`.
      overwrite: replace a finished run (or a run of another config) in ``out_dir``.
      progress: Keras progress bars (one line per epoch when not on a terminal).
      extra_callbacks: more Keras callbacks for `fit`.
    """
    from spiritnet_tf.evaluation import quality_gate, write_report
    from spiritnet_tf.model import SpiritNet

    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if isinstance(strategy, str):
        strategy_name, strategy = strategy, make_strategy(strategy)
    else:
        strategy_name = type(strategy).__name__
    chief = _is_chief(strategy)
    if not chief:  # other workers keep their own files apart (Keras multi-worker guide)
        task = strategy.cluster_resolver.task_id
        out_dir = os.path.join(out_dir, "workers", f"{strategy.cluster_resolver.task_type}-{task}")
    started = datetime.datetime.now(datetime.timezone.utc)
    # Nothing is written into out_dir until the run folder, the config and the data
    # have been checked: a run that fails here can be rerun without --overwrite.
    check_run_dir(out_dir, config, overwrite)
    config.model_config(), config.loss_config()  # ValueError for a bad model or loss section
    if config.init_weights is not None:
        from spiritnet_tf.io.weights import weights_path

        try:
            init_weights = weights_path(config.init_weights)
        except (OSError, ValueError) as e:
            raise ValueError(f"init_weights: {e}") from None
    path = lambda *p: os.path.join(out_dir, *p)  # noqa: E731

    keras.utils.set_random_seed(config.seed)
    train_septuplets, train_records = septuplet_dataset(
        config.sources("train_data"), progress, mix_seed=config.seed if config.mix_sources else None)
    train_ds = training_samples(train_septuplets, config, training=True)
    val_ds, val_records, val_septuplets = None, [], None
    if config.validation_data:
        val_septuplets, val_records = septuplet_dataset(config.sources("validation_data"),
                                                        progress)
        val_ds = training_samples(val_septuplets, config, training=False)
    resumed = prepare_run_dir(out_dir, config, overwrite)
    done = completed_epochs(out_dir) if resumed else 0
    train_ds = resumed_data(train_ds, done, config.steps_per_epoch)

    with strategy.scope():
        model = SpiritNet(config.model_config())
        model.compile(loss_config=config.loss_config(),
                      learning_rate=config.learning_rate_schedule())
    if config.init_weights is not None:  # a warm start; BackupAndRestore restores over it
        model.build()
        model.load_weights(init_weights)
    depth_weights, depth_history = _initial_depth(config, model, path, progress)
    if depth_weights is not None:  # before fit: BackupAndRestore then restores over it
        model.depth_net.load_weights(depth_weights)

    callbacks = [
        keras.callbacks.BackupAndRestore(path("backup"), delete_checkpoint=False),
        keras.callbacks.ModelCheckpoint(path("checkpoints", "epoch-{epoch:03d}.weights.h5"),
                                        save_weights_only=True),
        keras.callbacks.TensorBoard(path("logs"), update_freq="epoch"),
        keras.callbacks.CSVLogger(path("history.csv"), append=True),
    ]
    if config.previews:
        preview = _first_batch((val_ds if val_ds is not None else train_ds).unbatch()
                               .batch(config.previews))
        callbacks.append(PreviewCallback(preview, path("logs", "preview"), path("previews")))
    callbacks += list(extra_callbacks)
    if done:
        print(f"spiritnet train: resuming {out_dir} after epoch {done} (skipping the "
              f"{done * config.steps_per_epoch} batches drawn before)", file=sys.stderr)
    verbose = (1 if sys.stdout.isatty() else 2) if progress else 0
    history = model.fit(train_ds, epochs=config.epochs, steps_per_epoch=config.steps_per_epoch,
                        validation_data=val_ds if config.validation_steps else None,
                        validation_steps=config.validation_steps or None,
                        callbacks=callbacks, verbose=verbose, shuffle=False)

    final = model.with_config()
    final.save_weights(path("model.weights.h5"))
    final.save(path("model.keras"))
    manifest = {
        "name": config.name,
        "config": config.to_dict(),
        "model_config": model.config.to_dict(),
        "loss_setup": {"loss": model.loss_config.to_dict(),
                       "vgg_weights": model.loss_config.vgg_weights or
                       "none (random VGG-19 weights: the style loss is not ImageNet's)"},
        "data": {"train": train_records, "validation": val_records},
        "strategy": strategy_name,
        "replicas": strategy.num_replicas_in_sync,
        "epochs": config.epochs,
        "steps_per_epoch": config.steps_per_epoch,
        "steps": int(model.optimizer.iterations.numpy()),
        "samples_seen": int(model.optimizer.iterations.numpy()) * config.batch_size,
        "final_losses": {k: float(v[-1]) for k, v in history.history.items()},
        "resumed": resumed,
        "init_weights": config.init_weights,
        "depth_weights": depth_weights,
        "depth_pretraining": depth_history,
        "outputs": {"weights": "model.weights.h5", "keras": "model.keras",
                    "checkpoints": "checkpoints/", "tensorboard": "logs/",
                    "history": "history.csv"},
        "git_revision": _git_revision(),
        "versions": _versions(),
        "command": " ".join(sys.argv),
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if not manifest["final_losses"] and os.path.exists(path("history.csv")):
        # Resumed after the last epoch had finished: the losses are in the CSV log.
        import csv

        with open(path("history.csv")) as f:
            rows = list(csv.DictReader(f))
        if rows:
            manifest["final_losses"] = {k: float(v) for k, v in rows[-1].items() if k != "epoch"}
    evaluation = config.evaluation_config()
    if evaluation is not None:
        modes = evaluation.resample_from or [model.config.resample_from]
        from spiritnet_tf.io.weights import with_resample

        # The model itself for its own mode (a copy costs a model's construction).
        models = {f"model ({m})": with_resample(model, m) for m in modes}
        result = evaluate_model(models, val_septuplets, evaluation.mode,
                                batch_size=config.batch_size,
                                crop=tuple(config.crop) if config.crop else None,
                                seed=evaluation.seed, max_batches=evaluation.batches,
                                progress=progress)
        write_report(result, path("evaluation"))
        manifest["evaluation"] = {
            **result.to_dict(),
            "reports": {"json": "evaluation/evaluation.json",
                        "markdown": "evaluation/evaluation.md", "plot": "evaluation/evaluation.png"},
            "quality_gate": {name: quality_gate(result, name) for name in models},
        }
    if chief:  # no machine's paths, in the file and in what is returned
        manifest = write_portable_json(path(MANIFEST), manifest)
    else:
        manifest = portable_json(manifest)
    shutil.rmtree(path("backup"), ignore_errors=True)
    return manifest


REPORT_FILES = ("evaluation.json", "evaluation.md", "evaluation.png")
SOURCE_FILE = "evaluation-source.json"


def evaluate_weights(weights, data, out, *, mode="prediction", preset="small", resample_from=None,
                     size=(256, 448), crop=None, seed=0, split="test", cache_dir=None, take=None,
                     batch_size=4, max_batches=None, overwrite=False, progress=True):
    """``spiritnet evaluate`` as a function: evaluates ``weights`` (see `load_model`; None
    = random initialisation) and the baselines on the data source ``data`` (see
    `spiritnet_tf.training.parse_source_spec`) and writes the report into ``out``:
    ``evaluation.json``, ``.md``, ``.png`` and ``evaluation-source.json`` (the source, its
    clips, ``weights`` and ``resample_from`` as given).

    ``resample_from``: None (the model's own mode, one method "model") or a list of modes
    (one method "model (<mode>)" each). ``size``: (height, width) of synthetic renders and
    video cuts. Returns ``(EvaluationResult, {"json", "markdown", "plot": path})``.

    ``out`` and ``weights`` are checked before the data is read: ValueError when ``out``
    already holds a report and not ``overwrite``, or is a file; ValueError naming
    ``--weights`` for a missing, corrupt or foreign weights file.
    """
    from spiritnet_tf.evaluation import write_report
    from spiritnet_tf.io.weights import RANDOM, weights_path, with_resample
    from spiritnet_tf.io.writers import check_output_parent
    from spiritnet_tf.training.data import load_source, parse_source_spec

    existing = [n for n in REPORT_FILES if os.path.exists(os.path.join(out, n))]
    if existing and not overwrite:
        raise ValueError(f"{out!r} already holds {', '.join(existing)}; pass --overwrite")
    if os.path.lexists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out}: exists and is not a folder")
    check_output_parent(os.path.join(out, REPORT_FILES[0]))
    if weights is not None and os.fspath(weights).lower() not in (RANDOM, "default"):
        try:
            weights_path(weights)
        except (ValueError, OSError) as e:
            raise ValueError(f"--weights {e}") from None
    height, width = size
    source = parse_source_spec(data, height=height, width=width, seed=seed, cache_dir=cache_dir,
                               split=split, take=take)
    septuplets, record = load_source(source, progress=progress)
    model = load_model(weights, preset)
    if resample_from:
        models = {f"model ({m})": with_resample(model, m) for m in resample_from}
    else:
        models = {"model": model}
    result = evaluate_model(models, septuplets, mode, batch_size=batch_size, crop=crop, seed=seed,
                            max_batches=max_batches, progress=progress)
    paths = write_report(result, out)
    with open(os.path.join(out, SOURCE_FILE), "w") as f:
        json.dump({"source": dataclasses.asdict(source), "record": record,
                   "weights": RANDOM if weights is None else os.fspath(weights),
                   "resample_from": resample_from}, f, indent=2)
        f.write("\n")
    return result, paths
