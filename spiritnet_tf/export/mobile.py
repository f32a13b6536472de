"""TFLite and ONNX export (docs/design.md §6): ``export/to_tflite.py`` and ``export/to_onnx.py``.

    python export/to_tflite.py --weights model.keras --out spiritnet.tflite [--float16]
    python export/to_onnx.py --weights model.keras --out spiritnet.onnx [--opset 17]
        [--height 256 --width 256 --frames 6] [--overwrite]

Both artefacts hold one function of fixed size and frame count (batch 1):

* inputs ``image`` float32 [1, H, W, 3] (RGB in [0, 1]) and ``flow0`` float32
  [1, H, W, 2] (the first backward flow, in pixels; see "flow0" below);
* outputs ``frames`` float32 [1, T, H, W, 3] (the T generated frames, the input is not
  repeated) and ``flows`` float32 [1, T, H, W, 2] (backward flows ``F_t``, frame t back
  to frame t-1, in pixels).

They are the Keras model's ``model({"image": image, "flow0": flow0}, num_frames=T)``,
traced with the composite adaptive warp (`spiritnet_tf.ops.adaptive_warp_composite`):
the compiled op cannot go into TFLite or ONNX. The TFLite file uses builtin operators
only (no Flex, no custom op; `export_tflite` checks the flatbuffer), optionally with
float16 weights (computation stays float32; inputs and outputs too). The ONNX file is
converted by tf2onnx (default opset `DEFAULT_OPSET`) and uses the standard ONNX domain
only. Neither runs at the working size of `spiritnet_tf.animate` nor makes the
full-resolution frames: resize the photo to H x W on the host.

flow0 (DAFR outside the graph). DAFR draws the first flow with stateless random ops,
which need Flex ops in TFLite and differ in ONNX, so the artefacts take flow0 as an
input. `initial_flow` draws it on the host with the Keras model (its depth net, then
DAFR with ``seed``, ``direction``, ``magnitude``), exactly as the model does when no
flow0 is given (for H and W multiples of 32; otherwise the model draws it on the padded
picture and the border rows differ). A host without TensorFlow can pass any backward
flow in pixels, e.g. a uniform motion of (mx, my) px per frame is
``flow0 = -(mx, my)`` everywhere; zeros give a nearly still animation.

Inputs are not checked for NaN or inf inside these artefacts (the Keras model's checks
are dropped by the converters): check them on the host.
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf

from spiritnet_tf.io.weights import DEFAULT_PRESET, model_from_option
from spiritnet_tf.ops.warp import use_backend
from spiritnet_tf.limits import MAX_ANIMATION_FRAMES, MAX_PIXELS, MIN_SIDE
from spiritnet_tf.io.writers import default_mode

__all__ = [
    "export_tflite", "export_onnx", "mobile_function", "initial_flow", "tflite_operators",
    "main_tflite", "main_onnx", "DEFAULT_HEIGHT", "DEFAULT_WIDTH", "DEFAULT_FRAMES",
    "DEFAULT_OPSET", "MIN_OPSET",
]

DEFAULT_HEIGHT = DEFAULT_WIDTH = 256
DEFAULT_FRAMES = 6
DEFAULT_OPSET = 17
MIN_OPSET = 14  # Reshape's allowzero attribute (see _reshape_zero_is_literal)


def check_size(height, width, num_frames):
    """Raises ValueError unless H, W, T are integers with H, W >= `MIN_SIDE`, H*W within the
    pixel limit and T within 1..`spiritnet_tf.limits.MAX_ANIMATION_FRAMES`."""
    for name, value in (("height", height), ("width", width), ("frames", num_frames)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} (--{name}) must be a whole number, got {value!r}")
    for name, value in (("height", height), ("width", width)):
        if value < MIN_SIDE:
            raise ValueError(f"{name} (--{name}) must be at least {MIN_SIDE} pixels, "
                             f"got {value}")
    if height * width > MAX_PIXELS:
        raise ValueError(f"height x width = {height * width:,} pixels is above the limit of "
                         f"{MAX_PIXELS:,}")
    if not 1 <= num_frames <= MAX_ANIMATION_FRAMES:
        raise ValueError(f"frames (--frames) must be within 1..{MAX_ANIMATION_FRAMES}, "
                         f"got {num_frames}")


def mobile_function(model, height=DEFAULT_HEIGHT, width=DEFAULT_WIDTH,
                    num_frames=DEFAULT_FRAMES):
    """The exported function: a `tf.function` of fixed input signature
    ``(image [1,H,W,3], flow0 [1,H,W,2])`` -> ``{"frames", "flows"}`` (module docstring).

    Trace it (``get_concrete_function()``) inside ``use_backend("composite")``
    (`spiritnet_tf.ops.use_backend`), as the export functions do.
    """
    check_size(height, width, num_frames)
    signature = [tf.TensorSpec([1, height, width, 3], tf.float32, name="image"),
                 tf.TensorSpec([1, height, width, 2], tf.float32, name="flow0")]

    @tf.function(input_signature=signature, autograph=False)
    def animate(image, flow0):
        out = model({"image": image, "flow0": flow0}, num_frames=num_frames)
        return {"frames": tf.identity(out["frames"], name="frames"),
                "flows": tf.identity(out["flows"], name="flows")}

    return animate


def initial_flow(model, image, seed=0, *, direction=None, magnitude=1.0):
    """flow0 [B, H, W, 2] float32 (NumPy) for the exported artefacts, drawn by ``model``'s DAFR.

    ``image`` [B, H, W, 3] float in [0, 1] or uint8 (or [H, W, 3], then B = 1). This is
    `SpiritNet.initial_flow` (depth net and DAFR with ``seed``, ``direction`` in degrees of
    motion, ``magnitude`` a scale; docs/design.md §2) as NumPy.
    """
    image = tf.convert_to_tensor(image)
    if image.shape.rank == 3:
        image = image[None]
    if image.shape.rank != 4 or image.shape[-1] != 3:
        raise ValueError(f"initial_flow: image must be [B,H,W,3] or [H,W,3] RGB, got shape "
                         f"{image.shape}")
    flow = model.initial_flow(image, seed, direction=direction, magnitude=magnitude)
    return flow.numpy().astype(np.float32)


# ---------------------------------------------------------------------- writing


def _check_out(out, overwrite, suffix):
    out = os.path.abspath(os.fspath(out))
    if not out.endswith(suffix):
        raise ValueError(f"{out}: the output file name must end in {suffix}")
    if os.path.isdir(out):
        raise ValueError(f"{out} is a folder; --out names the {suffix} file to write")
    if os.path.lexists(out) and not overwrite:
        raise FileExistsError(f"{out} already exists; pass --overwrite (overwrite=True) to "
                              "replace it")
    return out


def _write_atomically(out, data):
    """Writes bytes to a temporary file beside ``out`` and renames it into place."""
    folder = os.path.dirname(out)
    os.makedirs(folder, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".tmp-{os.path.basename(out)}-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(temp, default_mode())  # mkstemp's 0600 would hide the file from others
        os.replace(temp, out)
    finally:
        if os.path.lexists(temp):
            os.remove(temp)


def _traced(model, height, width, num_frames):
    """The concrete function of `mobile_function`, traced with the composite warp."""
    with use_backend("composite"):
        return mobile_function(model, height, width, num_frames).get_concrete_function()


# ---------------------------------------------------------------------- TFLite


def tflite_operators(model):
    """Names of the operators a TFLite flatbuffer (bytes or path) uses, one per opcode.

    Builtin operators by their `BuiltinOperator` name (e.g. ``"CONV_2D"``); custom
    operators (Flex ops included) as ``"CUSTOM:<custom code>"``.
    """
    from ai_edge_litert import schema_py_generated as schema

    if not isinstance(model, (bytes, bytearray)):
        with open(model, "rb") as f:
            model = f.read()
    root = schema.Model.GetRootAs(model, 0)
    names = {value: name for name, value in vars(schema.BuiltinOperator).items()
             if not name.startswith("_")}
    result = []
    for i in range(root.OperatorCodesLength()):
        code = root.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            result.append(f"CUSTOM:{(code.CustomCode() or b'').decode()}")
        else:
            result.append(names.get(builtin, f"UNKNOWN_{builtin}"))
    return result


def export_tflite(model, out, *, height=DEFAULT_HEIGHT, width=DEFAULT_WIDTH,
                  num_frames=DEFAULT_FRAMES, float16=False, overwrite=False):
    """Converts ``model`` (a SpiritNet) to the TFLite file ``out`` (module docstring).

    ``float16=True`` stores the weights as float16 (about half the size; the
    interpreter dequantizes them and computes in float32). Returns ``out``.

    Raises:
      ValueError: bad size or frame count, ``out`` not a ``.tflite`` file name.
      FileExistsError: ``out`` exists and ``overwrite`` is False.
      RuntimeError: the flatbuffer holds a custom or Flex operator (a converter change).
    """
    check_size(height, width, num_frames)
    out = _check_out(out, overwrite, ".tflite")
    function = _traced(model, height, width, num_frames)
    holder = tf.Module()  # lets the converter find (and freeze) every weight
    holder.weights = [v.value for v in model.variables]
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], holder)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if float16:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    data = converter.convert()
    custom = [name for name in tflite_operators(data) if name.startswith("CUSTOM")]
    if custom:
        raise RuntimeError(f"the TFLite conversion produced non-builtin operators {custom}")
    _write_atomically(out, data)
    return out


# ---------------------------------------------------------------------- ONNX


def _reshape_zero_is_literal(graph):
    """Sets ``allowzero=1`` on Reshape nodes whose constant target shape holds a 0.

    tf2onnx 1.17 copies TensorFlow's Reshape target shapes as they are, but a 0 means
    "size 0" in TensorFlow and "copy the input's size" in ONNX unless ``allowzero`` is
    set. The model's edge padding of flow0 (``tf.repeat`` by 0 rows when H or W is a
    multiple of 32) makes such a Reshape of an empty tensor; without this fix
    onnxruntime rejects the file (a Concat of inconsistent sizes).
    Returns how many nodes were changed.
    """
    from onnx import helper, numpy_helper

    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    constants[node.output[0]] = numpy_helper.to_array(attribute.t)
    changed = 0
    for node in graph.node:
        if node.op_type != "Reshape" or any(a.name == "allowzero" for a in node.attribute):
            continue
        shape = constants.get(node.input[1])
        if shape is not None and (np.asarray(shape) == 0).any():
            node.attribute.append(helper.make_attribute("allowzero", 1))
            changed += 1
    if changed:
        # tf2onnx's own shape annotations of the affected tensors assumed the copying
        # reading; drop every annotation (they are optional) and let runtimes infer.
        del graph.value_info[:]
    return changed


def export_onnx(model, out, *, height=DEFAULT_HEIGHT, width=DEFAULT_WIDTH,
                num_frames=DEFAULT_FRAMES, opset=DEFAULT_OPSET, overwrite=False):
    """Converts ``model`` (a SpiritNet) to the ONNX file ``out`` with tf2onnx. Returns ``out``.

    Raises:
      ValueError: bad size, frame count or opset (below `MIN_OPSET`), ``out`` not a
        ``.onnx`` file name.
      FileExistsError: ``out`` exists and ``overwrite`` is False.
      RuntimeError: tf2onnx left operators outside the standard ONNX domain.
    """
    import onnx
    import tf2onnx

    check_size(height, width, num_frames)
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < MIN_OPSET:
        raise ValueError(f"--opset must be a whole number >= {MIN_OPSET}, got {opset!r}")
    out = _check_out(out, overwrite, ".onnx")
    function = mobile_function(model, height, width, num_frames)
    with use_backend("composite"):
        proto, _ = tf2onnx.convert.from_function(
            function, input_signature=function.input_signature, opset=opset)
    _reshape_zero_is_literal(proto.graph)
    foreign = sorted({f"{node.domain}:{node.op_type}" for node in proto.graph.node
                      if node.domain not in ("", "ai.onnx")})
    if foreign:
        raise RuntimeError(f"tf2onnx left operators outside the ONNX domain: {foreign}")
    onnx.checker.check_model(proto)
    _write_atomically(out, proto.SerializeToString())
    return out


# ---------------------------------------------------------------------- command line


def _parser(prog, description, suffix):
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--out", required=True, help=f"the {suffix} file to write")
    parser.add_argument("--weights", help="a .keras model or a .weights.h5 file of --preset; "
                        "'none' for random initialisation (tests); default: the bundled "
                        "weights, when this installation has them")
    parser.add_argument("--preset", default=DEFAULT_PRESET,
                        help="architecture of a .weights.h5 file or of --weights none "
                        "(default %(default)s)")
    parser.add_argument("--height", type=int, default=DEFAULT_HEIGHT,
                        help="input height in pixels (default %(default)s)")
    parser.add_argument("--width", type=int, default=DEFAULT_WIDTH,
                        help="input width in pixels (default %(default)s)")
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES,
                        help="generated frames T (default %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    return parser


def _model(args):
    return model_from_option(args.weights, preset=args.preset)


def _run(prog, args, export, suffix, **options):
    try:  # the quick checks first, before the model is loaded
        check_size(args.height, args.width, args.frames)
        _check_out(args.out, args.overwrite, suffix)
        model = _model(args)
        start = time.perf_counter()
        path = export(model, args.out, height=args.height, width=args.width,
                      num_frames=args.frames, overwrite=args.overwrite, **options)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    print(f"exported {path} in {time.perf_counter() - start:.1f} s "
          f"({os.path.getsize(path) / 1e6:.1f} MB): image [1,{args.height},{args.width},3], "
          f"flow0 [1,{args.height},{args.width},2] -> frames [1,{args.frames},{args.height},"
          f"{args.width},3], flows [1,{args.frames},{args.height},{args.width},2]")
    return 0


def main_tflite(argv=None):
    """``export/to_tflite.py``: parses ``argv`` and exports; returns the exit status."""
    parser = _parser("to_tflite.py", "Export SpiritNet as a TFLite flatbuffer of fixed size "
                     "(builtin ops only; docs/design.md §6).", ".tflite")
    parser.add_argument("--float16", action="store_true",
                        help="store the weights as float16 (about half the file size)")
    args = parser.parse_args(argv)
    return _run("to_tflite.py", args, export_tflite, ".tflite", float16=args.float16)


def main_onnx(argv=None):
    """``export/to_onnx.py``: parses ``argv`` and exports; returns the exit status."""
    parser = _parser("to_onnx.py", "Export SpiritNet as an ONNX model of fixed size "
                     "(tf2onnx; docs/design.md §6).", ".onnx")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                        help=f"ONNX opset, at least {MIN_OPSET} (default %(default)s)")
    args = parser.parse_args(argv)
    if args.opset < MIN_OPSET:
        print(f"to_onnx.py: error: --opset must be at least {MIN_OPSET}, got {args.opset}",
              file=sys.stderr)
        return 2
    return _run("to_onnx.py", args, export_onnx, ".onnx", opset=args.opset)
