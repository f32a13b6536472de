"""How much of constant velocity's PSNR comes from blur.

docs/training.md, "What constant velocity's score is made of", quotes its figures.

    python scripts/baseline_variants.py [--data data/heldout_videos_v4] [--size 128x224]
        [--cache-dir data/cache/heldout_v4] [--gains 0.95,0.91,0.87,0.82,0.80]

Prediction mode on a video folder, as `spiritnet evaluate` cuts it, for variants of the
constant-velocity baseline (`spiritnet_tf.evaluation.baselines`) that differ only in how
the frames are resampled or how long the flows are:

* ``cv (previous)``: the gate's baseline: each frame is the previous one warped by flow0,
  so every step resamples again and the frames blur;
* ``cv (input, composed)``: flow0 composed with itself back to the input, one warp of the
  input per frame (the oracle's resampling, which models with ``resample_from="input"``
  use);
* ``cv (input, t*flow0)``: the input warped by t x flow0, sharp;
* ``shrunk cv``: flow0 scaled at step t by ``--gains`` (e.g. the training clips' median
  least-squares gain of the teacher's F_{t+1} on F_1), resampled both ways: what a
  global, content-blind shortening of the flow gives.

``--gains-of CACHE_DIR`` prints instead the median, over the septuplets cached there
(`spiritnet_tf.data.records`), of the least-squares gain of the teacher's F_{t+1} on
F_1, t = 1..5: how far later flows keep the first one's length and direction.
"""

import argparse
import glob
import os

import numpy as np
import tensorflow as tf

from spiritnet_tf.data.records import read_septuplets
from spiritnet_tf.evaluation import evaluate, markdown_table
from spiritnet_tf.evaluation.baselines import constant_velocity, oracle, warp_sequence
from spiritnet_tf.evaluation.metrics import bilinear_warp
from spiritnet_tf.training.cli import parse_size
from spiritnet_tf.training.data import load_source, parse_source_spec
from spiritnet_tf.training.run import evaluation_samples


def composed(image, flows):
    """Each flow composed back to the input (the oracle's resampling)."""
    return oracle(image, flows[:, 0], flows.shape[1], teacher_flows=flows)


def variants(gains):
    def steady(flow0, num_frames):
        return tf.repeat(flow0[:, None], num_frames, axis=1)

    def shrunk(flow0, num_frames):
        return tf.stack([flow0 * gains[min(t, len(gains) - 1)] for t in range(num_frames)], 1)

    def linear(image, flow0, num_frames, *, teacher_flows=None):
        frames = [bilinear_warp(image, flow0 * (t + 1)) for t in range(num_frames)]
        return {"frames": tf.stack(frames, 1), "flows": steady(flow0, num_frames)}

    def previous(make):
        def predict(image, flow0, num_frames, *, teacher_flows=None):
            flows = make(flow0, num_frames)
            return {"frames": warp_sequence(image, flows), "flows": flows}
        return predict

    def from_input(make):
        def predict(image, flow0, num_frames, *, teacher_flows=None):
            return composed(image, make(flow0, num_frames))
        return predict

    return {
        "cv (previous)": constant_velocity,
        "cv (input, composed)": from_input(steady),
        "cv (input, t*flow0)": linear,
        "shrunk cv (previous)": previous(shrunk),
        "shrunk cv (input, composed)": from_input(shrunk),
    }


def flow_gains(cache_dir):
    """Median over the septuplets in ``cache_dir`` of <F_1, F_t> / <F_1, F_1>, t = 2..6."""
    files = sorted(glob.glob(os.path.join(cache_dir, "*.tfrecord")))
    if not files:
        raise SystemExit(f"{cache_dir}: no .tfrecord files")
    gains = []
    for sample in read_septuplets(files):
        flows = sample["flows"].numpy()
        first = flows[0]
        gains.append([(first * flows[t]).sum() / ((first * first).sum() + 1e-6)
                      for t in range(1, flows.shape[0])])
    return len(gains), np.median(np.array(gains), axis=0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/heldout_videos_v4")
    parser.add_argument("--size", default="128x224")
    parser.add_argument("--cache-dir", default="data/cache/heldout_v4")
    parser.add_argument("--gains", default="0.95,0.91,0.87,0.82,0.80")
    parser.add_argument("--gains-of", metavar="CACHE_DIR")
    args = parser.parse_args(argv)
    if args.gains_of:
        count, gains = flow_gains(args.gains_of)
        print(f"{count} septuplets; median gain of F_t+1 on F_1, t = 1..5: "
              + ", ".join(f"{g:.2f}" for g in gains))
        return
    height, width = parse_size(args.size)
    gains = [float(g) for g in args.gains.split(",")]
    source = parse_source_spec(args.data, height=height, width=width, seed=0,
                               cache_dir=args.cache_dir, split="test", take=None)
    septuplets, _ = load_source(source, progress=False)
    samples = evaluation_samples(septuplets, "prediction", 4, None, 0)
    print(markdown_table(evaluate(variants(gains), samples, "prediction")))


if __name__ == "__main__":
    main()
