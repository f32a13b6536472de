"""Export benchmark: one animation (256x256, 6 frames) in every exported form, and sizes.

    python benchmarks/export.py --markdown docs/benchmarks.md [--repeats 3] [--size 256] [--frames 6]

The same model (the bundled default weights if present, otherwise a randomly
initialised small preset, seed 0) is exported as a SavedModel (`export_savedmodel`,
working side = the picture's side, so every form runs the model at the same size), a
TFLite flatbuffer in float32 and with float16 weights, and an ONNX model. Then one
animation of the example photo (resized to SIZE x SIZE) with the same flow0
(`initial_flow`, seed 0) is timed in each runtime:

* Keras: the model called in a `tf.function` with image and flow0, compiled warp op
  (the library's default backend; the reference of every ratio) and composite warp
  (the graph every export holds);
* SavedModel `animate_tensor` (same inputs; adds the full-resolution step and uint8
  frames) and `serving_default` (a PNG in: decode, depth net and DAFR, then the same);
* TFLite in the LiteRT interpreter (XNNPACK, 2 threads), float32 and float16 weights;
* ONNX in onnxruntime (CPU, 2 intra-op threads);
* the gRPC round trip through the dev server (`PredictionServer`, in the same process
  as its client) for both signatures.

Each case runs in its own process pinned to (at most) 2 CPU cores, TensorFlow limited
to 2 threads per pool; latency is the median (min) of ``--repeats`` runs after one
warm-up. Each output is also compared with the Keras reference (flows: max absolute
difference in pixels; frames: mean and max absolute difference, values in [0, 1]).
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


def _setup():
    cores = sorted(os.sched_getaffinity(0))[:2]
    os.sched_setaffinity(0, cores)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(2)
    sys.path.insert(0, ROOT)


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


def case_export(work, size, frames):
    _setup()
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
    start = time.perf_counter()
    export_onnx(model, paths["spiritnet.onnx"], height=size, width=size, num_frames=frames)
    seconds["spiritnet.onnx"] = time.perf_counter() - start
    sizes = {"model.keras": os.path.getsize(paths["model.keras"]),
             "savedmodel": _folder_bytes(paths["savedmodel/spiritnet/1"]),
             "savedmodel_variables": _folder_bytes(
                 os.path.join(paths["savedmodel/spiritnet/1"], "variables"))}
    for key in ("spiritnet.tflite", "spiritnet_f16.tflite", "spiritnet.onnx"):
        sizes[key] = os.path.getsize(paths[key])
    return {"weights": weights, "parameters": int(model.count_params()),
            "export_s": seconds, "bytes": sizes,
            "mean_flow0_px": float(np.linalg.norm(flow0, axis=-1).mean())}


def case_keras(work, frames, repeats):
    _setup()
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
    for backend in ("custom", "composite"):
        with use_backend(backend):
            function = mobile_function(model, size, size, frames)
            function.get_concrete_function()  # traced with this backend
        image, flow0 = tf.constant(inputs["image"]), tf.constant(inputs["flow0"])
        outs = []
        result[backend] = timings(lambda: outs.append(function(image, flow0)), repeats)
        out = {k: v.numpy() for k, v in outs[-1].items()}
        if backend == "custom":
            np.savez(paths["reference.npz"], **out)
            reference = out
        else:
            result["composite_diff"] = _diffs(out, reference)
    result["mean_flow_px"] = float(np.linalg.norm(reference["flows"], axis=-1).mean())
    return result


def _png(image):
    import numpy as np
    import tensorflow as tf

    return tf.io.encode_png(np.round(image[0] * 255).astype(np.uint8)).numpy()


def case_savedmodel(work, frames, repeats):
    _setup()
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
    tensor_s = timings(lambda: outs.append(tensor(**args)), repeats)
    png = tf.constant([_png(inputs["image"])])
    serving_s = timings(lambda: serving(image=png, num_frames=tf.constant(frames),
                                       seed=tf.constant(0, tf.int64), edges=tf.constant("extend")),
                        repeats)
    return {"load_s": load_s, "animate_tensor": tensor_s, "serving_default": serving_s,
            "diff": _diffs({k: v.numpy() for k, v in outs[-1].items()}, reference)}


def case_tflite(work, frames, repeats):
    _setup()
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
        times = timings(lambda: outs.append(runner(**inputs)), repeats)
        result[key] = {"load_s": load_s, "times": times, "diff": _diffs(outs[-1], reference)}
    return result


def case_onnx(work, frames, repeats):
    _setup()
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
    times = timings(lambda: outs.append(dict(zip(names, session.run(None, inputs)))), repeats)
    return {"load_s": load_s, "times": times, "diff": _diffs(outs[-1], reference),
            "version": ort.__version__}


def case_grpc(work, frames, repeats):
    _setup()
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
            tensor_s = timings(lambda: outs.append(client.animate_tensor(
                inputs["image"], inputs["flow0"], num_frames=frames)), repeats)
            serving_s = timings(lambda: client.predict(png, num_frames=frames, seed=0), repeats)
    return {"animate_tensor": tensor_s, "serving_default": serving_s,
            "diff": _diffs(outs[-1], reference)}


CASES = {"export": case_export, "keras": case_keras, "savedmodel": case_savedmodel,
         "tflite": case_tflite, "onnx": case_onnx, "grpc": case_grpc}


def _run_case(name, args, work):
    command = [sys.executable, os.path.abspath(__file__), "--case", name, "--work", work,
               "--repeats", str(args.repeats), "--frames", str(args.frames),
               "--size", str(args.size)]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    print(f"== {name}", file=sys.stderr, flush=True)
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", help="Markdown file whose `export` section to rewrite")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--case", choices=sorted(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case == "export":
        print(json.dumps(case_export(args.work, args.size, args.frames)))
        return
    if args.case:
        print(json.dumps(CASES[args.case](args.work, args.frames, args.repeats)))
        return

    import numpy as np

    sys.path.insert(0, HERE)
    from report import machine_description, today, update_section

    with tempfile.TemporaryDirectory(prefix="spiritnet-export-bench-") as work:
        results = {name: _run_case(name, args, work) for name in CASES}
    exp, keras_ = results["export"], results["keras"]
    reference = np.median(keras_["custom"])

    def ms(values):
        return f"{1000 * np.median(values):.0f} ms ({1000 * np.min(values):.0f} ms)"

    def ratio(values):
        return f"{np.median(values) / reference:.2f}x"

    def diff(d):
        return (f"{d['flows_max']:.1e} px / {d['frames_mean']:.1e} / {d['frames_max']:.1e}")

    def mb(key):
        return f"{exp['bytes'][key] / 1e6:.1f} MB"

    sm, tfl, onx, rpc = (results[k] for k in ("savedmodel", "tflite", "onnx", "grpc"))
    f32, f16 = tfl["spiritnet.tflite"], tfl["spiritnet_f16.tflite"]
    n, t = args.size, args.frames
    rows = [
        ("Keras `tf.function`, compiled warp op (reference)", keras_["custom"], "0 (reference)"),
        ("Keras `tf.function`, composite warp", keras_["composite"], diff(keras_["composite_diff"])),
        ("SavedModel `animate_tensor` (uint8 frames)", sm["animate_tensor"], diff(sm["diff"])),
        ("SavedModel `serving_default` (PNG in, depth + DAFR inside)", sm["serving_default"], "other flow0"),
        ("TFLite float32 (LiteRT, XNNPACK, 2 threads)", f32["times"], diff(f32["diff"])),
        ("TFLite float16 weights", f16["times"], diff(f16["diff"])),
        (f"ONNX (onnxruntime {onx['version']}, CPU, 2 threads)", onx["times"], diff(onx["diff"])),
        ("gRPC round trip, dev server, `animate_tensor`", rpc["animate_tensor"], diff(rpc["diff"])),
        ("gRPC round trip, dev server, `serving_default`", rpc["serving_default"], "other flow0"),
    ]
    lines = [
        "## Export (`benchmarks/export.py`)",
        "",
        f"Measured {today()} on {machine_description()}; each case in its own process pinned "
        f"to 2 cores, TensorFlow 2 threads per pool. Load average at the end: "
        f"{os.getloadavg()[0]:.1f} (above 2, other work shared the cores: every figure is then "
        "inflated, and as the cases run one after another under a changing load, even the "
        "ratios are rough).",
        f"Weights: {exp['weights']} ({exp['parameters']:,} parameters). One animation of the "
        f"example photo resized to {n}x{n}, {t} generated frames, the same flow0 everywhere "
        "(`initial_flow`, seed 0) except `serving_default`, which draws its own; median (min) "
        f"of {args.repeats} runs after one warm-up. Ratio: median over the Keras reference. "
        "Difference from the Keras reference: max |flows| (px) / mean / max |frames| "
        "(values in [0, 1]; uint8 outputs against the rounded reference).",
        "",
        "| Runtime | Latency per animation | Ratio | Difference from Keras |",
        "|---|---|---|---|",
    ]
    lines += [f"| {name} | {ms(values)} | {ratio(values)} | {d} |" for name, values, d in rows]
    lines += [
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
        f"| ONNX (opset 17) | {mb('spiritnet.onnx')} | {exp['export_s']['spiritnet.onnx']:.0f} s |",
        "",
        f"Loading: SavedModel {sm['load_s']:.1f} s, TFLite {f32['load_s']:.2f} s, "
        f"ONNX session {onx['load_s']:.1f} s. Mean |flow0|: {exp['mean_flow0_px']:.2f} px; mean "
        f"|flow| of the reference frames: {keras_['mean_flow_px']:.2f} px. Every export runs the composite warp (the compiled "
        "op cannot go into them); the SavedModel also makes the full-resolution uint8 frames "
        "(a no-op resize at this size).",
    ]
    markdown = "\n".join(lines)
    print(markdown)
    if args.markdown:
        update_section(args.markdown, "export", markdown)


if __name__ == "__main__":
    main()
