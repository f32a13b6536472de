"""`spiritnet_tf.animate` benchmark: latency at 256x448, the command line's whole run, and full resolution.

    python benchmarks/animate.py --markdown docs/benchmarks.md
    python benchmarks/animate.py --baseline e9e87cb --markdown docs/benchmarks.md

Each case runs in its own process, pinned to (at most) 2 CPU cores with TensorFlow
limited to 2 threads per pool. Latency: the median (min) wall time of `animate` (image
load, depth, model, full-resolution set-up) over a few runs after two warm-ups (a
shape's second call is the first that runs traced, `SpiritNet.infer`), and of
writing the GIF. Memory: the process's peak resident set size (VmHWM), reset after the
model is loaded and warmed up, so it shows what animating adds; the RSS of the loaded
process is given beside it. Weights: the bundled default if present, otherwise a
randomly initialised small-preset model (same architecture, so the same speed).

``--baseline REV`` measures the code of commit REV beside this checkout's, on the same
inputs in the same run: REV is extracted with ``git archive`` into a temporary folder
(the compiled ops of this checkout copied in), and each case runs once per round for
each side, alternating, in fresh processes of the same Python (PYTHONPATH and the
working folder pointing at that side's code). Cases: ``animate`` of the 448x256 photo
(in-process, warm) and ``fullres.fit_zoom`` on fixed flows (in-process), each in two
processes per side in the order base, this, this, base (so that a drift over the run
does not favour one side), the command line
``spiritnet animate examples/coffee.jpg -o out.gif`` from process start to exit (wall
and CPU time, peak RSS of the process), the same with ``--members 1`` (where that side's
command line has the option), importing ``spiritnet_tf.animation`` and ``spiritnet_tf.model``, and the command line on
a 4000x3000 photo (``-o out.mp4``). The table gives medians over the rounds and the
ratio base / this code; the load average is recorded before and after (the machine is
shared: with a load above the core count, CPU-time ratios are the steadier figure).

``--baseline-packages REQ...`` (with ``--baseline``): the environment before a change of
a pinned dependency: the requirements (e.g. ``ml-dtypes==0.7.0``) are installed with
``pip install --no-deps --target`` into the temporary folder and put ahead of this
environment's packages on the baseline side only.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from report import baseline_tree, pin_two_cores, timings  # this folder is on sys.path (scripts run from it)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
EXAMPLE = os.path.join(ROOT, "examples", "coffee.jpg")
CODE = os.environ.get("SPIRITNET_BENCH_CODE", ROOT)  # the checkout whose code a case runs


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
    pin_two_cores(CODE)
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
    animate(photo, frames, 0, weights=model)  # warm-up (a second one in `timings`)
    rss = _rss_mib("VmRSS")
    exact_peak = _reset_peak()
    anims, cpu = [], []

    def run():
        start = time.process_time()
        anims.append(animate(photo, frames, 0, weights=model))
        cpu.append(time.process_time() - start)

    times = timings(run, repeats)
    with tempfile.TemporaryDirectory() as tmp:
        paths = iter(os.path.join(tmp, f"{i}.gif") for i in range(repeats + 1))  # + warm-up
        save = timings(lambda: anims[0].save(next(paths)), repeats)
    return {
        "weights": weights, "frames": frames, "size": list(anims[0].working_size),
        "animate_s": times, "animate_cpu_s": cpu[1:], "save_gif_s": save, "rss_loaded_mib": rss,
        "peak_mib": _rss_mib("VmHWM"), "peak_reset": exact_peak,
        "mean_flow_px": float(np.linalg.norm(anims[0].flows, axis=-1).mean()),
    }


def case_fit_zoom(repeats, frames):
    """`fullres.fit_zoom` (the "zoom" edges rule: both of its searches) on fixed flows of
    ``frames`` frames at 448x299 for a 600x400 photo, as `animate` of the example asks."""
    import numpy as np

    pin_two_cores(CODE)
    from spiritnet_tf import fullres

    y, x = np.mgrid[0:299, 0:448].astype(np.float32)
    field = np.stack([6.0 + 0.01 * (x - 223.5), 2.0 + 0.01 * (y - 149.0)], -1)  # a pan, spreading
    composed = np.stack([(t + 1) * field for t in range(frames)])[None]  # [1, T, h, w, 2]
    result = fullres.fit_zoom(composed, (400, 600))  # warm-up
    times = timings(lambda: fullres.fit_zoom(composed, (400, 600)), repeats)
    return {"fit_zoom_s": times, "zoom": float(result[0][0]), "motion_scale": float(result[1][0])}


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


def _code():
    """The folder of the spiritnet_tf package this process imported."""
    import spiritnet_tf

    return os.path.dirname(os.path.realpath(spiritnet_tf.__file__))


# Folders of packages put ahead of the environment's for one side's code (--baseline-packages).
_PACKAGES = {}


def _env(code):
    path = [code, *_PACKAGES.get(code, []), os.environ.get("PYTHONPATH", "")]
    return dict(os.environ, SPIRITNET_BENCH_CODE=code, PYTHONPATH=os.pathsep.join(path))


def _run_case(name, args, code=ROOT):
    command = [sys.executable, os.path.abspath(__file__), "--case", name,
               "--repeats", str(args.repeats), "--frames", str(args.frames)]
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=_env(code),
                         cwd=code).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["code"] == os.path.join(os.path.realpath(code), "spiritnet_tf"), result["code"]
    return result


# The `spiritnet` console script (setup.cfg's entry point: `run`, or `main` in code from
# before `run` existed), run by the Python that runs this.
_CONSOLE = ("import sys; from spiritnet_tf import cli; sys.argv[0] = 'spiritnet'; "
            "cli.run() if hasattr(cli, 'run') else sys.exit(cli.main())")


def _process(code, argv):
    """Runs ``python argv`` in ``code`` (its working folder and first on PYTHONPATH):
    {"wall_s" (process start to exit), "cpu_s" (user + system), "peak_mib" (max RSS)}."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, *argv], cwd=code, env=_env(code),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    error = child.stderr.read().decode(errors="replace")
    child.stderr.close()
    if child.returncode:
        raise RuntimeError(f"{argv} in {code} failed ({child.returncode}):\n{error[-3000:]}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_mib": usage.ru_maxrss / 1024}


def _cli(code, photo, output, *options):
    if os.path.exists(output):
        os.remove(output)
    result = _process(code, ["-c", _CONSOLE, "animate", photo, "-o", output, *options])
    assert os.path.getsize(output) > 0
    return result


def _has_members_option(code):
    with open(os.path.join(code, "spiritnet_tf", "animate_cli.py")) as f:
        return '"--members"' in f.read()


def _side_by_side(args, work):
    """{case: {"base": [...], "this": [...]}} of the baseline and this checkout's code."""
    import cv2

    base = baseline_tree(args.baseline, os.path.join(work, "base"))
    if args.baseline_packages:
        target = os.path.join(work, "base-packages")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        "--target", target, *args.baseline_packages], check=True)
        _PACKAGES[base] = [target]
    sides = {"base": base, "this": ROOT}
    big = os.path.join(work, "big.jpg")  # the example photo at 4000x3000
    photo = cv2.imread(EXAMPLE)
    cv2.imwrite(big, cv2.resize(photo, (4000, 3000), interpolation=cv2.INTER_CUBIC),
                [cv2.IMWRITE_JPEG_QUALITY, 95])
    results = {case: {"base": [], "this": []}
               for case in ("latency", "fit_zoom", "cli", "cli_one", "import", "big")}
    order = ("base", "this")
    for side in order + order[::-1]:  # base, this, this, base: a drift over the run cancels
        results["latency"][side].append(_run_case("latency", args, sides[side]))
        results["fit_zoom"][side].append(_run_case("fit_zoom", args, sides[side]))
    for round_ in range(args.rounds):
        for side in order if round_ % 2 == 0 else order[::-1]:  # alternate who goes first
            code = sides[side]
            results["cli"][side].append(_cli(code, EXAMPLE, os.path.join(work, f"{side}.gif")))
            if _has_members_option(code):  # not in code from before --members
                results["cli_one"][side].append(_cli(code, EXAMPLE, os.path.join(work, f"{side}-1.gif"),
                                                     "--members", "1"))
            results["import"][side].append(_process(code, [
                "-c", "import spiritnet_tf.animation, spiritnet_tf.model"]))
    for side in order:
        results["big"][side].append(_cli(sides[side], big, os.path.join(work, f"{side}.mp4")))
    return results


def _comparison_lines(args, results):
    import numpy as np

    def cell(values, unit="ms"):
        if unit == "MiB":
            return f"{max(values):,.0f} MiB"
        return f"{1000 * np.median(values):,.0f} ms ({1000 * np.min(values):,.0f} ms)"

    def row(what, key, case, unit="ms"):
        values = {side: [r[key] for r in results[case][side]] for side in ("base", "this")}
        if case in ("latency", "fit_zoom"):  # two processes per side, their repeats together
            values = {side: [v for r in results[case][side] for v in r[key]]
                      for side in ("base", "this")}
        if not all(values.values()):  # a case one side's code cannot run (its CLI lacks --members)
            cells = [cell(v, unit) if v else "n/a (no `--members` option)" for v in values.values()]
            return f"| {what} | {cells[0]} | {cells[1]} | n/a |"
        if unit == "MiB":
            ratio = max(values["this"]) / max(values["base"])
            text = f"{ratio:.2f}x of the base"
        else:
            ratio = np.median(values["base"]) / np.median(values["this"])
            text = f"{ratio:.2f}x faster"
        return f"| {what} | {cell(values['base'], unit)} | {cell(values['this'], unit)} | {text} |"

    lat = results["latency"]["this"][0]
    h, w = lat["size"]
    n, rounds = 2 * args.repeats, args.rounds
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return [
        f"Side by side, in one run: base commit `{args.baseline}` and this checkout "
        f"(`{head}`{' with uncommitted changes' if dirty else ''}), same Python, same inputs, "
        + (f"the base with {', '.join(f'`{r}`' for r in args.baseline_packages)} ahead of this "
           "environment's packages (the environment before the change), "
           if args.baseline_packages else "") +
        f"each case in fresh processes (alternating sides, {rounds} rounds for the command "
        "lines and the import). Figures: median (min); peak RSS: the largest of the runs.",
        "",
        "| What | base commit | this code | base / this |",
        "|---|---|---|---|",
        row(f"`animate`, {w}x{h} photo = working size, {args.frames} frames, warm: wall, median (min) of {n}",
            "animate_s", "latency"),
        row(f"`animate`, {w}x{h} photo, {args.frames} frames, warm: CPU time, median (min) of {n}",
            "animate_cpu_s", "latency"),
        row(f"`fullres.fit_zoom` (edges \"zoom\": both searches), flows of {args.frames} frames at "
            f"448x299 for a 600x400 photo: wall, median (min) of {n}", "fit_zoom_s", "fit_zoom"),
        row(f"`spiritnet animate examples/coffee.jpg -o out.gif` (600x400, {args.frames} frames), "
            f"process start to exit: wall, median (min) of {rounds}", "wall_s", "cli"),
        row(f"`spiritnet animate examples/coffee.jpg -o out.gif`: CPU time (user + system), of {rounds}",
            "cpu_s", "cli"),
        row("`spiritnet animate examples/coffee.jpg -o out.gif`: peak RSS", "peak_mib", "cli", "MiB"),
        row(f"`spiritnet animate examples/coffee.jpg -o out.gif --members 1` (the first member "
            f"alone), process start to exit: wall, median (min) of {rounds}", "wall_s", "cli_one"),
        row(f"`spiritnet animate ... --members 1`: CPU time (user + system), of {rounds}",
            "cpu_s", "cli_one"),
        row(f"`import spiritnet_tf.animation, spiritnet_tf.model` (a new process): wall, of {rounds}",
            "wall_s", "import"),
        row(f"`import spiritnet_tf.animation, spiritnet_tf.model`: CPU time, of {rounds}",
            "cpu_s", "import"),
        row("`spiritnet animate big.jpg -o out.mp4`, a 4000x3000 photo: wall (one run)", "wall_s", "big"),
        row("`spiritnet animate big.jpg -o out.mp4`, 4000x3000: CPU time", "cpu_s", "big"),
        row("`spiritnet animate big.jpg -o out.mp4`, 4000x3000: peak RSS of the process",
            "peak_mib", "big", "MiB"),
        "",
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", help="Markdown file whose `animate` section to rewrite")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--baseline", metavar="REV",
                        help="also measure commit REV (git archive of this repository) side by side")
    parser.add_argument("--baseline-packages", nargs="+", metavar="REQ",
                        help="with --baseline: pip requirements installed for the baseline "
                             "side only, ahead of this environment's (e.g. ml-dtypes==0.7.0)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="runs per side of the command-line and import cases (--baseline)")
    parser.add_argument("--case", choices=("latency", "fit_zoom", "fullres"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_packages and not args.baseline:
        parser.error("--baseline-packages needs --baseline")
    if args.case == "latency":
        print(json.dumps({**case_latency(args.repeats, args.frames), "code": _code()}))
        return
    if args.case == "fit_zoom":
        print(json.dumps({**case_fit_zoom(args.repeats, args.frames), "code": _code()}))
        return
    if args.case == "fullres":
        print(json.dumps({**case_fullres(args.frames, 448), "code": _code()}))
        return

    import numpy as np

    sys.path.insert(0, HERE)
    from report import machine_description, today, update_section

    load_before = os.getloadavg()
    comparison = []
    if args.baseline:
        with tempfile.TemporaryDirectory() as work:
            results = _side_by_side(args, work)
        comparison = _comparison_lines(args, results)
        lat = results["latency"]["this"][0]
    else:
        lat = _run_case("latency", args)
    full = _run_case("fullres", args)
    load_after = os.getloadavg()
    load = lambda values: "/".join(f"{v:.1f}" for v in values)  # noqa: E731
    ms = lambda values: f"{1000 * np.median(values):.0f} ms ({1000 * np.min(values):.0f} ms)"  # noqa: E731
    h, w = lat["size"]
    fh, fw = full["working_size"]
    peak_note = "" if lat["peak_reset"] else " (peak since process start: VmHWM could not be reset)"
    lines = [
        "## Animate (`benchmarks/animate.py`)",
        "",
        f"Measured {today()} on {machine_description()}; the in-process cases pinned to 2 "
        "cores, TensorFlow 2 threads per pool; the command lines as a user runs them. Load "
        f"average (1/5/15 min) at the start: {load(load_before)}, at the end: {load(load_after)} "
        "(a shared machine: with a load above 2 wall times overstate, CPU-time ratios hold better).",
        f"Weights: {lat['weights']}. {args.frames} generated frames, seed 0.",
        "",
        *comparison,
        "This code alone:",
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
