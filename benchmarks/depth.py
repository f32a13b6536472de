"""MegaDepth benchmark: parameter counts, CPU forward latency and depth training throughput.

    python benchmarks/depth.py --markdown docs/benchmarks.md

Rows: both MegaDepth presets, and the depth net the SpiritNet "small" preset really
builds (its ``depth_width``), at the working size 256x448 (long side 448, the default of
`spiritnet_tf.animate`). Latency is the median wall time of a compiled (tf.function)
inference forward pass of one image, after one warm-up call. Training throughput: the
depth pre-training stage (`spiritnet_tf.training.depth.pretrain_depth`, relative-depth
loss, procedural cue scenes rendered on the fly, batch 8 at 64x96 as in
configs/depth_pretrain_cues.py) timed for two step counts; the difference divided by
the extra steps is one step's time without tracing and set-up.
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


def measure(preset, height, width, repeats, label=None, **options):
    model = MegaDepth.from_preset(preset, **options)
    model.build((None, None, None, 3))
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    forward = tf.function(lambda x: model(x, training=False))
    images = tf.random.uniform((1, height, width, 3), seed=0)
    graph = forward.get_concrete_function(images).graph
    profile = option_builder.ProfileOptionBuilder.float_operation()
    profile["output"] = "none"
    flops = model_analyzer.profile(graph, options=profile).total_float_ops
    forward(images).numpy()  # trace and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        forward(images).numpy()
        times.append(time.perf_counter() - start)
    return {
        "preset": label or preset,
        "width": options.get("width_multiplier", PRESETS[preset]["width_multiplier"]),
        "trainable": trainable,
        "total": model.count_params(),
        "gflop": flops / 1e9,
        "median_ms": 1000 * float(np.median(times)),
        "min_ms": 1000 * float(np.min(times)),
        "repeats": repeats,
    }


def training_throughput(config, short=5, long=85, batch=8, height=64, width=96):
    """Seconds per depth pre-training step and images per second of the depth net of
    ``config`` (a `SpiritNetConfig`; module docstring)."""
    from spiritnet_tf.layers.cell import depth_net_for
    from spiritnet_tf.training.depth import DepthPretraining, pretrain_depth

    elapsed = {}
    for steps in (short, long):
        net = depth_net_for(config)
        options = DepthPretraining(steps=steps, batch_size=batch, count=64, height=height,
                                   width=width, scenes="cues", loss="relative")
        start = time.perf_counter()
        pretrain_depth(net, options, progress=False)
        elapsed[steps] = time.perf_counter() - start
    per_step = (elapsed[long] - elapsed[short]) / (long - short)
    return {"per_step_s": per_step, "images_per_s": batch / per_step, "batch": batch,
            "height": height, "width": width, "depth_width": config.depth_width}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", help="Markdown file whose `depth` section to rewrite")
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=448)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from spiritnet_tf.model import SpiritNet

    config = SpiritNet.from_preset("small").config
    depth_width = config.depth_width
    rows = [measure(p, args.height, args.width, args.repeats) for p in ("small", "paper")]
    if depth_width is not None:
        rows.insert(0, measure("small", args.height, args.width, args.repeats,
                               label='SpiritNet "small" depth net', width_multiplier=depth_width))
    train = training_throughput(config)
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
    lines += [
        "",
        f"Depth training throughput (SpiritNet \"small\" depth net, width {train['depth_width']}): "
        f"batch {train['batch']} at {train['height']}x{train['width']}, relative-depth loss, "
        f"procedural cue scenes rendered on the fly: {train['per_step_s']:.2f} s per step, "
        f"{train['images_per_s']:.1f} images/s.",
    ]
    markdown = "\n".join(lines)
    print(markdown)
    if args.markdown:
        update_section(args.markdown, "depth", markdown)


if __name__ == "__main__":
    main()
