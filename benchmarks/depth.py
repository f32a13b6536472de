"""MegaDepth benchmark: parameter counts of both presets and CPU forward latency.

    python benchmarks/depth.py --markdown docs/benchmarks.md

Latency is the median wall time of a compiled (tf.function) inference forward pass of
one image, after one warm-up call.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.python.profiler import model_analyzer, option_builder  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import machine_description, today, update_section  # noqa: E402
from spiritnet_tf.depth import PRESETS, MegaDepth  # noqa: E402


def measure(preset, height, width, repeats):
    model = MegaDepth.from_preset(preset)
    model.build((None, None, None, 3))
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    forward = tf.function(lambda x: model(x, training=False))
    images = tf.random.uniform((1, height, width, 3), seed=0)
    graph = forward.get_concrete_function(images).graph
    options = option_builder.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    flops = model_analyzer.profile(graph, options=options).total_float_ops
    forward(images).numpy()  # trace and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        forward(images).numpy()
        times.append(time.perf_counter() - start)
    return {
        "preset": preset,
        "width": PRESETS[preset]["width_multiplier"],
        "trainable": trainable,
        "total": model.count_params(),
        "gflop": flops / 1e9,
        "median_ms": 1000 * float(np.median(times)),
        "min_ms": 1000 * float(np.min(times)),
        "repeats": repeats,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", help="Markdown file whose `depth` section to rewrite")
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=448)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    rows = [measure(p, args.height, args.width, args.repeats) for p in ("small", "paper")]
    load = os.getloadavg()[0]
    lines = [
        "## Depth (MegaDepth hourglass)",
        "",
        f"Measured {today()} on {machine_description()}.",
        f"Forward pass, batch 1, {args.height}x{args.width}, inference mode, `tf.function`, "
        f"CPU; median (min) of {args.repeats} runs after one warm-up. "
        "Parameters: trainable (as PyTorch counts them) and total including batch-norm statistics; "
        "GFLOP: TensorFlow's profiler count for the forward graph (multiply-add = 2).",
        f"Load average at the end of the run: {load:.1f} (a shared machine gives noisy timings).",
        "",
        "| preset | width multiplier | parameters | with BN statistics | GFLOP | forward median (min) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['preset']} | {r['width']} | {r['trainable']:,} | {r['total']:,} | {r['gflop']:.1f} | "
            f"{r['median_ms']:.0f} ms ({r['min_ms']:.0f} ms) |"
        )
    markdown = "\n".join(lines)
    print(markdown)
    if args.markdown:
        update_section(args.markdown, "depth", markdown)


if __name__ == "__main__":
    main()
