"""SpiritNet model benchmark: per-step forward latency and peak memory (CPU, 256x448,
batch 1, both presets, both resample modes), DAFI throughput and parameter counts.

    python benchmarks/model.py [--markdown docs/benchmarks.md] [--frames 3]

Each (preset, mode) runs in its own process so that its peak resident memory
(ru_maxrss) is its own. Latency is the compiled forward (``tf.function``, what
serving and export run), ``flow0`` given (DAFR excluded): the time of T frames
minus the time of 1 frame, divided by T - 1, median of repeats.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

HEIGHT, WIDTH = 256, 448


def _median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def measure_one(preset, mode, frames, repeats):
    import numpy as np
    import tensorflow as tf

    from spiritnet_tf.model import SpiritNet
    from spiritnet_tf.ops import warp_backend

    model = SpiritNet.from_preset(preset, resample_from=mode)
    model.build()
    rng = np.random.default_rng(0)
    image = tf.constant(rng.random((1, HEIGHT, WIDTH, 3), np.float32))
    flow0 = tf.constant(rng.normal(size=(1, HEIGHT, WIDTH, 2)).astype(np.float32))

    @tf.function(reduce_retracing=True)
    def forward(num_frames):
        return model({"image": image, "flow0": flow0}, num_frames=num_frames)["frames"]

    for t in (1, frames):  # trace and warm up
        forward(tf.constant(t)).numpy()
    one = _median_time(lambda: forward(tf.constant(1)).numpy(), repeats)
    many = _median_time(lambda: forward(tf.constant(frames)).numpy(), repeats)
    cell = model.cell
    def count(layer):  # trainable parameters, as PyTorch counts them (no BN statistics)
        return int(sum(np.prod(v.shape) for v in layer.trainable_weights))

    params = {
        "total": count(model),
        "depth": count(cell.depth_net),
        "context": count(cell.context),
        "kernels": count(cell.kernels),
        "fill_hole": count(cell.fill_hole),
        "synthesis": count(cell.synthesis),
    }
    return {
        "preset": preset,
        "mode": mode,
        "step_ms": 1000 * (many - one) / (frames - 1),
        "first_frame_ms": 1000 * one,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "params": params,
        "warp": warp_backend(),
    }


def measure_dafi(repeats):
    import numpy as np
    import tensorflow as tf

    from spiritnet_tf.layers.dafi import DAFI

    dafi = DAFI()
    rng = np.random.default_rng(0)
    flow = tf.constant(rng.normal(scale=3.0, size=(1, HEIGHT, WIDTH, 2)).astype(np.float32))
    z = tf.constant(rng.uniform(1e-3, 1.0, size=(1, HEIGHT, WIDTH, 1)).astype(np.float32))
    run = tf.function(lambda: dafi(flow, z)[0])
    run().numpy()
    seconds = _median_time(lambda: run().numpy(), repeats)
    return {"dafi_ms": 1000 * seconds, "dafi_mpix_s": HEIGHT * WIDTH / seconds / 1e6}


def markdown(rows, dafi, frames):
    from report import machine_description, today

    lines = [
        "### Model (SpiritNet forward, CPU)",
        "",
        f"Measured {today()} on {machine_description()} (shared machine: timings are noisy). "
        f"Batch 1, {HEIGHT}x{WIDTH}, compiled forward (`tf.function`) with `flow0` given "
        f"(DAFR excluded), warp backend `{rows[0]['warp']}`. Per-step latency = (time of "
        f"{frames} frames - time of 1 frame) / {frames - 1}, median of repeats; the first "
        "frame also pays padding and set-up. Peak memory = peak resident set of a process "
        "that builds the model and runs these forwards (TensorFlow itself included).",
        "",
        "| preset | resample_from | per-step latency (ms) | first frame (ms) | peak RSS (MiB) |",
        "|---|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['preset']} | {r['mode']} | {r['step_ms']:.0f} | {r['first_frame_ms']:.0f} "
            f"| {r['peak_rss_mib']:.0f} |"
        )
    lines += [
        "",
        f"DAFI (`tf.tensor_scatter_nd_add` splatting, 4 bilinear taps) at 1x{HEIGHT}x{WIDTH}: "
        f"{dafi['dafi_ms']:.1f} ms per call, {dafi['dafi_mpix_s']:.1f} Mpixel/s.",
        "",
        "Trainable parameters (batch-norm statistics excluded, as PyTorch counts them):",
        "",
        "| preset | total | depth | context | kernels | fill-hole | synthesis |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    seen = set()
    for r in rows:
        if r["preset"] in seen:
            continue
        seen.add(r["preset"])
        p = r["params"]
        lines.append(
            f"| {r['preset']} | {p['total']:,} | {p['depth']:,} | {p['context']:,} | "
            f"{p['kernels']:,} | {p['fill_hole']:,} | {p['synthesis']:,} |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", help="write the `model` section of this Markdown file")
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--one", nargs=2, metavar=("PRESET", "MODE"), help=argparse.SUPPRESS)
    parser.add_argument("--dafi", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(*args.one, args.frames, args.repeats)))
        return
    if args.dafi:
        print(json.dumps(measure_dafi(10 * args.repeats)))
        return

    def child(*extra):
        out = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--frames", str(args.frames),
             "--repeats", str(args.repeats), *extra],
            check=True, capture_output=True, text=True,
        ).stdout
        result = json.loads(out.strip().splitlines()[-1])
        print(json.dumps(result), flush=True)
        return result

    rows = [child("--one", p, m) for p in ("small", "paper") for m in ("previous", "input")]
    dafi = child("--dafi")
    text = markdown(rows, dafi, args.frames)
    print(text)
    if args.markdown:
        from report import update_section

        update_section(args.markdown, "model", text)


if __name__ == "__main__":
    main()
