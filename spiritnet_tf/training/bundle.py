"""Turns a finished training run into the bundled default weights (``make default-weights``).

    python -m spiritnet_tf.training.bundle runs/default_weights_v4 [--heldout data/heldout_videos_v6]
        [--data data] [--force]

1. evaluates the run on the held-out clips in prediction mode with
   `spiritnet_tf.training.run.evaluate_weights` (what ``spiritnet evaluate`` runs, called
   as a function; both resampling modes, the copy-frame / constant-velocity / oracle
   baselines; the report in ``RUN/heldout/``), and, when the clips come from more than
   one video, each video alone (`per_video_figures`: a gain on one video must not hide a
   loss on another; reported, not checked);
2. animates the gate's real photos (`spiritnet_tf.evaluation.photos`, fetched into
   ``DATA/photos`` when missing) with the run's weights in generation mode, seeds 0-2,
   6 frames, through `spiritnet_tf.animate`, in each resampling mode
   (`spiritnet_tf.evaluation.gate.measure_generation`; contact sheets of the first
   seed's frames in ``RUN/gate/<mode>/<photo>.jpg``, to look at before bundling);
   every figure and check of both modes go to ``RUN/gate/gate.json``, whether they pass or not;
3. applies the quality gate `spiritnet_tf.evaluation.gate.quality_gate` (prediction,
   generation and seamless-loop checks, docs/training.md "The quality gate") to each mode;
4. copies the run's ``model.weights.h5`` to `spiritnet_tf.config.DEFAULT_WEIGHTS` and
   writes ``MANIFEST.json`` beside it: the training manifest (config, data, steps,
   losses), the evaluations, the gate, the chosen ``resample_from`` (the mode with the
   higher held-out mean PSNR among those that pass the gate), sizes and checksums, and
   under ``"data"`` every clip and photo used for training or selection (training
   sources and clips, held-out clips, gate photos); paths inside the repository are
   recorded relative to it (`spiritnet_tf.training.run.repository_relative`).

It refuses to replace bundled weights when the gate fails in both modes, unless
``--force`` (the manifest then records the failing gate, and the README must say so).
Nothing is copied or written into the package before the gate has been decided.
"""

import argparse
import hashlib
import json
import os
import shutil
import sys

from spiritnet_tf.config import (DEFAULT_MANIFEST, DEFAULT_WEIGHTS, REPO, RESAMPLE_MODES,
                                 SpiritNetConfig)

__all__ = ["bundle", "choose_mode", "data_sources", "depth_net_record", "file_sha256",
           "generation_check", "main", "per_video_figures", "run_commands", "weights_commands",
           "MANIFEST_PATH"]

MANIFEST_PATH = DEFAULT_MANIFEST


def _depth_mapping(config):
    """The depth mapping of a run's config (its model overrides on the preset)."""
    from spiritnet_tf.model import PRESETS

    return config.get("model", {}).get("depth_mapping", PRESETS[config["preset"]].depth_mapping)


def file_sha256(path):
    """The SHA-256 hex digest of the file ``path`` (the manifests' checksums)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_commands(run, relative=lambda p: p):
    """The commands that trained a run, from its ``manifest.json`` (``run``): its own
    ``spiritnet train`` command line or, for an ensemble, each member's and then the
    command that joined them (`spiritnet_tf.training.ensemble`); paths rewritten by
    ``relative`` (the program's own path dropped)."""
    def train(record):
        argv = [relative(a) if os.path.isabs(a) else a  # without the program's path
                for a in (record.get("command") or "").split()[1:]]
        return " ".join(["spiritnet"] + argv) if argv else "spiritnet train (command not recorded)"

    return [train(m) for m in run["members"]] + [run["command"]] if run.get("members") else [train(run)]


def weights_commands(weights, relative=lambda p: p):
    """The commands that made the weights file ``weights``, from the manifest beside it:
    a bundled ``MANIFEST.json``'s ``commands``, or `run_commands` of a run's
    ``manifest.json``; None without either (what configs/distill_data.py records of its
    teachers)."""
    from spiritnet_tf.training.run import MANIFEST as RUN_MANIFEST

    folder = os.path.dirname(os.path.abspath(weights))
    for name in (os.path.basename(MANIFEST_PATH), RUN_MANIFEST):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            with open(path) as f:
                manifest = json.load(f)
            return manifest.get("commands") or run_commands(manifest, relative)
    return None


def _commands(run, run_dir, heldout, relative, sources=None):
    """The commands that made these weights: the data, then for training data distilled
    from teachers (a ``sources`` record with a ``command``: configs/distill_data.py) the
    teachers' own commands and the distillation, then `run_commands` of the run and this
    bundle step; paths relative to the repository."""
    rel = lambda p: relative(os.path.abspath(p))  # noqa: E731
    made = ["make default-weights", "sh configs/default_weights_data.sh data"]
    for record in (sources or {}).values():
        if isinstance(record, dict) and record.get("command"):
            for teacher in record.get("teachers") or []:
                made += [c for c in teacher.get("commands") or [] if c not in made]
            made += [record["command"]] if record["command"] not in made else []
    return [*made, *run_commands(run, relative),
            f"python -m spiritnet_tf.training.bundle {rel(run_dir)} --heldout {rel(heldout)}"]


def generation_check(weights, resample_from, photos, progress=False, sheets=None):
    """`spiritnet_tf.evaluation.gate.measure_generation` of ``photos`` ({name: path})
    animated with the run's ``weights`` (a file, loaded with the run's architecture:
    `spiritnet_tf.io.weights.load_model` with ``run_config=True``) in mode
    ``resample_from``; ``sheets``: folder for its contact sheets."""
    from spiritnet_tf.evaluation import gate
    from spiritnet_tf.io.weights import load_model

    model = load_model(weights, resample_from=resample_from, run_config=True)
    return gate.measure_generation(model, photos, sheets=sheets, progress=progress)


def choose_mode(heldout_result, generation):
    """The gate of each resampling mode and the mode to bundle.

    Args:
      heldout_result: the evaluation as ``evaluation.json`` holds it
        (`spiritnet_tf.evaluation.json_dict`; prediction mode) with
        rows for "model (previous)", "model (input)" and the baselines.
      generation: mode -> `generation_check` of the gate's photos.

    Returns:
      (modes, chosen): modes[mode] = {"quality_gate": `quality_gate` of the mode,
      "heldout_summary": the mode's summary row, "generation": its figures}; chosen = the
      mode with the higher held-out mean PSNR among those that pass (among all when none
      passes).
    """
    from spiritnet_tf.evaluation import EvaluationResult, quality_gate

    result = EvaluationResult(**{k: heldout_result[k] for k in
                                 ("mode", "num_samples", "num_frames", "rows", "summary")})
    modes = {}
    for mode, figures in generation.items():
        name = f"model ({mode})"
        summary = next(s for s in heldout_result["summary"] if s["method"] == name)
        modes[mode] = {"quality_gate": quality_gate(result, name, figures),
                       "heldout_summary": summary, "generation": figures}
    passing = [m for m in modes if modes[m]["quality_gate"]["passed"]]
    chosen = max(passing or list(modes), key=lambda m: modes[m]["heldout_summary"]["psnr"])
    return modes, chosen


def septuplets_by_video(files, clips):
    """``[(video, septuplets)]``, sorted by video: the cached septuplets of ``files`` split
    by the video their clip ids (``video#k``, ``clips``) name."""
    import tensorflow as tf

    from spiritnet_tf.data import read_septuplets

    out = []
    for video in sorted({clip.rsplit("#", 1)[0] for clip in clips}):
        prefix = (video + "#").encode()
        out.append((video, read_septuplets(files).filter(
            lambda s, prefix=prefix: tf.strings.substr(s["id"], 0, len(prefix)) == prefix)))
    return out


def per_video_figures(models, files, clips, *, batch_size=4, progress=False, history=None):
    """The held-out figures of each video alone.

    ``files``: the source's cache files (``*.tfrecord``); ``clips``: their clip ids
    (``video#k``, as `spiritnet_tf.training.data.load_source` records them). ``models``:
    {method name: model}. Returns {video: {"num_samples": n, "psnr": {method: mean PSNR},
    "flow_ratio": {method: mean |flow| / |teacher flow|},
    "margin_over_constant_velocity_db": {method: its PSNR minus constant velocity's}}} with
    the baselines among the methods. Empty when the clips come from fewer than two videos.
    ``history``: as `spiritnet_tf.training.evaluate_model`'s."""
    from spiritnet_tf.training.run import evaluate_model

    videos = septuplets_by_video(files, clips)
    if len(videos) < 2:
        return {}
    figures = {}
    for video, ds in videos:
        result = evaluate_model(models, ds, "prediction", batch_size=batch_size,
                                progress=progress, history=history)
        psnr = {row["method"]: row["psnr"] for row in result.summary}
        figures[video] = {"num_samples": result.num_samples, "psnr": psnr,
                          "flow_ratio": {row["method"]: row["flow_ratio"] for row in result.summary},
                          "margin_over_constant_velocity_db": {
                              m: psnr[m] - psnr["constant-velocity"] for m in models}}
    return figures


def data_sources(folders, root=REPO):
    """{folder: its ``SOURCES.json``} for each of ``folders`` (absolute, or relative to
    ``root``, the repository) that holds one: what the data scripts record of the data
    they wrote (package, version, registry, licence, the parts taken), so that the manifest
    names every source with its version and licence."""
    sources = {}
    for folder in folders:
        record = os.path.join(root, folder, "SOURCES.json")  # an absolute folder as it is
        if folder not in sources and os.path.isfile(record):
            with open(record) as f:
                sources[folder] = json.load(f)
    return sources


def depth_net_record(depth_weights, root=REPO):
    """What the depth weights a run started from (``depth_weights``, absolute or relative
    to ``root``) record in the ``MANIFEST.json`` beside them: ``{"weights" (the path),
    "training_data", "evaluation"}`` (their sources with versions and licences, and their
    real-depth evaluation, ``spiritnet evaluate-depth``); None without such a manifest."""
    if not depth_weights:
        return None
    path = os.path.join(root, depth_weights)  # an absolute path as it is
    manifest = os.path.join(os.path.dirname(path), "MANIFEST.json")
    if not os.path.isfile(manifest):
        return None
    with open(manifest) as f:
        record = json.load(f)
    if record.get("weights") != os.path.basename(path):
        return None
    return {"weights": depth_weights, "training_data": record.get("training_data"),
            "evaluation": record.get("evaluation")}


def _heldout_source(out):
    """The held-out source record `evaluate_weights` wrote beside its report (its
    videos and clips)."""
    from spiritnet_tf.training.run import SOURCE_FILE

    with open(os.path.join(out, SOURCE_FILE)) as f:
        return json.load(f)["record"]


def bundle(run_dir, heldout, *, size="128x224", cache_dir=None, data=None, photos=None, force=False,
           progress=True):
    """Evaluates ``run_dir`` and installs its weights as the bundled default (see module doc).

    ``photos``: {name: path} of the generation-mode photos; default the gate's photos
    (`spiritnet_tf.evaluation.photos.prepare_photos` of ``data``, default ``REPO/data``).
    Raises SystemExit naming the failing checks when the gate fails and not ``force``.
    """
    from spiritnet_tf.evaluation import json_dict
    from spiritnet_tf.evaluation.gate import failed_checks
    from spiritnet_tf.evaluation.photos import PHOTOS, prepare_photos
    from spiritnet_tf.layers.dafr import DAFRConfig
    from spiritnet_tf.training.cli import parse_size
    from spiritnet_tf.training import run as run_module
    from spiritnet_tf.training.run import (evaluate_weights, repository_relative,
                                           write_portable_json)

    run_dir = os.path.abspath(run_dir)
    with open(os.path.join(run_dir, "manifest.json")) as f:
        run = json.load(f)
    weights = os.path.join(run_dir, "model.weights.h5")
    out = os.path.join(run_dir, "heldout")
    result, _ = evaluate_weights(run_dir, heldout, out, mode="prediction",
                                 resample_from=list(RESAMPLE_MODES), size=parse_size(size),
                                 cache_dir=cache_dir or None, overwrite=True, progress=progress)
    heldout_result = json_dict(result)  # as evaluation.json holds it
    heldout_source = _heldout_source(out)
    per_video = {}
    if heldout_source.get("files"):
        from spiritnet_tf.io.weights import with_resample
        from spiritnet_tf.training.run import load_model

        model = load_model(run_dir, run["config"].get("preset", "small"))
        per_video = per_video_figures(
            {f"model ({m})": with_resample(model, m) for m in RESAMPLE_MODES},
            heldout_source["files"], heldout_source["clips"], progress=progress)
        per_video = {repository_relative(video): f for video, f in per_video.items()}
        for video, f in per_video.items():
            margins = ", ".join(f"{m} {v:+.2f} dB" for m, v in
                                f["margin_over_constant_velocity_db"].items())
            print(f"held out, {os.path.basename(video)} alone ({f['num_samples']} clips): "
                  f"over constant velocity {margins}", file=sys.stderr)
    if photos is None:
        photos = prepare_photos(data or os.path.join(REPO, "data"))
    generation = {mode: generation_check(weights, mode, photos, progress=progress,
                                         sheets=os.path.join(run_dir, "gate", mode))
                  for mode in RESAMPLE_MODES}
    modes, chosen = choose_mode(heldout_result, generation)
    os.makedirs(os.path.join(run_dir, "gate"), exist_ok=True)  # the figures, pass or fail
    write_portable_json(os.path.join(run_dir, "gate", "gate.json"),
                        {"modes": modes, "chosen": chosen, "per_video": per_video})
    if not modes[chosen]["quality_gate"]["passed"] and not force:
        failures = "; ".join(f"{mode}: {', '.join(failed_checks(m['quality_gate']))}"
                             for mode, m in modes.items())
        raise SystemExit(f"quality gate failed in both modes ({failures}); the bundled weights "
                         "are kept (--force installs these anyway)")
    os.makedirs(os.path.dirname(DEFAULT_WEIGHTS), exist_ok=True)
    shutil.copyfile(weights, DEFAULT_WEIGHTS)
    recorded = SpiritNetConfig.from_recorded(run.get("model_config") or {})  # what was measured
    sources = data_sources(repository_relative(
        [s["path"] for s in (run.get("data") or {}).get("train", [])
         if isinstance(s, dict) and s.get("path")] + [os.path.abspath(heldout)]),
        root=run_module.REPO)
    manifest = {
        "weights": os.path.basename(DEFAULT_WEIGHTS),
        "sha256": file_sha256(DEFAULT_WEIGHTS),
        "bytes": os.path.getsize(DEFAULT_WEIGHTS),
        "preset": run["config"]["preset"],
        "resample_from": chosen,
        # The run's overrides on the preset (architecture and behaviour), applied whenever
        # these weights are loaded (`spiritnet_tf.io.weights.bundled_overrides`).
        "model": dict(run["config"].get("model") or {}),
        # The DAFR rule the gate measured, applied whenever these weights are loaded.
        "dafr": DAFRConfig.coerce(run.get("model_config", {}).get("dafr") or None).to_dict(),
        "depth_mapping": _depth_mapping(run["config"]),
        # What DAFI wrote into its holes when the gate measured them.
        "dafi_holes": recorded.dafi_holes,
        "resample_from_choice": "the mode with the higher held-out mean PSNR among those "
                                "passing the quality gate",
        "quality_gate": modes[chosen]["quality_gate"],
        "modes": modes,
        # Every clip and photo used for training or selection, and the record of each data
        # folder's sources (package, version, licence).
        "data": {"training": run.get("data"), "heldout": heldout_source,
                 "sources": sources,
                 "depth_net": depth_net_record(run.get("depth_weights"), root=run_module.REPO),
                 "gate_photos": {name: {"path": os.path.abspath(path), "source": PHOTOS.get(name)}
                                 for name, path in photos.items()}},
        "heldout": {"data": os.path.abspath(heldout) if os.path.exists(heldout) else heldout,
                    "size": size, "mode": "prediction",
                    # flow_history weights are evaluated one frame later, with the flow
                    # before flow0 (`spiritnet_tf.training.evaluate_model`).
                    "one_frame_later": recorded.flow_history,
                    "num_samples": heldout_result["num_samples"],
                    "summary": heldout_result["summary"], "rows": heldout_result["rows"],
                    "per_video": per_video},
        "commands": _commands(run, run_dir, heldout, repository_relative, sources),
        "training": {k: run.get(k) for k in ("name", "config", "model_config", "loss_setup",
                                             "steps", "samples_seen", "epochs",
                                             "final_losses", "git_revision", "versions",
                                             "started", "finished", "evaluation")},
    }
    return write_portable_json(MANIFEST_PATH, manifest)  # no machine's paths


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m spiritnet_tf.training.bundle",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a finished `spiritnet train` run directory")
    parser.add_argument("--heldout", default=os.path.join("data", "heldout_videos_v6"),
                        help="folder of held-out videos, from videos the run did not train on "
                             "(default data/heldout_videos_v6, configs/default_weights_data.sh)")
    parser.add_argument("--size", default="128x224", help="clip size HxW (default 128x224)")
    parser.add_argument("--cache-dir", default=os.path.join("data", "cache", "heldout_v6"))
    parser.add_argument("--data", default="data",
                        help="folder the gate's photos are fetched into (DATA/photos; default data)")
    parser.add_argument("--force", action="store_true",
                        help="install the weights even when the quality gate fails")
    args = parser.parse_args(argv)
    manifest = bundle(args.run_dir, args.heldout, size=args.size, cache_dir=args.cache_dir,
                      data=args.data, force=args.force)
    print(json.dumps({k: manifest[k] for k in ("weights", "bytes", "resample_from",
                                               "quality_gate")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
