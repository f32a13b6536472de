"""Margins over constant velocity on the held-out clips, all clips and each video alone, for
weight files or for a run's fill-hole net swapped between two checkpoints.

    python scripts/heldout_margins.py FILE [FILE ...] [--heldout-cache data/cache/heldout_v6]
    python scripts/heldout_margins.py --swap RUN [--early 1] [--late 30]
    python scripts/heldout_margins.py --history FILE [FILE ...]   # one frame later, 4 steps
    python scripts/heldout_margins.py --history --ensemble frames|flows FILE FILE [...]

Prediction mode on the cached held-out septuplets (the bundle step's cache,
`spiritnet_tf.training.bundle`), both resampling modes; prints the margins in dB,
"input" and "previous", and each video's |flow| ratio to the teacher's ("previous" and
constant velocity's; "input" moves the same flows). Weight files load as ``spiritnet
evaluate --weights`` loads them (a ``.weights.h5`` in a run directory or its
``checkpoints/`` with the run's architecture). ``--swap``: checkpoint ``--early``,
checkpoint ``--late``, and the two hybrids whose fill-hole net
(`spiritnet_tf.layers.FlowFillHole`, the only sub-network that changes the flows) comes
from one checkpoint and every other weight from the other.
docs/training.md, "Forty-sixth and forty-seventh attempts", quotes the figures.
``--ensemble``: the files as one predictor, "frames" the mean of each model's frames and
flows (each runs its own recurrence: the ensemble model of
`spiritnet_tf.training.ensemble.join_models`), "flows" the first model with its flows at
each step the mean of every model's fill-hole net (each on its own context features);
docs/training.md, "Ninetieth to ninety-sixth attempts".
"""

import argparse
import glob
import json
import os

import tensorflow as tf

from spiritnet_tf.data import read_septuplets
from spiritnet_tf.io.weights import load_model
from spiritnet_tf.layers.cell import STATE_CHANNELS
from spiritnet_tf.model import SpiritNet
from spiritnet_tf.training.bundle import per_video_figures
from spiritnet_tf.training.ensemble import join_models
from spiritnet_tf.training.run import evaluate_model


def hybrid(flows_from, rest_from):
    """A copy of ``rest_from`` with the fill-hole net of ``flows_from``."""
    model = SpiritNet(rest_from.config)
    model.build()
    model.set_weights(rest_from.get_weights())
    model.cell.fill_hole.set_weights(flows_from.cell.fill_hole.get_weights())
    return model


def flow_ensemble(models):
    """The first of ``models`` with the mean of every model's fill-hole net as its new flow
    (each net on its own model's context of the step's image, the flow's change beside it
    as the step passes it)."""
    nets = [(m.cell.context, m.cell.fill_hole) for m in models]
    history = models[0].config.flow_history

    def fill(flow_init, holes, image, fill_context, z):
        change = [fill_context[..., -STATE_CHANNELS.flow:]] if history else []
        return tf.add_n([net(flow_init, holes, image, tf.concat([context(image)] + change, -1), z)
                         for context, net in nets]) / len(nets)

    object.__setattr__(models[0].cell, "fill_hole", fill)  # not tracked: no weights of its own
    return models[0]


def ensemble_margins(models, kind, files, ids, history=None):
    """`margins` of ``models`` (SpiritNets of one architecture) as one ``kind`` ensemble."""
    combined = {}
    for mode in ("input", "previous"):
        copies = [m.with_config(resample_from=mode) for m in models]
        combined[mode] = join_models(copies) if kind == "frames" else flow_ensemble(copies)
    return margins(combined, files, ids, history=history)


def margins(model, files, ids, history=None):
    """{"all" or video: {mode: margin in dB}} of a SpiritNet in both resampling modes, or of
    {mode: predictor} as given (`ensemble_margins`). The mean PSNR is a mean over septuplets, so
    the margin on all clips is the per-video margins weighted by their septuplet counts:
    each clip is evaluated once (``per_video_figures``; directly when there is one video)."""
    models = model if isinstance(model, dict) else {
        m: model.with_config(resample_from=m) for m in ("input", "previous")}
    videos = per_video_figures(models, files, ids, history=history)
    if not videos:
        result = evaluate_model(models, read_septuplets(files), "prediction", batch_size=4,
                                progress=False, history=history)
        psnr = {row["method"]: row["psnr"] for row in result.summary}
        return {"all": {m: psnr[m] - psnr["constant-velocity"] for m in models}}
    total = sum(f["num_samples"] for f in videos.values())
    row = {"all": {m: sum(f["num_samples"] * f["margin_over_constant_velocity_db"][m]
                          for f in videos.values()) / total for m in models}}
    for video, figures in videos.items():
        name = os.path.basename(video)
        row[name] = figures["margin_over_constant_velocity_db"]
        row[f"{name} flow ratio"] = {m: figures["flow_ratio"][m]
                                     for m in ("previous", "constant-velocity")}
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="*", help="weight files to evaluate")
    parser.add_argument("--swap", metavar="RUN", help="swap the fill-hole net of RUN's checkpoints")
    parser.add_argument("--early", type=int, default=1)
    parser.add_argument("--late", type=int, default=30)
    parser.add_argument("--history", action="store_true",
                        help="prediction mode one frame later with the flow before flow0 (4 "
                             "steps), for every model; default: only for flow_history models")
    parser.add_argument("--ensemble", choices=("frames", "flows"),
                        help="evaluate the weight files as one ensemble of this kind")
    parser.add_argument("--heldout-cache", default=os.path.join("data", "cache", "heldout_v6"))
    args = parser.parse_args(argv)
    if not args.swap and not args.weights:
        parser.error("give weight files or --swap RUN")
    files = sorted(glob.glob(os.path.join(args.heldout_cache, "*.tfrecord")))
    if not files:
        raise SystemExit(f"no *.tfrecord in {args.heldout_cache} (the bundle step writes them)")
    ids = [s["id"].numpy().decode() for s in read_septuplets(files)]
    if args.ensemble:
        models = [load_model(path, run_config=True) for path in args.weights]
        row = ensemble_margins(models, args.ensemble, files, ids, history=args.history or None)
        print(f"{args.ensemble} ensemble of {len(models)}",
              json.dumps({k: {m: round(x, 3) for m, x in v.items()} for k, v in row.items()}))
        return
    if not args.swap:
        runs = [(path, load_model(path, run_config=True)) for path in args.weights]
    else:
        checkpoint = lambda e: load_model(  # noqa: E731
            os.path.join(args.swap, "checkpoints", f"epoch-{e:03d}.weights.h5"), run_config=True)
        early, late = checkpoint(args.early), checkpoint(args.late)
        runs = [(f"epoch {args.early}", early),
                (f"flows of epoch {args.early}, rendering of epoch {args.late}", hybrid(early, late)),
                (f"flows of epoch {args.late}, rendering of epoch {args.early}", hybrid(late, early)),
                (f"epoch {args.late}", late)]
    for label, model in runs:
        row = margins(model, files, ids, history=args.history or None)
        print(label, json.dumps({k: {m: round(x, 3) for m, x in v.items()} for k, v in row.items()}),
              flush=True)


if __name__ == "__main__":
    main()
