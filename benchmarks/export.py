"""Export benchmark: one animation (256x256, 6 frames) in every exported form, and sizes.

    python benchmarks/export.py --markdown docs/benchmarks.md [--repeats 3] [--size 256] [--frames 6]
        [--baseline COMMIT] [--no-onnx]

The same model (the bundled default weights if present, otherwise a randomly
initialised small preset, seed 0) is exported as a SavedModel (`export_savedmodel`,
working side = the picture's side, so every form runs the model at the same size), a
TFLite flatbuffer in float32 and with float16 weights, and an ONNX model. Then one
animation of the example photo (resized to SIZE x SIZE) with the same flow0
(`initial_flow`, seed 0) is timed in each runtime:

* Keras: the model called in a `tf.function` with image and flow0, compiled warp op
  (the library's default backend) and composite warp (the graph every export holds: the
  reference of TFLite's and ONNX's ratios), and with the composite warp and no flow0 (the
  depth net and DAFR inside, as in `serving_default`); and the SavedModel's two
  signatures run on the model in memory (`SpiritNetServable`, composite warp): the same
  graphs as the SavedModel's, and the references of its ratios;
* SavedModel `animate_tensor` (same inputs; adds the full-resolution step and uint8
  frames) and `serving_default` (a PNG in: decode, depth net and DAFR, then the same);
* TFLite in the LiteRT interpreter (XNNPACK, 2 threads), float32 and float16 weights;
* ONNX in onnxruntime (CPU, 2 intra-op threads);
* the gRPC round trip through the dev server (`PredictionServer`, in the same process
  as its client) for both signatures.

Each case runs in its own process pinned to (at most) 2 CPU cores, TensorFlow limited
to 2 threads per pool; latency is the median (min) of ``--repeats`` runs after one
warm-up, and the process's CPU time per run (median) is recorded too: on shared cores
it is the steadier figure. Each output is also compared with the Keras reference (flows:
max absolute difference in pixels; frames: mean and max absolute difference, values in
[0, 1]).

``--baseline COMMIT``: the same cases also run with the code of COMMIT (``git archive``
into a temporary folder, with this checkout's compiled op libraries copied into its
``spiritnet_tf/ops/``): its own exports of the same model, timed on the same inputs,
each case alternating between the two trees so that a changing load hits both alike.
``--no-onnx`` leaves out the (slow, about 5 minutes) ONNX export and its timing.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from report import baseline_tree, pin_two_cores, timings  # this folder is on sys.path (scripts run from it)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
EXAMPLE = os.path.join(ROOT, "examples", "coffee.jpg")
# The tree whose spiritnet_tf the cases import: this checkout, or a --baseline commit's.
CODE = os.environ.get("SPIRITNET_BENCH_CODE", ROOT)


def _timed(fn, repeats):
    """{"wall": [s], "cpu": [s]}: wall-clock and process CPU seconds of ``repeats`` calls
    of ``fn`` after one warm-up call (`report.timings` plus the CPU time)."""
    cpu = []

    def one():
        start = time.process_time()
        fn()
        cpu.append(time.process_time() - start)

    wall = timings(one, repeats)
    return {"wall": wall, "cpu": cpu[1:]}


def _paths(work):
    return {name: os.path.join(work, name) for name in (
        "model.keras", "inputs.npz", "reference.npz", "savedmodel/spiritnet/1",
        "spiritnet.tflite", "spiritnet_f16.tflite", "spiritnet.onnx")}


def _folder_bytes(path):
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(path) for name in names)


def _diffs(out, reference):
    """max |flows - ref|, mean and max |frames - ref| (uint8 frames scaled to [0, 1])."""
    import numpy as np

    frames = np.asarray(out["frames"])
    frames = frames / 255.0 if frames.dtype == np.uint8 else frames
    ref_frames = reference["frames"]
    if np.asarray(out["frames"]).dtype == np.uint8:
        ref_frames = np.round(np.clip(ref_frames, 0, 1) * 255) / 255.0
    flow = np.abs(np.asarray(out["flows"]) - reference["flows"])
    frame = np.abs(frames - ref_frames)
    return {"flows_max": float(flow.max()), "frames_mean": float(frame.mean()),
            "frames_max": float(frame.max())}


# ---------------------------------------------------------------------- cases


def case_export(work, size, frames, onnx=True):
    pin_two_cores(CODE)
    import keras
    import numpy as np

    from spiritnet_tf.animation import DEFAULT_WEIGHTS, load_model
    from spiritnet_tf.export import export_savedmodel
    from spiritnet_tf.export.mobile import export_onnx, export_tflite, initial_flow
    from spiritnet_tf.io import load_image
    from spiritnet_tf.model import SpiritNet

    paths = _paths(work)
    if os.path.isfile(DEFAULT_WEIGHTS):
        model, weights = load_model(None), "bundled default (small preset)"
    else:
        keras.utils.set_random_seed(0)
        model = SpiritNet.from_preset("small")
        model.build()
        weights = "randomly initialised small preset, seed 0 (the bundled weights are missing)"
    model.save(paths["model.keras"])
    import cv2

    if os.path.isfile(paths["inputs.npz"]):  # a --baseline run: the same inputs
        flow0 = np.load(paths["inputs.npz"])["flow0"]
    else:
        image = cv2.resize(load_image(EXAMPLE), (size, size), interpolation=cv2.INTER_AREA)[None]
        flow0 = initial_flow(model, image, seed=0)
        np.savez(paths["inputs.npz"], image=image.astype(np.float32), flow0=flow0)
    seconds = {}
    start = time.perf_counter()
    export_savedmodel(model, paths["savedmodel/spiritnet/1"], working_side=size)
    seconds["savedmodel"] = time.perf_counter() - start
    for key, kwargs in (("spiritnet.tflite", {}), ("spiritnet_f16.tflite", {"float16": True})):
        start = time.perf_counter()
        export_tflite(model, paths[key], height=size, width=size, num_frames=frames, **kwargs)
        seconds[key] = time.perf_counter() - start
    if onnx:
        start = time.perf_counter()
        export_onnx(model, paths["spiritnet.onnx"], height=size, width=size, num_frames=frames)
        seconds["spiritnet.onnx"] = time.perf_counter() - start
    sizes = {"model.keras": os.path.getsize(paths["model.keras"]),
             "savedmodel": _folder_bytes(paths["savedmodel/spiritnet/1"]),
             "savedmodel_variables": _folder_bytes(
                 os.path.join(paths["savedmodel/spiritnet/1"], "variables"))}
    for key in ("spiritnet.tflite", "spiritnet_f16.tflite", "spiritnet.onnx")[:3 if onnx else 2]:
        sizes[key] = os.path.getsize(paths[key])
    return {"weights": weights, "parameters": int(model.count_params()),
            "export_s": seconds, "bytes": sizes,
            "mean_flow0_px": float(np.linalg.norm(flow0, axis=-1).mean())}


def case_keras(work, frames, repeats):
    pin_two_cores(CODE)
    import numpy as np
    import tensorflow as tf

    from spiritnet_tf.animation import load_model
    from spiritnet_tf.ops import use_backend
    from spiritnet_tf.export.mobile import mobile_function

    paths = _paths(work)
    model = load_model(paths["model.keras"])
    inputs = dict(np.load(paths["inputs.npz"]))
    size = inputs["image"].shape[1]
    result = {}
    image, flow0 = tf.constant(inputs["image"]), tf.constant(inputs["flow0"])
    for backend in ("custom", "composite"):
        with use_backend(backend):
            function = mobile_function(model, size, size, frames)
            function.get_concrete_function()  # traced with this backend
        outs = []
        result[backend] = _timed(lambda: outs.append(function(image, flow0)), repeats)
        out = {k: v.numpy() for k, v in outs[-1].items()}
        if backend == "custom":
            np.savez(paths["reference.npz"], **out)
            reference = out
        else:
            result["composite_diff"] = _diffs(out, reference)
    # serving_default's counterpart: no flow0, so the depth net and DAFR (seed 0) run inside.
    with use_backend("composite"):
        drawn = tf.function(lambda image: model({"image": image}, num_frames=frames, seed=0),
                            input_signature=[tf.TensorSpec([1, size, size, 3], tf.float32)])
        drawn.get_concrete_function()
    result["composite_dafr"] = _timed(lambda: drawn(image), repeats)
    # The SavedModel's two signatures as graphs of the Keras model in memory (composite
    # warp): the same work as the exports' (image decoding, the full-resolution frames),
    # so the SavedModel rows compare the export with its own model, not with less work.
    from spiritnet_tf.export.savedmodel import SpiritNetServable

    servable = SpiritNetServable(model, working_side=size)
    with use_backend("composite"):
        own_tensor = servable.animate_tensor.get_concrete_function()
        own_serving = servable.serving_default.get_concrete_function()
    count, png = tf.constant(frames), tf.constant([_png(inputs["image"])])
    result["own_animate_tensor"] = _timed(
        lambda: own_tensor(image=image, flow0=flow0, num_frames=count), repeats)
    result["own_serving_default"] = _timed(
        lambda: own_serving(image=png, num_frames=count, seed=tf.constant(0, tf.int64),
                            edges=tf.constant("extend")), repeats)
    result["mean_flow_px"] = float(np.linalg.norm(reference["flows"], axis=-1).mean())
    return result


def _png(image):
    import numpy as np
    import tensorflow as tf

    return tf.io.encode_png(np.round(image[0] * 255).astype(np.uint8)).numpy()


def case_savedmodel(work, frames, repeats):
    pin_two_cores(CODE)
    import numpy as np
    import tensorflow as tf

    paths = _paths(work)
    inputs = dict(np.load(paths["inputs.npz"]))
    reference = dict(np.load(paths["reference.npz"]))
    start = time.perf_counter()
    loaded = tf.saved_model.load(paths["savedmodel/spiritnet/1"])
    load_s = time.perf_counter() - start
    tensor = loaded.signatures["animate_tensor"]
    serving = loaded.signatures["serving_default"]
    args = dict(image=tf.constant(inputs["image"]), flow0=tf.constant(inputs["flow0"]),
                num_frames=tf.constant(frames))
    outs = []
    tensor_s = _timed(lambda: outs.append(tensor(**args)), repeats)
    png = tf.constant([_png(inputs["image"])])
    serving_s = _timed(lambda: serving(image=png, num_frames=tf.constant(frames),
                                       seed=tf.constant(0, tf.int64), edges=tf.constant("extend")),
                        repeats)
    return {"load_s": load_s, "animate_tensor": tensor_s, "serving_default": serving_s,
            "diff": _diffs({k: v.numpy() for k, v in outs[-1].items()}, reference)}


def case_tflite(work, frames, repeats):
    pin_two_cores(CODE)
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    paths = _paths(work)
    inputs = dict(np.load(paths["inputs.npz"]))
    reference = dict(np.load(paths["reference.npz"]))
    result = {}
    for key in ("spiritnet.tflite", "spiritnet_f16.tflite"):
        start = time.perf_counter()
        interpreter = Interpreter(model_path=paths[key], num_threads=2)
        runner = interpreter.get_signature_runner("serving_default")
        load_s = time.perf_counter() - start
        outs = []
        times = _timed(lambda: outs.append(runner(**inputs)), repeats)
        result[key] = {"load_s": load_s, "times": times, "diff": _diffs(outs[-1], reference)}
    return result


def case_onnx(work, frames, repeats):
    pin_two_cores(CODE)
    import numpy as np
    import onnxruntime as ort

    paths = _paths(work)
    inputs = dict(np.load(paths["inputs.npz"]))
    reference = dict(np.load(paths["reference.npz"]))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.inter_op_num_threads = 1
    start = time.perf_counter()
    session = ort.InferenceSession(paths["spiritnet.onnx"], options,
                                   providers=["CPUExecutionProvider"])
    load_s = time.perf_counter() - start
    names = [o.name for o in session.get_outputs()]
    outs = []
    times = _timed(lambda: outs.append(dict(zip(names, session.run(None, inputs)))), repeats)
    return {"load_s": load_s, "times": times, "diff": _diffs(outs[-1], reference),
            "version": ort.__version__}


def case_grpc(work, frames, repeats):
    pin_two_cores(CODE)
    import numpy as np

    from spiritnet_tf.serving import PredictionServer, SpiritNetClient

    paths = _paths(work)
    inputs = dict(np.load(paths["inputs.npz"]))
    reference = dict(np.load(paths["reference.npz"]))
    png = _png(inputs["image"])
    base = os.path.dirname(paths["savedmodel/spiritnet/1"])
    with PredictionServer(base, port=0) as server:
        with SpiritNetClient(f"127.0.0.1:{server.port}", timeout=600) as client:
            outs = []
            tensor_s = _timed(lambda: outs.append(client.animate_tensor(
                inputs["image"], inputs["flow0"], num_frames=frames)), repeats)
            serving_s = _timed(lambda: client.predict(png, num_frames=frames, seed=0), repeats)
    return {"animate_tensor": tensor_s, "serving_default": serving_s,
            "diff": _diffs(outs[-1], reference)}


CASES = {"export": case_export, "keras": case_keras, "savedmodel": case_savedmodel,
         "tflite": case_tflite, "onnx": case_onnx, "grpc": case_grpc}


def _run_case(name, args, work, code=ROOT):
    command = [sys.executable, os.path.abspath(__file__), "--case", name, "--work", work,
               "--repeats", str(args.repeats), "--frames", str(args.frames),
               "--size", str(args.size)] + (["--no-onnx"] if args.no_onnx else [])
    env = dict(os.environ, SPIRITNET_BENCH_CODE=code,
               PYTHONPATH=code + os.pathsep + os.environ.get("PYTHONPATH", ""))
    print(f"== {name} ({code})", file=sys.stderr, flush=True)
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=env,
                         cwd=code).stdout
    return json.loads(out.strip().splitlines()[-1])


def _git(*args):
    return subprocess.run(["git", "-C", ROOT, *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def _run_all(args, tmp):
    """{"new": {case: result}, "base": {...} (with --baseline)}, cases alternating trees."""
    trees = {"new": (ROOT, os.path.join(tmp, "new"))}
    if args.baseline:
        trees["base"] = (baseline_tree(args.baseline, os.path.join(tmp, "base-code")),
                         os.path.join(tmp, "base"))
    names = [n for n in CASES if not (n == "onnx" and args.no_onnx)]
    results = {tree: {} for tree in trees}
    for _, work in trees.values():
        os.makedirs(work)
    for name in names:
        for tree, (code, work) in trees.items():
            if name == "export" and tree == "base":  # the same inputs as the new code's
                shutil.copy2(os.path.join(trees["new"][1], "inputs.npz"), work)
            results[tree][name] = _run_case(name, args, work, code)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", help="Markdown file whose `export` section to rewrite")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--baseline", metavar="COMMIT",
                        help="also run the cases with COMMIT's code (module docstring)")
    parser.add_argument("--no-onnx", action="store_true", help="leave out the ONNX export")
    parser.add_argument("--save-json", metavar="PATH", help="also write the raw results here")
    parser.add_argument("--load-json", metavar="PATH",
                        help="write the tables from a --save-json file instead of measuring")
    parser.add_argument("--case", choices=sorted(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case == "export":
        print(json.dumps(case_export(args.work, args.size, args.frames, onnx=not args.no_onnx)))
        return
    if args.case:
        print(json.dumps(CASES[args.case](args.work, args.frames, args.repeats)))
        return

    import numpy as np

    sys.path.insert(0, HERE)
    from report import machine_description, today, update_section

    baseline = _git("rev-parse", "--short", args.baseline) if args.baseline else None
    head = _git("rev-parse", "--short", "HEAD") + (" + uncommitted changes"
                                                   if _git("status", "--porcelain") else "")
    if args.load_json:
        with open(args.load_json) as f:
            saved = json.load(f)
        runs, load_start, load_end, head = (saved[k] for k in ("runs", "load_start", "load_end",
                                                               "head"))
    else:
        load_start = os.getloadavg()
        with tempfile.TemporaryDirectory(prefix="spiritnet-export-bench-") as tmp:
            runs = _run_all(args, tmp)
        load_end = os.getloadavg()
    if args.save_json:
        with open(args.save_json, "w") as f:
            json.dump({"runs": runs, "load_start": load_start, "load_end": load_end,
                       "head": head}, f)
    results = runs["new"]
    exp, keras_ = results["export"], results["keras"]

    def med(values, key="wall"):
        return float(np.median(values[key]))

    def ms(values):
        return f"{1000 * med(values):.0f} ms ({1000 * np.min(values['wall']):.0f} ms)"

    def cpu(values):
        return f"{1000 * med(values, 'cpu'):.0f} ms"

    def ratio(values, ref):
        return f"{med(values) / med(ref):.2f}x / {med(values, 'cpu') / med(ref, 'cpu'):.2f}x"

    def diff(d):
        return (f"{d['flows_max']:.1e} px / {d['frames_mean']:.1e} / {d['frames_max']:.1e}")

    def mb(key):
        return f"{exp['bytes'][key] / 1e6:.1f} MB"

    def pick(tree, case, *keys):
        value = runs[tree][case]
        for key in keys:
            value = value[key]
        return value

    composite, dafr = ("keras", "composite"), ("keras", "composite_dafr")
    own_tensor, own_serving = ("keras", "own_animate_tensor"), ("keras", "own_serving_default")
    rows = [  # (name, case and keys of its timings, reference's, difference)
        ("Keras `tf.function`, compiled warp op", ("keras", "custom"), composite,
         "0 (reference of the differences)"),
        ("Keras `tf.function`, composite warp, flow0 given (reference of TFLite and ONNX)",
         composite, composite, diff(keras_["composite_diff"])),
        ("Keras `tf.function`, composite warp, no flow0 (depth + DAFR inside)", dafr, dafr,
         "other flow0"),
        ("Keras `tf.function`, composite warp, `animate_tensor`'s graph (reference of the "
         "SavedModel's)", own_tensor, composite, "-"),
        ("Keras `tf.function`, composite warp, `serving_default`'s graph (reference of the "
         "SavedModel's)", own_serving, dafr, "-"),
        ("SavedModel `animate_tensor` (uint8 frames)", ("savedmodel", "animate_tensor"),
         own_tensor, diff(results["savedmodel"]["diff"])),
        ("SavedModel `serving_default` (PNG in, depth + DAFR inside)",
         ("savedmodel", "serving_default"), own_serving, "other flow0"),
        ("TFLite float32 (LiteRT, XNNPACK, 2 threads)", ("tflite", "spiritnet.tflite", "times"),
         composite, diff(results["tflite"]["spiritnet.tflite"]["diff"])),
        ("TFLite float16 weights", ("tflite", "spiritnet_f16.tflite", "times"), composite,
         diff(results["tflite"]["spiritnet_f16.tflite"]["diff"])),
    ]
    if not args.no_onnx:
        rows.append((f"ONNX (onnxruntime {results['onnx']['version']}, CPU, 2 threads)",
                     ("onnx", "times"), composite, diff(results["onnx"]["diff"])))
    rows += [
        ("gRPC round trip, dev server, `animate_tensor`", ("grpc", "animate_tensor"), composite,
         diff(results["grpc"]["diff"])),
        ("gRPC round trip, dev server, `serving_default`", ("grpc", "serving_default"), dafr,
         "other flow0"),
    ]
    n, t = args.size, args.frames
    header = "| Runtime | Latency per animation | CPU time | Ratio over its Keras reference (wall / CPU) |"
    rule = "|---|---|---|---|"
    if baseline:
        header += (" Before this change | CPU time before | Ratio over its Keras reference before "
                   "(wall / CPU) | Before / now (wall / CPU) |")
        rule += "---|---|---|---|"
    header += " Difference from Keras |"
    rule += "---|"
    table = [header, rule]
    for name, keys, ref, d in rows:
        new = pick("new", *keys)
        cells = [name, ms(new), cpu(new), ratio(new, pick("new", *ref))]
        if baseline:
            old = pick("base", *keys)
            cells += [ms(old), cpu(old), ratio(old, pick("base", *ref)),
                      f"{med(old) / med(new):.2f}x / {med(old, 'cpu') / med(new, 'cpu'):.2f}x"]
        table.append("| " + " | ".join(cells + [d]) + " |")
    sm, f32 = results["savedmodel"], results["tflite"]["spiritnet.tflite"]
    versions = (f"this checkout ({head}) and, in the same run, the code before the change "
                f"(`--baseline {args.baseline}`, commit {baseline}: its own exports of the same "
                "model, timed on the same inputs, each case run for both trees one after the "
                "other)" if baseline else f"this checkout ({head})")
    lines = [
        "## Export (`benchmarks/export.py`)",
        "",
        f"Measured {today()} on {machine_description()}: {versions}. Each case in its own "
        "process pinned to 2 cores, TensorFlow 2 threads per pool. Load average (1 min) "
        f"{load_start[0]:.1f} at the start, {load_end[0]:.1f} at the end (5 min: "
        f"{load_end[1]:.1f}); above 2, other work shared the cores and every wall-clock "
        "figure is inflated: the CPU time of the process (all its threads) is then the "
        "steadier figure, and the ratios are best read on it.",
        f"Weights: {exp['weights']} ({exp['parameters']:,} parameters). One animation of the "
        f"example photo resized to {n}x{n}, {t} generated frames, the same flow0 everywhere "
        "(`initial_flow`, seed 0) except where the runtime draws its own (no flow0 "
        f"given: depth net and DAFR inside); median (min) of {args.repeats} runs after one "
        "warm-up; CPU time: median per run. Ratio: median over that of the runtime's Keras "
        "reference, the Keras model running the graph the export holds, with the composite "
        "warp: for TFLite and ONNX the model given flow0; for the SavedModel the signature's "
        "own `tf.function` (`SpiritNetServable`) on the model in memory, which also decodes "
        "the PNG (`serving_default`) and makes the full-resolution uint8 frames (the ratios "
        "of those two Keras rows are over the model alone, flow0 given or not: what the "
        "signature adds). Difference from the Keras reference "
        "(compiled op): max |flows| (px) / mean / max |frames| (values in [0, 1]; uint8 "
        "outputs against the rounded reference).",
        "",
        *table,
        "",
        "| Artefact | Size | Export time |",
        "|---|---|---|",
        f"| `.keras` model (for reference) | {mb('model.keras')} | - |",
        f"| SavedModel folder (variables {exp['bytes']['savedmodel_variables'] / 1e6:.1f} MB) "
        f"| {mb('savedmodel')} | {exp['export_s']['savedmodel']:.0f} s |",
        f"| TFLite float32, {n}x{n}, {t} frames | {mb('spiritnet.tflite')} | "
        f"{exp['export_s']['spiritnet.tflite']:.0f} s |",
        f"| TFLite float16 weights | {mb('spiritnet_f16.tflite')} | "
        f"{exp['export_s']['spiritnet_f16.tflite']:.0f} s |",
    ]
    if not args.no_onnx:
        lines.append(f"| ONNX (opset 17) | {mb('spiritnet.onnx')} | "
                     f"{exp['export_s']['spiritnet.onnx']:.0f} s |")
    lines += [
        "",
        f"Loading: SavedModel {sm['load_s']:.1f} s, TFLite {f32['load_s']:.2f} s"
        + ("" if args.no_onnx else f", ONNX session {results['onnx']['load_s']:.1f} s")
        + f". Mean |flow0|: {exp['mean_flow0_px']:.2f} px; mean |flow| of the reference "
        f"frames: {keras_['mean_flow_px']:.2f} px. Every export runs the composite warp (the "
        "compiled op cannot go into them); the SavedModel also makes the full-resolution "
        "uint8 frames (at this size: the model's frames, `spiritnet_tf.fullres.frames`)."
        + (" ONNX was left out of this run (`--no-onnx`)." if args.no_onnx else ""),
    ]
    markdown = "\n".join(lines)
    print(markdown)
    if args.markdown:
        update_section(args.markdown, "export", markdown)


if __name__ == "__main__":
    main()
