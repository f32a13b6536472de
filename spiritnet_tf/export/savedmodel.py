"""SavedModel export for TF Serving (docs/design.md §6): ``python export/to_savedmodel.py``.

    python export/to_savedmodel.py --weights model.keras --out models/spiritnet/1

writes a versioned SavedModel (a `SpiritNetServable`) with three signatures:

* ``serving_default(image: string [B], num_frames: int32 [], seed: int64 [],
  edges: string [])``: the encoded JPEG/PNG images (all the same size) are decoded and
  shrunk so that their long side is at most ``max_output_side``; ``edges`` is "zoom"
  or "extend" (`spiritnet_tf.fullres`). Returns ``frames`` uint8 [B, T, H, W, 3] (the T
  generated frames, at that resolution), ``first_frame`` uint8 [B, H, W, 3] (frame 0:
  the photo, zoomed like the frames, so a client can show the loop from frame 0 without
  a jump), ``crop`` float32 [B, 4] (top, left, height, width of the part of the photo
  shown, in its pixels), ``motion_scale`` float32 [B] (below 1 when the motion was
  scaled down to fit the largest zoom) and ``flows`` float32 [B, T, h, w, 2] (the model's
  backward flows ``F_t``, frame t back to frame t-1, in pixels of the working size h x w).
* ``encoded(image, num_frames, seed, edges, quality: int32 [])``: serving_default's
  animation returned compactly for clients with gRPC's default 4 MB message limit:
  ``frames`` string [B, T] and ``first_frame`` string [B], each a JPEG file encoded in
  the graph at ``quality`` (`spiritnet_tf.limits.JPEG_QUALITY_RANGE`; clients send
  `spiritnet_tf.limits.DEFAULT_JPEG_QUALITY` by default), plus
  ``crop`` and ``motion_scale``; no flows.
* ``animate_tensor(image: float32 [B, H, W, 3] in [0, 1], flow0: float32 [B, H, W, 2]
  (backward flow in pixels of H x W), num_frames: int32 [])``: the same outputs with
  edges "extend", the first flow given instead of drawn by DAFR.

All three run the model at the working size (long side ``working_side``, never enlarged)
and make the full-resolution frames with `spiritnet_tf.fullres.frames`, the formula
`spiritnet_tf.animate` uses (with ``max_zoom`` 1.15). ``num_frames`` outside
1..`spiritnet_tf.limits.MAX_SERVING_FRAMES` and an unknown ``edges`` fail inside the graph with
InvalidArgument.

The warp is traced with the composite TensorFlow implementation by default so that
stock TF Serving (no custom ops) loads the export; ``custom_ops=True`` keeps the
compiled op. Warm-up requests (PredictionLog records) go to
``assets.extra/tf_serving_warmup_requests``.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf

from spiritnet_tf import fullres
from spiritnet_tf.animation import DEFAULT_PRESET, DEFAULT_WORKING_SIDE, load_model
from spiritnet_tf.config import EDGES
from spiritnet_tf.ops.warp import use_backend
from spiritnet_tf.limits import MAX_OUTPUT_SIDE as DEFAULT_MAX_OUTPUT_SIDE  # public name kept
from spiritnet_tf.limits import (DEFAULT_JPEG_QUALITY, JPEG_QUALITY_RANGE, MAX_SERVING_FRAMES,
                                 MIN_SIDE)
from spiritnet_tf.serving.server import WARMUP_FILE

__all__ = ["SpiritNetServable", "export_savedmodel", "main", "DEFAULT_MAX_OUTPUT_SIDE"]

QUALITY_MESSAGE = "quality must be a JPEG quality in {}..{}".format(*JPEG_QUALITY_RANGE)
WARMUP_FRAMES = 2  # num_frames of the warm-up requests (small: loading stays quick)
_WARMUP_SIZE = (48, 64)  # (height, width) of the warm-up image


def _target_size(height, width, side):
    """(h, w) int32 whose long side is at most ``side`` (never enlarged).

    Graph twin of `spiritnet_tf.io.images.working_size`: sides rounded half to even
    like Python's ``round``, at least 1.
    """
    long_side = tf.cast(tf.maximum(height, width), tf.float64)
    scale = tf.minimum(tf.constant(side, tf.float64) / long_side, 1.0)

    def scaled(n):
        return tf.maximum(tf.cast(tf.round(tf.cast(n, tf.float64) * scale), tf.int32), 1)

    return scaled(height), scaled(width)


def _shrink(images, size):
    """Area resize of [B, H, W, C] to ``size`` (h, w), or the images themselves when equal."""
    same = tf.reduce_all(tf.equal(tf.shape(images)[1:3], tf.stack(size)))
    return tf.cond(same, lambda: images, lambda: tf.image.resize(images, tf.stack(size), "area"))


class SpiritNetServable(tf.Module):
    """The exported module: a SpiritNet plus the full-resolution logic (module docstring).

    Args:
      model: a built `spiritnet_tf.SpiritNet`.
      working_side: long side of the size the model runs at.
      max_output_side: long side above which inputs are shrunk first.
    """

    def __init__(self, model, working_side=DEFAULT_WORKING_SIDE,
                 max_output_side=DEFAULT_MAX_OUTPUT_SIDE):
        super().__init__(name="spiritnet_servable")
        for name, value in (("working_side", working_side), ("max_output_side", max_output_side)):
            if isinstance(value, bool) or not isinstance(value, int) or value < MIN_SIDE:
                raise ValueError(f"{name} must be an integer >= {MIN_SIDE}, got {value!r}")
        self.model = model
        # Keras 3 variables are not found by tf.Module's tracking: list the tf.Variables
        # behind them so that the SavedModel saves (and restores) every weight.
        self.model_variables = [v.value for v in model.variables]
        self.working_side = working_side
        self.max_output_side = max_output_side

    # ------------------------------------------------------------------ signatures
    # autograph=False here and on the package's other tf.functions: their code branches
    # on Python values only (tf.cond where a tensor decides), and AutoGraph's conversion
    # of everything they call cost about 4 s of the first trace of serving_default.
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image"),
                                  tf.TensorSpec([], tf.int32, name="num_frames"),
                                  tf.TensorSpec([], tf.int64, name="seed"),
                                  tf.TensorSpec([], tf.string, name="edges")],
                 autograph=False)
    def serving_default(self, image, num_frames, seed, edges):
        return self._animate_image_bytes(image, num_frames, seed, edges)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image"),
                                  tf.TensorSpec([], tf.int32, name="num_frames"),
                                  tf.TensorSpec([], tf.int64, name="seed"),
                                  tf.TensorSpec([], tf.string, name="edges"),
                                  tf.TensorSpec([], tf.int32, name="quality")],
                 autograph=False)
    def encoded(self, image, num_frames, seed, edges, quality):
        with tf.control_dependencies([
                tf.debugging.assert_greater_equal(quality, JPEG_QUALITY_RANGE[0],
                                                  message=QUALITY_MESSAGE),
                tf.debugging.assert_less_equal(quality, JPEG_QUALITY_RANGE[1],
                                               message=QUALITY_MESSAGE)]):
            quality = tf.identity(quality)
        # serving_default's traced graph, called (the model is traced once for both).
        out = self.serving_default(image, num_frames, seed, edges)
        frames = out["frames"]  # [B, T, H, W, 3]
        shape = tf.shape(frames)
        flat = tf.reshape(frames, tf.concat([[-1], shape[2:]], 0))
        jpeg = _encode_jpeg(tf.concat([out["first_frame"], flat], 0), quality)
        batch = shape[0]
        return {"frames": tf.reshape(jpeg[batch:], shape[:2]), "first_frame": jpeg[:batch],
                "crop": out["crop"], "motion_scale": out["motion_scale"]}

    def _animate_image_bytes(self, image, num_frames, seed, edges):
        images = tf.map_fn(
            lambda data: tf.io.decode_image(data, channels=3, expand_animations=False),
            image, fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8))
        images = tf.cast(images, tf.float32) / 255.0
        known = tf.reduce_any(tf.equal(edges, tf.constant(EDGES)))
        with tf.control_dependencies([tf.debugging.assert_equal(
                known, True, message=f"edges must be one of {', '.join(EDGES)}")]):
            edges = tf.identity(edges)
        return self._animate(images, None, num_frames, seed, edges)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="image"),
                                  tf.TensorSpec([None, None, None, 2], tf.float32, name="flow0"),
                                  tf.TensorSpec([], tf.int32, name="num_frames")],
                 autograph=False)
    def animate_tensor(self, image, flow0, num_frames):
        tf.debugging.assert_equal(
            tf.shape(image)[:3], tf.shape(flow0)[:3],
            message="animate_tensor: image [B,H,W,3] and flow0 [B,H,W,2] differ in batch or size")
        return self._animate(image, flow0, num_frames, tf.constant(0, tf.int64), "extend")

    # ------------------------------------------------------------------ graph
    def _animate(self, image, flow0, num_frames, seed, edges):
        checks = [
            tf.debugging.assert_greater_equal(
                num_frames, 1, message=f"num_frames must be in 1..{MAX_SERVING_FRAMES}"),
            tf.debugging.assert_less_equal(
                num_frames, MAX_SERVING_FRAMES,
                message=f"num_frames must be in 1..{MAX_SERVING_FRAMES}"),
            tf.debugging.assert_greater_equal(
                tf.reduce_min(tf.shape(image)[1:3]), MIN_SIDE,
                message=f"images must be at least {MIN_SIDE}x{MIN_SIDE} pixels"),
        ]
        with tf.control_dependencies(checks):
            num_frames = tf.identity(num_frames)
            image = tf.identity(image)
        in_height, in_width = tf.shape(image)[1], tf.shape(image)[2]
        size = _target_size(in_height, in_width, self.max_output_side)
        full = _shrink(image, size)
        small_size = _target_size(size[0], size[1], self.working_side)
        tf.debugging.assert_greater_equal(
            tf.minimum(*small_size), MIN_SIDE,
            message=f"the working size has a side below {MIN_SIDE} px: the image is too "
                    "elongated for this export's working side")
        small = _shrink(full, small_size)
        inputs = {"image": small}
        if flow0 is not None:  # pixels of the input -> pixels of the working size
            scale = tf.stack([tf.cast(small_size[1], tf.float32) / tf.cast(in_width, tf.float32),
                              tf.cast(small_size[0], tf.float32) / tf.cast(in_height, tf.float32)])
            inputs["flow0"] = _shrink(flow0, small_size) * scale
        out = self.model(inputs, num_frames=num_frames, seed=seed, return_residuals=True)
        result = fullres.frames(full, small, out["frames"], out["flows"], out["residuals"],
                                edges=edges, clamp=self.model.config.warp_outside == "clamp")
        return {**result, "flows": out["flows"]}


def _encode_jpeg(images, quality):
    """JPEG bytes (string [N]) of uint8 ``images`` [N, H, W, 3] at ``quality`` (int32 scalar)."""
    return tf.map_fn(lambda one: tf.raw_ops.EncodeJpegVariableQuality(images=one, quality=quality),
                     images, fn_output_signature=tf.TensorSpec([], tf.string))


# ---------------------------------------------------------------------- export


def _warmup_image():
    """A small smooth PNG (bytes), the image of the warm-up requests."""
    height, width = _WARMUP_SIZE
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x / width, y / height, (x + y) / (width + height)], -1) * 255
    return tf.io.encode_png(pixels.round().astype(np.uint8)).numpy()


def _write_warmup(path):
    """Writes one PredictionLog per signature to ``path`` (as TF Serving replays them)."""
    from tensorflow_serving.apis import prediction_log_pb2

    height, width = _WARMUP_SIZE
    requests = {
        "serving_default": {
            "image": tf.make_tensor_proto([_warmup_image()], dtype=tf.string),
            "num_frames": tf.make_tensor_proto(WARMUP_FRAMES, dtype=tf.int32),
            "seed": tf.make_tensor_proto(0, dtype=tf.int64),
            "edges": tf.make_tensor_proto("zoom", dtype=tf.string),
        },
        "encoded": {
            "image": tf.make_tensor_proto([_warmup_image()], dtype=tf.string),
            "num_frames": tf.make_tensor_proto(WARMUP_FRAMES, dtype=tf.int32),
            "seed": tf.make_tensor_proto(0, dtype=tf.int64),
            "edges": tf.make_tensor_proto("zoom", dtype=tf.string),
            "quality": tf.make_tensor_proto(DEFAULT_JPEG_QUALITY, dtype=tf.int32),
        },
        "animate_tensor": {
            "image": tf.make_tensor_proto(np.full((1, height, width, 3), 0.5, np.float32)),
            "flow0": tf.make_tensor_proto(np.zeros((1, height, width, 2), np.float32)),
            "num_frames": tf.make_tensor_proto(WARMUP_FRAMES, dtype=tf.int32),
        },
    }
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for signature, inputs in requests.items():
            log = prediction_log_pb2.PredictionLog()
            request = log.predict_log.request
            request.model_spec.name = "spiritnet"  # TF Serving ignores the name in warm-up
            request.model_spec.signature_name = signature
            for key, proto in inputs.items():
                request.inputs[key].CopyFrom(proto)
            writer.write(log.SerializeToString())


def export_savedmodel(model, out, *, working_side=DEFAULT_WORKING_SIDE,
                      max_output_side=DEFAULT_MAX_OUTPUT_SIDE, custom_ops=False, overwrite=False):
    """Exports ``model`` (a SpiritNet) as the SavedModel version folder ``out`` (BASE/<n>).

    The SavedModel is written to a temporary folder beside ``out`` and renamed into
    place, so a server watching BASE never sees half an export. Returns ``out``.

    Raises:
      ValueError: the last part of ``out`` is not a version number.
      FileExistsError: ``out`` exists and ``overwrite`` is False.
    """
    out = os.path.abspath(os.fspath(out))
    version = os.path.basename(out)
    if not version.isdigit():
        raise ValueError(f"{out}: the export folder must be BASE/<version> with a whole-number "
                         f"version (TF Serving's layout), got {version!r}")
    if os.path.lexists(out) and not overwrite:
        raise FileExistsError(f"{out} already exists; pass --overwrite (overwrite=True) to replace it")
    servable = SpiritNetServable(model, working_side, max_output_side)
    base = os.path.dirname(out)
    os.makedirs(base, exist_ok=True)
    temp = tempfile.mkdtemp(prefix=f".tmp-export-{version}-", dir=base)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temp, 0o777 & ~umask)  # mkdtemp's 0700 would hide the model from a server's user
    try:
        with use_backend("custom" if custom_ops else "composite"):
            tf.saved_model.save(servable, temp, signatures={
                "serving_default": servable.serving_default,
                "encoded": servable.encoded,
                "animate_tensor": servable.animate_tensor,
            })
        _write_warmup(os.path.join(temp, WARMUP_FILE))
        if os.path.lexists(out):
            shutil.rmtree(out)
        os.rename(temp, out)
    finally:
        if os.path.lexists(temp):
            shutil.rmtree(temp)
    return out


def _folder_bytes(path):
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(path) for name in names)


def main(argv=None):
    """``export/to_savedmodel.py``: parses ``argv`` and exports; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="to_savedmodel.py",
        description="Export SpiritNet as a versioned SavedModel for TF Serving (docs/design.md §6).")
    parser.add_argument("--weights", help="a .keras model or a .weights.h5 file of --preset "
                        "(default: the bundled weights, when this installation has them)")
    parser.add_argument("--preset", default=DEFAULT_PRESET,
                        help="architecture a .weights.h5 file fits (default %(default)s)")
    parser.add_argument("--out", required=True, help="version folder BASE/<version> to create")
    parser.add_argument("--working-side", type=int, default=DEFAULT_WORKING_SIDE,
                        help="long side the model runs at (default %(default)s)")
    parser.add_argument("--max-output-side", type=int, default=DEFAULT_MAX_OUTPUT_SIDE,
                        help="serving_default shrinks inputs to this long side (default %(default)s)")
    parser.add_argument("--custom-ops", action="store_true",
                        help="keep the compiled warp op (stock TF Serving cannot load it)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing version folder")
    args = parser.parse_args(argv)
    try:
        model = load_model(args.weights, preset=args.preset)
        start = time.perf_counter()
        path = export_savedmodel(model, args.out, working_side=args.working_side,
                                 max_output_side=args.max_output_side,
                                 custom_ops=args.custom_ops, overwrite=args.overwrite)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"to_savedmodel.py: error: {e}", file=sys.stderr)
        return 2
    print(f"exported {path} in {time.perf_counter() - start:.1f} s "
          f"({_folder_bytes(path) / 1e6:.1f} MB)")
    return 0
