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

``--baseline REV`` also times the forward pass of the code of commit REV (``git archive``,
this checkout's compiled ops) beside this checkout's, each in fresh processes, sides
alternating: eager (what `animate` runs per frame), compiled, and the first compiled call
(tracing included), for the two small nets.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.python.profiler import model_analyzer, option_builder  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import baseline_tree, machine_description, timings, today, update_section  # noqa: E402
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
    times = timings(lambda: forward(images).numpy(), repeats)  # after a warm-up call
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


def latency(preset, height, width, repeats, **options):
    """Milliseconds of one image's inference forward pass: eager and compiled (medians of
    ``repeats`` after a warm-up), and the first compiled call (tracing and set-up included)."""
    model = MegaDepth.from_preset(preset, **options)
    model.build((None, None, None, 3))
    images = tf.random.uniform((1, height, width, 3), seed=0)
    forward = tf.function(lambda x: model(x, training=False))
    start = time.perf_counter()
    forward(images).numpy()
    first = time.perf_counter() - start
    compiled = timings(lambda: forward(images).numpy(), repeats)
    eager = timings(lambda: model(images, training=False).numpy(), repeats)
    return {"first_ms": 1000 * first, "compiled_ms": 1000 * float(np.median(compiled)),
            "eager_ms": 1000 * float(np.median(eager))}


SIDE_NETS = (('SpiritNet "small" depth net (width 0.125)', 0.125), ("width 0.25 (the cue-trained net)", 0.25))


def side_by_side(revision, height, width, repeats, rounds=3):
    """Markdown: `latency` of the two small nets for commit ``revision`` and this checkout,
    each case in a fresh process (the package imported from each tree), sides alternating;
    medians over ``rounds`` processes."""
    results = {}
    with tempfile.TemporaryDirectory() as work:
        trees = {"base": baseline_tree(revision, os.path.join(work, "base")),
                 "this": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
        for _ in range(rounds):
            for side, tree in trees.items():
                for label, w in SIDE_NETS:
                    env = dict(os.environ, PYTHONPATH=tree)
                    out = subprocess.run(
                        [sys.executable, os.path.abspath(__file__), "--latency-json", str(w),
                         "--height", str(height), "--width", str(width), "--repeats", str(repeats)],
                        check=True, capture_output=True, text=True, env=env, cwd=tree).stdout
                    results.setdefault((label, side), []).append(json.loads(out.strip().splitlines()[-1]))
    lines = [
        "",
        f"Side by side with commit `{revision}` (the code before the change), {height}x{width}, "
        f"batch 1, inference mode; each figure the median over {rounds} fresh processes "
        f"(sides alternating) of the median of {repeats} calls after a warm-up; load average "
        f"at the end {os.getloadavg()[0]:.1f}.",
        "",
        "| net | figure | base | this code | base / this |",
        "|---|---|---|---|---|",
    ]
    for label, _ in SIDE_NETS:
        for key, name in (("eager_ms", "eager forward"), ("compiled_ms", "compiled forward"),
                          ("first_ms", "first compiled call (tracing included)")):
            base, this = (float(np.median([r[key] for r in results[(label, side)]]))
                          for side in ("base", "this"))
            lines.append(f"| {label} | {name} | {base:,.0f} ms | {this:,.0f} ms | {base / this:.2f}x |")
    return lines


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
    parser.add_argument("--baseline", metavar="REV",
                        help="also time the forward pass of commit REV side by side")
    parser.add_argument("--latency-json", type=float, metavar="WIDTH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.latency_json:  # one side-by-side case, in its own process
        print(json.dumps(latency("small", args.height, args.width, args.repeats,
                                 width_multiplier=args.latency_json)))
        return

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
    if args.baseline:
        lines += side_by_side(args.baseline, args.height, args.width, args.repeats)
    markdown = "\n".join(lines)
    print(markdown)
    if args.markdown:
        update_section(args.markdown, "depth", markdown)


if __name__ == "__main__":
    main()
