"""`spiritnet_tf.animate` benchmark: latency at 256x448 and a full-resolution 3000x2000 run.

    python benchmarks/animate.py --markdown docs/benchmarks.md

Each case runs in its own process, pinned to (at most) 2 CPU cores with TensorFlow
limited to 2 threads per pool. Latency: the median (min) wall time of `animate` (image
load, depth, model, full-resolution set-up) over a few runs after one warm-up, and of
writing the GIF. Memory: the process's peak resident set size (VmHWM), reset after the
model is loaded and warmed up, so it shows what animating adds; the RSS of the loaded
process is given beside it. Weights: the bundled default if present, otherwise a
randomly initialised small-preset model (same architecture, so the same speed).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from report import timings  # this folder is on sys.path (scripts run from it)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
EXAMPLE = os.path.join(ROOT, "examples", "coffee.jpg")


def _rss_mib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def _setup():
    cores = sorted(os.sched_getaffinity(0))[:2]
    os.sched_setaffinity(0, cores)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(2)
    sys.path.insert(0, ROOT)
    from spiritnet_tf.animation import DEFAULT_WEIGHTS, load_model
    from spiritnet_tf.model import SpiritNet

    if os.path.isfile(DEFAULT_WEIGHTS):
        return load_model(None), "bundled default (small preset)"
    model = SpiritNet.from_preset("small")
    model.build()
    return model, "randomly initialised small preset (the bundled weights are missing)"


def case_latency(repeats, frames):
    import cv2
    import numpy as np

    from spiritnet_tf.animation import animate
    from spiritnet_tf.io import load_image

    model, weights = _setup()
    photo = cv2.resize(load_image(EXAMPLE), (448, 256), interpolation=cv2.INTER_AREA)
    animate(photo, frames, 0, weights=model)  # warm-up
    rss = _rss_mib("VmRSS")
    exact_peak = _reset_peak()
    anims = []
    times = timings(lambda: anims.append(animate(photo, frames, 0, weights=model)), repeats)
    with tempfile.TemporaryDirectory() as tmp:
        paths = iter(os.path.join(tmp, f"{i}.gif") for i in range(repeats + 1))  # + warm-up
        save = timings(lambda: anims[0].save(next(paths)), repeats)
    return {
        "weights": weights, "frames": frames, "size": list(anims[0].working_size),
        "animate_s": times, "save_gif_s": save, "rss_loaded_mib": rss,
        "peak_mib": _rss_mib("VmHWM"), "peak_reset": exact_peak,
        "mean_flow_px": float(np.linalg.norm(anims[0].flows, axis=-1).mean()),
    }


def case_fullres(frames, working_side):
    import cv2

    from spiritnet_tf.animation import animate
    from spiritnet_tf.io import load_image

    model, weights = _setup()
    warm = cv2.resize(load_image(EXAMPLE), (448, 299), interpolation=cv2.INTER_AREA)
    animate(warm, 1, 0, weights=model, working_side=working_side)  # warm-up
    photo = cv2.resize(load_image(EXAMPLE), (3000, 2000), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    rss = _rss_mib("VmRSS")
    exact_peak = _reset_peak()
    start = time.perf_counter()
    anim = animate(photo, frames, 0, weights=model, working_side=working_side)
    model_s = time.perf_counter() - start
    start = time.perf_counter()
    for frame in anim.iter_frames():
        assert frame.shape == (2000, 3000, 3)
    frames_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        anim.save(os.path.join(tmp, "full.mp4"))
        mp4_s = time.perf_counter() - start
    return {
        "weights": weights, "frames": frames, "working_size": list(anim.working_size),
        "animate_s": model_s, "frames_s": frames_s, "save_mp4_s": mp4_s,
        "rss_loaded_mib": rss, "peak_mib": _rss_mib("VmHWM"), "peak_reset": exact_peak,
        "photo_mib": photo.nbytes / 2**20,
    }


def _run_case(name, args):
    command = [sys.executable, os.path.abspath(__file__), "--case", name,
               "--repeats", str(args.repeats), "--frames", str(args.frames)]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", help="Markdown file whose `animate` section to rewrite")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--case", choices=("latency", "fullres"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case == "latency":
        print(json.dumps(case_latency(args.repeats, args.frames)))
        return
    if args.case == "fullres":
        print(json.dumps(case_fullres(args.frames, 448)))
        return

    import numpy as np

    sys.path.insert(0, HERE)
    from report import machine_description, today, update_section

    lat = _run_case("latency", args)
    full = _run_case("fullres", args)
    ms = lambda values: f"{1000 * np.median(values):.0f} ms ({1000 * np.min(values):.0f} ms)"  # noqa: E731
    h, w = lat["size"]
    fh, fw = full["working_size"]
    peak_note = "" if lat["peak_reset"] else " (peak since process start: VmHWM could not be reset)"
    lines = [
        "## Animate (`benchmarks/animate.py`)",
        "",
        f"Measured {today()} on {machine_description()}; each case pinned to 2 cores, "
        f"TensorFlow 2 threads per pool. Load average at the end: {os.getloadavg()[0]:.1f} "
        "(a shared machine gives noisy timings).",
        f"Weights: {lat['weights']}. Eager model call, {args.frames} generated frames, seed 0.",
        "",
        "| What | Figure |",
        "|---|---|",
        f"| `animate`, {w}x{h} photo = working size, {args.frames} frames: median (min) of {args.repeats} | {ms(lat['animate_s'])} |",
        f"| `Animation.save` to GIF ({args.frames + 1} frames {w}x{h}) | {ms(lat['save_gif_s'])} |",
        f"| Peak RSS during those runs / RSS with the model loaded | {lat['peak_mib']:.0f} MiB / {lat['rss_loaded_mib']:.0f} MiB{peak_note} |",
        f"| 3000x2000 photo, `animate` (model at {fw}x{fh}, {args.frames} frames) | {1000 * full['animate_s']:.0f} ms |",
        f"| 3000x2000, compute all {args.frames + 1} full-resolution frames (streamed) | {1000 * full['frames_s']:.0f} ms |",
        f"| 3000x2000, `Animation.save` to MP4 (H.264) | {1000 * full['save_mp4_s']:.0f} ms |",
        f"| 3000x2000, peak RSS / RSS with the model loaded | {full['peak_mib']:.0f} MiB / {full['rss_loaded_mib']:.0f} MiB |",
        "",
        f"At 3000x2000 one float32 frame is {full['photo_mib']:.0f} MiB: frames are computed one at a "
        "time while they are written, so the peak grows with a few full-size arrays, not with the "
        "number of frames. Training steps/s: see the training benchmark.",
    ]
    markdown = "\n".join(lines)
    print(markdown)
    if args.markdown:
        update_section(args.markdown, "animate", markdown)


if __name__ == "__main__":
    main()
