"""Benchmark of the adaptive warp: compiled op vs composite TF, and the bandwidth bound.

Forward and forward+backward at B=4, H=256, W=448 for C=3 (image) and C=67
(image + context features), flows ~ N(0, 3 px) clipped so every target stays
inside the image and random kernels (no pixel takes the copy branch).

The bandwidth bound is the bytes the op must read and write divided by the
bandwidth of a large NumPy copy measured in the same run:
  forward   reads image, flow, kernel; writes output
  backward  reads grad_output, image, flow, kernel; writes grad image, flow, kernel
(`bytes_moved` counts these floats; intermediate traffic is not counted).

    python benchmarks/warp.py [--markdown docs/benchmarks.md] [--repeats N]
                              [--baseline DIR | --baseline-commit REV]

``--baseline DIR`` also times another build of the op (a folder holding its
``_adaptive_warp_ops.so``, e.g. built from the commit before a kernel change), in a
subprocess of the same run (two builds of one op cannot share a process), and adds its
times beside the current build's. ``--baseline-commit REV`` builds that folder first:
the ``custom_ops`` tree of git revision REV, compiled (CPU kernels only) in a temporary
folder with this Python's TensorFlow.
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# This checkout's package (and so its built op), not whichever one the interpreter has
# installed (an editable install of another checkout would time that one's op).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from report import machine_description, today, update_section  # noqa: E402

from spiritnet_tf import ops  # noqa: E402

B, H, W = 4, 256, 448


def make_inputs(channels, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.random((B, H, W, channels), dtype=np.float32)
    flow = rng.normal(0.0, 3.0, size=(B, H, W, 2)).astype(np.float32)
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
    flow[..., 0] = np.clip(xs + flow[..., 0], 0, W - 1) - xs  # targets stay inside
    flow[..., 1] = np.clip(ys + flow[..., 1], 0, H - 1) - ys
    kernel = rng.normal(0.25, 0.1, size=(B, H, W, 16)).astype(np.float32)
    return [tf.constant(a) for a in (image, flow, kernel)]


def copy_bandwidth(nbytes=512 * 2**20, repeats=5):
    """Bytes per second of a NumPy copy (read + write counted)."""
    src = np.ones(nbytes // 4, np.float32)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t)
    return 2 * nbytes / best


def bytes_moved(channels, backward):
    per_pixel = (channels + 2 + 16) + channels  # forward: read 3 inputs, write output
    if backward:  # read grad_out + 3 inputs, write 3 gradients
        per_pixel += (channels + channels + 2 + 16) + (channels + 2 + 16)
    return 4 * B * H * W * per_pixel


def timed(fn, repeats):
    """Median wall time and median process CPU time (all threads) of fn()."""
    fn()  # trace and warm up
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return float(np.median(wall)), float(np.median(cpu))


def build_baseline(revision, folder):
    """Builds the CPU op of git `revision` into `folder`/lib; returns that folder."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    archive = subprocess.run(["git", "-C", root, "archive", revision, "custom_ops"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
    library = os.path.join(folder, "lib")
    subprocess.run(["make", "-s", "--no-print-directory", "-C",
                    os.path.join(folder, "custom_ops"), f"PYTHON={sys.executable}",
                    f"OUT_DIR={library}", "NVCC="], check=True)
    return library


def make_fns(warp, image, flow, kernel):
    forward = tf.function(lambda: warp(image, flow, kernel))

    @tf.function
    def forward_backward():
        with tf.GradientTape() as tape:
            tape.watch([image, flow, kernel])
            out = warp(image, flow, kernel)
        return tape.gradient(out, [image, flow, kernel], output_gradients=out)

    # CPU ops run synchronously: the call returns when the results exist, so the
    # outputs are not copied to NumPy (that copy would be timed too).
    return forward, forward_backward


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--markdown", help="update the `warp` section of this Markdown file")
    parser.add_argument("--baseline", metavar="DIR",
                        help="folder with another build of _adaptive_warp_ops.so to time beside")
    parser.add_argument("--threads", type=int,
                        help="TensorFlow intra-op threads (default: TensorFlow's, one per core)")
    parser.add_argument("--baseline-commit", metavar="REV",
                        help="build the op of this git revision and time it beside")
    parser.add_argument("--baseline-label", help="how the table names the baseline build")
    parser.add_argument("--library", metavar="DIR", help=argparse.SUPPRESS)  # baseline runs
    parser.add_argument("--json", metavar="OUT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)

    if args.baseline and args.baseline_commit:
        parser.error("give --baseline or --baseline-commit, not both")
    baseline = {}
    if args.baseline or args.baseline_commit:
        with tempfile.TemporaryDirectory() as folder:
            if args.baseline_commit:
                revision = subprocess.run(
                    ["git", "rev-parse", "--short", args.baseline_commit], check=True,
                    capture_output=True, text=True,
                    cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
                args.baseline = build_baseline(revision, folder)
                args.baseline_label = args.baseline_label or (
                    f"the build of commit {revision}, made by `--baseline-commit`")
            out = os.path.join(folder, "baseline.json")
            subprocess.run([sys.executable, os.path.abspath(__file__), "--library",
                            os.path.abspath(args.baseline), "--json", out, "--repeats",
                            str(args.repeats)]
                           + (["--threads", str(args.threads)] if args.threads else []),
                           check=True)
            with open(out) as f:
                baseline = {(r[0], r[1]): r[2:] for r in json.load(f)}
    if args.library:
        from spiritnet_tf.ops import warp as warp_module

        library_path = os.path.join(args.library, warp_module._CPU_LIBRARY)
        if not os.path.exists(library_path):
            sys.exit(f"{library_path} does not exist")
        warp_module._library_path = lambda: library_path
    library = ops.load_library()
    if library is None:
        sys.exit("compiled op missing: run `make ops` first")
    bandwidth = copy_bandwidth()
    rows = []
    for channels in (3, 67):
        inputs = make_inputs(channels)
        results = {}
        for name, warp in (
            ("compiled", library.spiritnet_adaptive_warp),
            ("composite", ops.adaptive_warp_composite),
        ):
            fwd, fwd_bwd = make_fns(warp, *inputs)
            results[name] = (timed(fwd, args.repeats), timed(fwd_bwd, args.repeats))
        for i, what in enumerate(("forward", "forward+backward")):
            (compiled, compiled_cpu), (composite, composite_cpu) = (
                results["compiled"][i],
                results["composite"][i],
            )
            bound = bytes_moved(channels, backward=i == 1) / bandwidth
            row = (channels, what, compiled, compiled_cpu, composite, composite / compiled,
                   composite_cpu / compiled_cpu, compiled / bound)
            rows.append(row)
            print(
                f"C={channels:3d} {what:17s} compiled {compiled * 1e3:8.1f} ms  "
                f"(CPU {compiled_cpu * 1e3:8.1f} ms)  composite {composite * 1e3:8.1f} ms  "
                f"speed-up {row[5]:5.1f}x (CPU time {row[6]:5.1f}x)  "
                f"compiled / bandwidth bound {row[7]:5.1f}x",
                flush=True,
            )

    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f)
        return
    lines = [
        "## Adaptive warp (`benchmarks/warp.py`)",
        "",
        f"Machine: {machine_description()}. Date: {today()}. "
        f"B={B}, H={H}, W={W}; "
        f"{f'{args.threads} intra-op thread(s)' if args.threads else 'TensorFlow default threads'}; flows ~ N(0, 3 px) kept inside the image, random kernels; "
        f"median of {args.repeats} runs after one warm-up (`tf.function`, outputs left as tensors). "
        f"NumPy copy bandwidth measured in the same run: {bandwidth / 1e9:.1f} GB/s "
        f"(read + write). CPU kernels' vector path: {ops.cpu_vector_path()} "
        "(`spiritnet_tf.ops.cpu_vector_path()`).",
        "",
        f"Load average when it finished: {os.getloadavg()[0]:.1f} (above 2 means other "
        "work shared the cores: wall times then overstate, CPU-time ratios hold better).",
        "",
        "| C | pass | compiled (ms) | composite (ms) | composite / compiled (wall) | (CPU time) | compiled / bandwidth bound |"
        + (" baseline build (ms) | baseline / compiled (wall) | (CPU time) |"
           " composite / baseline build (its process) |" if baseline else ""),
        "|---|------|---------------|----------------|-----------------------------|------------|----------------------------|"
        + ("---|---|---|---|" if baseline else ""),
    ]
    for channels, what, compiled, compiled_cpu, composite, speedup, cpu_speedup, ratio in rows:
        line = (f"| {channels} | {what} | {compiled * 1e3:.1f} | {composite * 1e3:.1f} | "
                f"{speedup:.1f}x | {cpu_speedup:.1f}x | {ratio:.1f}x |")
        if baseline:
            before, before_cpu, _, before_speedup = baseline[channels, what][:4]
            line += (f" {before * 1e3:.1f} | {before / compiled:.2f}x | "
                     f"{before_cpu / compiled_cpu:.2f}x | {before_speedup:.1f}x |")
        lines.append(line)
    if baseline:
        lines += ["", f"Baseline build: {args.baseline_label or args.baseline}, timed in a "
                      "subprocess of the same run just before the current build."]
    lines += [
        "",
        "Targets: compiled forward+backward at least 5x faster than composite on 2 CPU "
        "cores at C=3; at C=67 at least 17x faster than composite, or within 4x of the "
        "bandwidth bound measured in the same run (issue 17).",
    ]
    if args.markdown:
        update_section(args.markdown, "warp", "\n".join(lines))
        print(f"updated the warp section of {args.markdown}")


if __name__ == "__main__":
    main()
