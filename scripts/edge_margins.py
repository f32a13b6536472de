"""How much of a model's margin over constant velocity comes from the picture's edges.

    python scripts/edge_margins.py FILE [FILE ...] [--heldout-cache data/cache/heldout_v6]
        [--mode previous] [--warp-outside copy clamp]

Prediction mode on the cached held-out septuplets (the bundle step's cache), one frame
later with the flow before flow0 for ``flow_history`` models (as `evaluate_model`), per
video: the model's margin over constant velocity in dB (the gate's figure), its margin
over constant velocity rendered with the clamp rule (samples outside the picture show the
nearest edge pixel, `spiritnet_tf.ops.flow.clamp_to_frame`, instead of the pixel itself),
and its margin on the pixels whose sources, composed back to the input, lie inside the
picture for both the model and constant velocity; with the share of pixels whose source
lies outside, for each. Margins are differences of mean PSNR over septuplets and steps.
docs/training.md, "Sixty-second and sixty-third attempts", quotes the figures.
"""

import argparse
import glob
import os

import numpy as np
import tensorflow as tf

from spiritnet_tf.data import read_septuplets
from spiritnet_tf.evaluation.baselines import constant_velocity, warp_sequence
from spiritnet_tf.evaluation.metrics import psnr
from spiritnet_tf.io.weights import load_model
from spiritnet_tf.ops.flow import clamp_to_frame, compose_flows
from spiritnet_tf.training.bundle import septuplets_by_video
from spiritnet_tf.training.data import evaluation_samples


def _psnr_where(squared_error, weight):
    """PSNR [B] of per-pixel squared errors [B, H, W] over the pixels where ``weight`` is 1
    (`spiritnet_tf.evaluation.metrics.psnr` on part of the picture)."""
    mse = tf.reduce_sum(squared_error * weight, [1, 2]) / tf.reduce_sum(weight, [1, 2])
    return -10.0 * np.log10(mse.numpy())


def _outside(composed):
    """[B, T, H, W] 1.0 where the source of a pixel, ``x + G_t(x)``, lies outside (more than
    1e-3 px: clamping moves it; float rounding moves the others by less)."""
    moved = tf.abs(clamp_to_frame(composed) - composed)
    return tf.cast(tf.reduce_any(moved > 1e-3, -1), tf.float32)


def figures(model, septuplets):
    """{figure: mean} for one video (see the module docstring)."""
    rows = {k: [] for k in ("model", "cv", "cv_clamp", "model_inside", "cv_inside",
                            "outside_model", "outside_cv")}
    history = model.config.flow_history
    for inputs, targets in evaluation_samples(septuplets, "prediction", 4, history=history):
        image, flow0, truth = inputs["image"], inputs["flow0"], targets["frames"]
        steps = truth.shape[1]
        feed = {"image": image, "flow0": flow0}
        if history:
            feed["flow_before"] = inputs["flow_before"]
        out = model(feed, num_frames=steps)
        cv = constant_velocity(image, flow0, steps)
        frames = {"model": out["frames"], "cv": cv["frames"],
                  "cv_clamp": warp_sequence(image, clamp_to_frame(cv["flows"]))}
        outside_model = _outside(compose_flows(out["flows"]))
        outside_cv = _outside(compose_flows(cv["flows"]))
        for t in range(steps):
            for name, predicted in frames.items():
                rows[name].append(psnr(predicted[:, t], truth[:, t]).numpy())
            inside = (1.0 - outside_model[:, t]) * (1.0 - outside_cv[:, t])
            for name in ("model", "cv"):
                error = tf.reduce_mean((frames[name][:, t] - truth[:, t]) ** 2, -1)
                rows[f"{name}_inside"].append(_psnr_where(error, inside))
            rows["outside_model"].append(tf.reduce_mean(outside_model[:, t], [1, 2]).numpy())
            rows["outside_cv"].append(tf.reduce_mean(outside_cv[:, t], [1, 2]).numpy())
    mean = {k: float(np.mean(np.concatenate(v))) for k, v in rows.items()}
    return {"margin": mean["model"] - mean["cv"],
            "margin_over_cv_clamp": mean["model"] - mean["cv_clamp"],
            "margin_inside": mean["model_inside"] - mean["cv_inside"],
            "outside_share_model": mean["outside_model"],
            "outside_share_cv": mean["outside_cv"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="+", help="weight files to evaluate")
    parser.add_argument("--heldout-cache", default=os.path.join("data", "cache", "heldout_v6"))
    parser.add_argument("--mode", default="previous", choices=("previous", "input"))
    parser.add_argument("--warp-outside", nargs="+", default=[None], choices=("copy", "clamp"),
                        help="render with these rules (default: the run's own)")
    args = parser.parse_args(argv)
    files = sorted(glob.glob(os.path.join(args.heldout_cache, "*.tfrecord")))
    if not files:
        raise SystemExit(f"no *.tfrecord in {args.heldout_cache} (the bundle step writes them)")
    videos = septuplets_by_video(files, [s["id"].numpy().decode() for s in read_septuplets(files)])
    for path in args.weights:
        model = load_model(path, run_config=True).with_config(resample_from=args.mode)
        for rule in args.warp_outside:
            run = model if rule is None else model.with_config(warp_outside=rule)
            for video, septuplets in videos:
                row = figures(run, septuplets)
                print(path, run.config.warp_outside, os.path.basename(video),
                      " ".join(f"{k} {v:+.3f}" if k.startswith("margin") else f"{k} {v:.3f}"
                               for k, v in row.items()), flush=True)


if __name__ == "__main__":
    main()
