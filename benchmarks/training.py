"""Training speed of the small preset: graph trace time and steps/s (``training`` section).

    python benchmarks/training.py [--markdown docs/benchmarks.md] [--size 128] [--batch 2]

Times `keras.Model.fit` on synthetic scenes through the same pipeline as
``spiritnet train`` (prediction mode, 5 generated frames, random VGG-19 for the style
loss): the first step (tracing and compiling the unrolled recurrence) separately
from the steps after it, for each variant in the same run, one after the other:
"every step" (the depth net on every generated frame, as the paper and the bundled
weights), "once" (``depth_every_step: false``: the depth net once per sample, z
carried by the flow) and "once, no depth loss" (also ``depth_weight: 0``: no
supervised depth pass over the real frames), which shows where a step's time goes.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.report import machine_description, today, update_section  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", default=None, help="rewrite this file's training section")
    parser.add_argument("--size", type=int, default=128, help="square crop side (default 128)")
    parser.add_argument("--batch", type=int, default=2, help="batch size (default 2)")
    parser.add_argument("--frames", type=int, default=5, help="generated frames (default 5)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--variant", action="append", default=None,
                        help="a variant to run, by name (repeatable; default: all but the "
                             "pretrained and frozen ones, which the retraining recipes use)")
    args = parser.parse_args(argv)

    import keras

    from spiritnet_tf.training import parse_config, septuplet_dataset, training_samples
    from spiritnet_tf.training.run import make_strategy

    size = args.size
    variants = {
        "every step": ({}, {}),
        "once": ({"depth_every_step": False}, {}),
        "once, no depth loss": ({"depth_every_step": False}, {"depth_weight": 0.0}),
        # configs/default_weights_v4.json: a pretrained depth net (inference mode, 1e-7).
        "once, pretrained depth net": ({"depth_every_step": False, "pretrained_depth": True}, {}),
        # The same net frozen (rate 0): no gradient for it, no backward pass through it.
        "once, frozen depth net": ({"depth_every_step": False, "pretrained_depth": True,
                                    "depth_learning_rate": 0.0}, {}),
        # The motion recipes from configs/default_weights_v16.json on: the frozen net, no
        # supervised depth term (depth_weight 0) and no style loss (its VGG-19 would
        # otherwise take most of the step).
        "once, frozen depth net, no depth loss": (
            {"depth_every_step": False, "pretrained_depth": True, "depth_learning_rate": 0.0},
            {"depth_weight": 0.0, "style_weight": 0.0}),
    }
    chosen = args.variant or [name for name in variants
                              if "pretrained" not in name and "frozen" not in name]
    unknown = sorted(set(chosen) - set(variants))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {sorted(variants)}")
    variants = {name: variants[name] for name in chosen}
    rows = []
    for name, (model_options, loss_options) in variants.items():
        config = parse_config({
            "preset": args.preset,
            "train_data": [{"type": "synthetic", "count": 8, "height": size, "width": size}],
            "crop": [size, size], "batch_size": args.batch, "num_frames": args.frames,
            "model": model_options, "loss": {"vgg_weights": None, **loss_options},
        })
        septuplets, _ = septuplet_dataset(config.sources("train_data"), progress=False)
        data = training_samples(septuplets, config)
        keras.utils.set_random_seed(0)
        with make_strategy("default").scope():
            from spiritnet_tf.model import SpiritNet

            model = SpiritNet(config.model_config())
            model.compile(loss_config=config.loss_config())
        start = time.perf_counter()
        model.fit(data, epochs=1, steps_per_epoch=1, verbose=0, shuffle=False)
        first = time.perf_counter() - start
        start, cpu = time.perf_counter(), time.process_time()
        model.fit(data, epochs=1, steps_per_epoch=args.steps, verbose=0, shuffle=False)
        per_step = (time.perf_counter() - start) / args.steps
        cpu_step = (time.process_time() - cpu) / args.steps
        rows.append((name, first, per_step, cpu_step))
        print(f"{name}: first step {first:.1f} s, then {per_step * 1000:.0f} ms/step "
              f"({cpu_step * 1000:.0f} ms CPU)", flush=True)
    load = os.getloadavg()[0]
    base, base_cpu = rows[0][2], rows[0][3]
    lines = [
        "## Training (`benchmarks/training.py`)",
        "",
        f"Measured {today()} on {machine_description()}. Load average at the end: {load:.1f} "
        "(a shared machine gives noisy timings).",
        "",
        f"`model.fit` on synthetic scenes, preset `{args.preset}`, {size}x{size} crops, batch "
        f"{args.batch}, {args.frames} generated frames, prediction mode, all loss terms "
        "(random VGG-19), default strategy, CPU; the variants one after the other in one "
        f"run, {args.steps} timed steps each after the first.",
        "",
        "| Depth net | First step (trace + compile) | Later steps | samples/s | vs every step "
        "| CPU time per step | vs every step (CPU) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, first, per_step, cpu_step in rows:
        lines.append(f"| {name} | {first:.1f} s | {per_step * 1000:.0f} ms/step | "
                     f"{args.batch / per_step:.2f} | {base / per_step:.2f}x | "
                     f"{cpu_step * 1000:.0f} ms | {base_cpu / cpu_step:.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        update_section(args.markdown, "training", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
