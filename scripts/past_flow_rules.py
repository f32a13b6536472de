"""Does the flow before the input's say whether the motion carries on? Measured without training.

docs/training.md, "Thirty-fourth and thirty-fifth attempts", quotes its figures.

    python scripts/past_flow_rules.py [--train data/cache/train_v5/bbb_* ...]
        [--heldout data/cache/heldout_v6/bikes* data/cache/heldout_v6/cockatoo*]

A four-step protocol inside each cached septuplet (`spiritnet_tf.data.records`): the
input is frames[2] with its flow F_b = F_{2->1}, the flow before it is F_a = F_{1->0},
the targets are frames[3..6]. Every predictor re-applies a flow to the previous frame each
step, as the constant-velocity baseline does (`spiritnet_tf.evaluation.baselines`).

1. How predictable is the gain of F_{b+k} on F_b (the least-squares factor: how much of
   the input's motion carries on k steps later) on the training clips: R^2 of a linear fit
   on three picture-wide statistics of F_b (log mean length, uniformity = length of the
   mean vector over the mean length, relative spread of the lengths), and with two of
   (F_a, F_b) added (the gain of F_b on F_a, their relative change, the log ratio of
   their lengths). Septuplets whose F_b averages under 0.3 px are left out.
2. Held out, mean PSNR over the four steps against constant velocity, per video, of the
   input's flow times a gain per step: the training clips' median, the two fits of 1,
   and each clip's true gain (an upper bound for one gain per picture).
3. Per-pixel rules on the two flows, fixed, not fitted (the training files too, every
   ``--every``-th file and at most ``--limit`` septuplets per group, for comparison).
"""

import argparse
import collections
import glob
import os

import cv2
import numpy as np
import tensorflow as tf

from spiritnet_tf.data.records import read_septuplets
from spiritnet_tf.evaluation.baselines import warp_sequence
from spiritnet_tf.evaluation.metrics import psnr

STEPS = 4
MIN_LENGTH = 0.3  # px: flows shorter than this have no direction to keep


def gain(a, b):
    """Least-squares factor g minimising |g a - b|^2 over the picture."""
    return float((a * b).sum() / max((a * a).sum(), 1e-6))


def length(flow):
    return np.linalg.norm(flow, axis=-1)


def statistics(fa, fb):
    """Three picture-wide statistics of F_b, then three of (F_a, F_b)."""
    lb, la = max(length(fb).mean(), 1e-3), max(length(fa).mean(), 1e-3)
    uniformity = np.linalg.norm(fb.reshape(-1, 2).mean(0)) / lb
    return [np.log(lb), uniformity, length(fb).std() / lb,
            np.clip(gain(fa, fb), -1, 2), min(length(fb - fa).mean() / lb, 3), np.log(la / lb)]


def agreement(fa, fb, sigma=3.0):
    """Per pixel, clip(<F_a, F_b> / |F_b|^2, 0, 1), smoothed by a Gaussian of ``sigma`` px."""
    g = np.clip((fa * fb).sum(-1) / np.maximum((fb * fb).sum(-1), 0.25), 0, 1)
    return cv2.GaussianBlur(g.astype(np.float32), (0, 0), sigma)[..., None]


RULES = {
    "F x g (per-pixel agreement)": lambda fa, fb, k: fb * agreement(fa, fb),
    "F x g^k": lambda fa, fb, k: fb * agreement(fa, fb) ** k,
    "mean of the two flows": lambda fa, fb, k: 0.5 * (fa + fb),
    "constant acceleration, capped": lambda fa, fb, k: fb + np.clip(fb - fa, -1, 1) * 0.5,
}


def septuplets(files, limit=None):
    for i, s in enumerate(read_septuplets(sorted(files)).as_numpy_iterator()):
        if limit is not None and i >= limit:
            return
        yield s["frames"].astype(np.float32) / 255.0, s["flows"].astype(np.float32)


def mean_psnr(frames, flows):
    out = warp_sequence(tf.convert_to_tensor(frames[2][None]), tf.stack(flows, 0)[None])[0]
    return float(tf.reduce_mean(psnr(out, frames[3:3 + STEPS])))


def fit(files):
    """Least-squares fits of the per-step gains; returns (median gains, weights of the
    one-flow fit, weights of the two-flow fit), printing R^2 per step."""
    x, y = [], []
    for _, f in septuplets(files):
        if length(f[1]).mean() < MIN_LENGTH:
            continue
        x.append(statistics(f[0], f[1]))
        y.append([np.clip(gain(f[1], f[1 + k]), -0.5, 1.5) for k in range(1, STEPS + 1)])
    x, y = np.array(x), np.array(y)
    one, two = np.c_[x[:, :3], np.ones(len(x))], np.c_[x, np.ones(len(x))]
    weights = [np.linalg.lstsq(a, y, rcond=None)[0] for a in (one, two)]
    r2 = [1 - ((a @ w - y) ** 2).sum(0) / ((y - y.mean(0)) ** 2).sum(0)
          for a, w in zip((one, two), weights)]
    median = np.median(y, 0)
    print(f"{len(y)} training septuplets; median gain per step {np.round(median, 2).tolist()}")
    print(f"R^2 per step, input's flow only: {np.round(r2[0], 3).tolist()}; "
          f"with the flow before it: {np.round(r2[1], 3).tolist()}")
    return median, weights[0], weights[1]


def held_out(files, median, one, two):
    rows = collections.defaultdict(list)
    for frames, f in septuplets(files):
        x = np.array(statistics(f[0], f[1]) + [1.0])
        gains = {"constant velocity": np.ones(STEPS), "training median gains": median,
                 "gains from one flow": np.r_[x[:3], 1.0] @ one, "gains from two flows": x @ two,
                 "true gains": [gain(f[1], f[1 + k]) for k in range(1, STEPS + 1)]}
        for name, g in gains.items():
            rows[name].append(mean_psnr(frames, [f[1] * float(v) for v in g]))
    return rows


def rules(files, limit):
    rows = collections.defaultdict(list)
    for frames, f in septuplets(files, limit):
        rows["constant velocity"].append(mean_psnr(frames, [f[1]] * STEPS))
        for name, rule in RULES.items():
            rows[name].append(mean_psnr(frames, [rule(f[0], f[1], k) for k in range(1, STEPS + 1)]))
    return rows


def report(title, rows):
    cv = np.mean(rows["constant velocity"])
    margins = "; ".join(f"{k} {np.mean(v) - cv:+.2f}" for k, v in rows.items()
                        if k != "constant velocity")
    print(f"{title} ({len(rows['constant velocity'])} septuplets, constant velocity "
          f"{cv:.2f} dB): {margins}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", nargs="+", default=sorted(
        glob.glob("data/cache/train_v5/bbb_*") + glob.glob("data/cache/train_v5/carphone*")
        + glob.glob("data/cache/train_arjs/*")), help="training cache files (the fits)")
    parser.add_argument("--heldout", nargs="+", default=sorted(glob.glob("data/cache/heldout_v6/*")),
                        help="held-out cache files, one video each")
    parser.add_argument("--every", type=int, default=4, help="rules on every n-th bbb file")
    parser.add_argument("--limit", type=int, default=300, help="rules on at most n septuplets a group")
    args = parser.parse_args(argv)
    if not args.train or not args.heldout:
        parser.error("no cache files: make default-weights' data step writes them")
    median, one, two = fit(args.train)
    for path in args.heldout:
        report(f"held out {os.path.basename(path)}: one gain per step", held_out([path], median, one, two))
    groups = {"train bbb": [p for p in args.train if "bbb_" in p][::args.every],
              "train ar.js": [p for p in args.train if "train_arjs" in p]}
    groups.update({f"held out {os.path.basename(p)}": [p] for p in args.heldout})
    for title, files in groups.items():
        if files:
            report(f"{title}: rules", rules(files, args.limit))


if __name__ == "__main__":
    main()
