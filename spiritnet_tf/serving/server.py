"""An in-process TF Serving PredictionService for development and tests (docs/design.md §6, §8).

`PredictionServer` serves a SavedModel the way ``tensorflow_model_server`` does with
``--model_base_path=BASE --model_name=spiritnet``: it loads the newest numbered
version folder of BASE, replays its warm-up requests
(``assets.extra/tf_serving_warmup_requests``), and answers ``Predict`` and
``GetModelMetadata`` through the SavedModel's signatures. It is generic: nothing here
knows the network, only the request contract of docs/design.md §6.

Every request is checked before the model runs; problems get ``INVALID_ARGUMENT``
with a message naming the input (``NOT_FOUND`` for another model name or version, as
TF Serving answers):

* signature, input names, dtypes and shapes against the SignatureDef;
* ``num_frames`` within 1..`spiritnet_tf.limits.MAX_SERVING_FRAMES`;
* encoded ``image`` strings: the header must name a known format with at most
  ``max_pixels`` pixels and sides of at least `MIN_SIDE` (read before anything is
  decoded, so decompression bombs are refused), then TensorFlow must decode it;
* float ``image`` tensors: finite, in [0, 1], within the pixel limit; other float
  inputs finite;
* no tensor may declare more elements than a message can carry.

An error raised by the model itself is returned with TensorFlow's status code (its
codes are gRPC's) and message; anything else is ``INTERNAL``. The server keeps
serving either way. Requests above ``max_message_bytes`` are refused by gRPC itself
with ``RESOURCE_EXHAUSTED``; a response that would exceed it gets ``RESOURCE_EXHAUSTED``
with a message saying so.

Not done (use TF Serving for these): watching BASE for new versions while running,
version labels, Classify/Regress/MultiInference (they answer ``UNIMPLEMENTED``).
"""

import io
import logging
import os
import re
import threading
import warnings
from concurrent import futures

import grpc
import numpy as np
import tensorflow as tf
from PIL import Image, UnidentifiedImageError
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    predict_pb2,
    prediction_log_pb2,
    prediction_service_pb2_grpc,
)

from spiritnet_tf.limits import (  # the serving limits, re-exported
    MAX_MESSAGE_BYTES,
    MAX_PIXELS,
    MAX_SERVING_FRAMES,
    MAX_WARMUP_RECORDS,
    MIN_SIDE,
)

__all__ = [
    "PredictionServer",
    "latest_version",
    "MODEL_NAME",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "MAX_MESSAGE_BYTES",
    "MAX_SERVING_FRAMES",
    "MAX_PIXELS",
    "MIN_SIDE",
    "WARMUP_FILE",
]

MODEL_NAME = "spiritnet"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8500  # TF Serving's gRPC port
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
_DEFAULT_SIGNATURE = "serving_default"
_GRPC_CODES = {code.value[0]: code for code in grpc.StatusCode}
_log = logging.getLogger("spiritnet_tf.serving")


def latest_version(base_dir):
    """(version, path) of the highest numbered subfolder of ``base_dir``.

    Like TF Serving's ``--model_base_path``: folders whose names are not whole numbers
    are ignored; ``10`` is newer than ``9``. Raises FileNotFoundError (naming the
    folder) when ``base_dir`` is missing or holds no version.
    """
    base_dir = os.fspath(base_dir)
    if not os.path.isdir(base_dir):
        raise FileNotFoundError(f"model directory {base_dir} does not exist")
    versions = [int(name) for name in os.listdir(base_dir)
                if name.isdigit() and os.path.isdir(os.path.join(base_dir, name))]
    if not versions:
        raise FileNotFoundError(
            f"{base_dir} holds no numbered version folder (expected e.g. {base_dir}/1 "
            "with a SavedModel inside)")
    version = max(versions)
    return version, os.path.join(base_dir, str(version))


class _RequestError(Exception):
    """A request that cannot be served: the gRPC status code and a readable message."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def _invalid(message):
    return _RequestError(grpc.StatusCode.INVALID_ARGUMENT, message)


def _dtype_name(enum):
    try:
        return tf.dtypes.as_dtype(enum).name
    except TypeError:
        return f"unknown dtype code {enum}"


def _shape_text(shape_proto):
    if shape_proto.unknown_rank:
        return "any shape"
    return "[" + ", ".join("?" if d.size < 0 else str(d.size) for d in shape_proto.dim) + "]"


def _op_error_text(message):
    """The readable part of a TensorFlow runtime error: without the graph-node stack
    (Python paths of the exporting machine), device and op names."""
    skip = ("Graph execution error:", "Detected at node", "<stack traces unavailable>")
    kept = [line for line in message.split("\n")
            if line.strip() and not line[0].isspace() and not line.startswith(skip)]
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:[^\]]*\]", "", "\n".join(kept))
    return text.strip() or message


class _Servable:
    """One loaded SavedModel version: its signature functions and SignatureDefs."""

    def __init__(self, path, version, *, model_name, max_message_bytes, max_pixels,
                 max_frames):
        self.path = path
        self.version = version
        self.model_name = model_name
        self.max_message_bytes = max_message_bytes
        self.max_pixels = max_pixels
        self.max_frames = max_frames
        saved_model = saved_model_pb2.SavedModel()
        with open(os.path.join(path, "saved_model.pb"), "rb") as f:
            saved_model.ParseFromString(f.read())
        self._loaded = tf.saved_model.load(path)  # kept alive: the functions need it
        self.functions = dict(self._loaded.signatures)
        # One model call at a time: concurrent calls of the loaded SpiritNet signatures
        # crashed TensorFlow 2.21 (a segmentation fault in the 8-client test, seen once
        # in a fresh-clone run); requests are still received and validated in parallel,
        # and TensorFlow parallelises inside each call.
        self._call_lock = threading.Lock()
        defs = saved_model.meta_graphs[0].signature_def
        self.signature_defs = {name: defs[name] for name in self.functions}
        self.warmup_requests = self._replay_warmup()

    # ------------------------------------------------------------------ requests

    def check_model_spec(self, spec):
        if spec.name != self.model_name:
            raise _RequestError(
                grpc.StatusCode.NOT_FOUND,
                f"Servable not found for request: model {spec.name!r} (this server serves "
                f"{self.model_name!r})")
        if spec.HasField("version") and spec.version.value != self.version:
            raise _RequestError(
                grpc.StatusCode.NOT_FOUND,
                f"Servable not found for request: version {spec.version.value} of model "
                f"{spec.name!r} (serving version {self.version})")
        if spec.version_label:
            raise _RequestError(
                grpc.StatusCode.NOT_FOUND,
                f"version labels are not supported by this server (got {spec.version_label!r})")

    def predict(self, request):
        """PredictRequest -> PredictResponse; raises _RequestError for bad requests."""
        self.check_model_spec(request.model_spec)
        name = request.model_spec.signature_name or _DEFAULT_SIGNATURE
        if name not in self.signature_defs:
            raise _invalid(f"signature {name!r} not found; this model has "
                           f"{sorted(self.signature_defs)}")
        signature = self.signature_defs[name]
        missing = sorted(set(signature.inputs) - set(request.inputs))
        unexpected = sorted(set(request.inputs) - set(signature.inputs))
        if missing or unexpected:
            problems = ([f"missing input(s) {missing}"] if missing else []) + (
                [f"unexpected input(s) {unexpected}"] if unexpected else [])
            raise _invalid(f"signature {name!r}: " + "; ".join(problems) + "; expected "
                           f"inputs {sorted(signature.inputs)}")
        unknown_outputs = sorted(set(request.output_filter) - set(signature.outputs))
        if unknown_outputs:
            raise _invalid(f"output_filter names unknown output(s) {unknown_outputs}; "
                           f"signature {name!r} has {sorted(signature.outputs)}")
        inputs = {key: self._input_array(key, request.inputs[key], signature.inputs[key])
                  for key in sorted(signature.inputs)}
        try:
            with self._call_lock:
                outputs = self.functions[name](**{k: tf.constant(v) for k, v in inputs.items()})
        except tf.errors.OpError as e:
            code = _GRPC_CODES.get(e.error_code, grpc.StatusCode.INTERNAL)
            raise _RequestError(code, f"model error: {_op_error_text(e.message)}") from e
        wanted = set(request.output_filter) or set(outputs)
        response = predict_pb2.PredictResponse()
        self._fill_model_spec(response.model_spec, name)
        for key in sorted(wanted):
            response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key].numpy()))
        if response.ByteSize() > self.max_message_bytes:  # gRPC would fail less clearly
            raise _RequestError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"the response would be {response.ByteSize():,} bytes, over the limit of "
                f"{self.max_message_bytes:,}; ask for fewer frames, a smaller image or only "
                "some outputs (output_filter)")
        return response

    def metadata(self, request):
        """GetModelMetadataRequest -> GetModelMetadataResponse (the SignatureDefMap)."""
        self.check_model_spec(request.model_spec)
        if list(request.metadata_field) != ["signature_def"]:
            raise _invalid(f"metadata_field must be ['signature_def'], got "
                           f"{list(request.metadata_field)}")
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, signature in self.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(signature)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        self._fill_model_spec(response.model_spec, "")
        response.metadata["signature_def"].Pack(signature_map)
        return response

    def _fill_model_spec(self, spec, signature_name):
        spec.name = self.model_name
        spec.version.value = self.version
        spec.signature_name = signature_name

    # ------------------------------------------------------------------ validation

    def _input_array(self, name, proto, info):
        """Checks one input TensorProto against its TensorInfo; returns a NumPy array."""
        if proto.dtype != info.dtype:
            raise _invalid(f"input {name!r}: expected dtype {_dtype_name(info.dtype)}, got "
                           f"{_dtype_name(proto.dtype)}")
        if proto.tensor_shape.unknown_rank:
            raise _invalid(f"input {name!r}: the tensor has no shape")
        dims = [d.size for d in proto.tensor_shape.dim]
        expected = info.tensor_shape
        if any(size < 0 for size in dims) or not expected.unknown_rank and (
                len(dims) != len(expected.dim)
                or any(e.size >= 0 and e.size != size for e, size in zip(expected.dim, dims))):
            raise _invalid(f"input {name!r}: expected shape {_shape_text(expected)}, got "
                           f"{dims}")
        itemsize = 1 if info.dtype == tf.string.as_datatype_enum else \
            tf.dtypes.as_dtype(info.dtype).size
        if int(np.prod(dims, dtype=np.float64)) * itemsize > self.max_message_bytes:
            raise _invalid(f"input {name!r}: shape {dims} is larger than a request may be "
                           f"({self.max_message_bytes:,} bytes)")
        try:
            array = tf.make_ndarray(proto)
        except (ValueError, TypeError) as e:
            raise _invalid(f"input {name!r}: malformed TensorProto ({e})") from None
        self._check_values(name, array)
        return array

    def _check_values(self, name, array):
        """The value rules of docs/design.md §6 and §8, by input name."""
        if name == "num_frames":
            if array.size == 0 or array.min() < 1 or array.max() > self.max_frames:
                raise _invalid(f"input 'num_frames': must be within 1..{self.max_frames}, "
                               f"got {array.tolist()}")
        elif array.dtype == object and name == "image":
            for index, data in enumerate(array.reshape(-1)):
                self._check_encoded_image(f"image[{index}]", data)
        elif np.issubdtype(array.dtype, np.floating):
            if not np.all(np.isfinite(array)):
                raise _invalid(f"input {name!r}: contains NaN or infinite values")
            if name == "image":
                if array.size and (array.min() < 0.0 or array.max() > 1.0):
                    raise _invalid(f"input 'image': values must be in [0, 1], got "
                                   f"[{array.min():g}, {array.max():g}]")
                if array.ndim == 4:
                    self._check_size("input 'image'", array.shape[1], array.shape[2])

    def _check_size(self, what, height, width):
        if height * width > self.max_pixels:
            raise _invalid(f"{what}: too many pixels ({width}x{height} = {width * height:,}, "
                           f"limit {self.max_pixels:,})")
        if min(height, width) < MIN_SIDE:
            raise _invalid(f"{what}: too small ({width}x{height}); each side must be at "
                           f"least {MIN_SIDE} px")

    def _check_encoded_image(self, what, data):
        """Header check with Pillow (no pixels decoded), then a decode by TensorFlow."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(io.BytesIO(data)) as im:
                    width, height = im.size
        except Image.DecompressionBombError:
            raise _invalid(f"{what}: too many pixels (limit {self.max_pixels:,})") from None
        except UnidentifiedImageError:
            raise _invalid(f"{what}: not an image ({len(data)} bytes in no known image "
                           "format)") from None
        except (OSError, SyntaxError, ValueError) as e:
            raise _invalid(f"{what}: corrupt image header ({e})") from None
        self._check_size(what, height, width)
        try:
            tf.io.decode_image(data, channels=3, expand_animations=False)
        except tf.errors.OpError as e:
            raise _invalid(f"{what}: cannot be decoded ({_op_error_text(e.message)})") from None

    # ------------------------------------------------------------------ warm-up

    def _replay_warmup(self):
        """Runs the PredictionLog records of the version's warm-up file, as TF Serving does.

        Returns how many were replayed. A record that is not a PredictLog or that fails
        makes loading fail (TF Serving then refuses the version too).
        """
        path = os.path.join(self.path, WARMUP_FILE)
        if not os.path.exists(path):
            return 0
        count = 0
        for count, record in enumerate(tf.data.TFRecordDataset(path), start=1):
            if count > MAX_WARMUP_RECORDS:
                raise ValueError(f"{path}: more than {MAX_WARMUP_RECORDS} warm-up records")
            log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
            if log.WhichOneof("log_type") != "predict_log":
                raise ValueError(f"{path}: record {count} is a {log.WhichOneof('log_type')}, "
                                 "only predict_log warm-up records are supported")
            request = predict_pb2.PredictRequest()
            request.CopyFrom(log.predict_log.request)
            request.model_spec.name = self.model_name  # TF Serving ignores the name here
            request.model_spec.ClearField("version")
            try:
                self.predict(request)
            except _RequestError as e:
                raise ValueError(f"{path}: warm-up record {count} failed: "
                                 f"{e.code.name}: {e.message}") from None
        return count


class _Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, servable):
        self._servable = servable

    def _answer(self, method, request, context):
        try:
            return method(request)
        except _RequestError as e:
            context.abort(e.code, e.message)
        except Exception as e:  # noqa: BLE001 - the server must keep serving
            _log.exception("request failed")
            context.abort(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}")

    def Predict(self, request, context):  # noqa: N802 - gRPC method name
        return self._answer(self._servable.predict, request, context)

    def GetModelMetadata(self, request, context):  # noqa: N802 - gRPC method name
        return self._answer(self._servable.metadata, request, context)


class PredictionServer:
    """The dev PredictionService: newest version of ``model_dir`` under ``model_name``.

    ``start()`` binds ``host:port`` (port 0 picks a free one) and returns the port;
    ``stop()`` ends it; ``wait()`` blocks until it ends. Also a context manager.
    The model is loaded (and warmed up) in the constructor; ``version`` and
    ``warmup_requests`` say what was loaded.
    """

    def __init__(self, model_dir, *, host=DEFAULT_HOST, port=DEFAULT_PORT,
                 model_name=MODEL_NAME, max_message_bytes=MAX_MESSAGE_BYTES,
                 max_pixels=MAX_PIXELS, max_frames=MAX_SERVING_FRAMES, workers=8):
        version, path = latest_version(model_dir)
        self._servable = _Servable(path, version, model_name=model_name,
                                   max_message_bytes=max_message_bytes,
                                   max_pixels=max_pixels, max_frames=max_frames)
        self.host, self.port = host, port
        self.model_name, self.version, self.path = model_name, version, path
        self.warmup_requests = self._servable.warmup_requests
        self.max_message_bytes = max_message_bytes
        self._workers = workers
        self._server = None

    @property
    def address(self):
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def start(self):
        """Starts listening; returns the bound port."""
        if self._server is not None:
            raise RuntimeError("the server is already running")
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self._workers,
                                       thread_name_prefix="spiritnet-serving"),
            options=[("grpc.max_receive_message_length", self.max_message_bytes),
                     ("grpc.max_send_message_length", self.max_message_bytes),
                     ("grpc.so_reuseport", 0)])  # a busy port is an error, not shared
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            _Servicer(self._servable), server)
        try:
            port = server.add_insecure_port(self.address)
        except RuntimeError as e:
            port, reason = 0, e
        else:
            reason = "address in use or not available"
        if port == 0:
            raise OSError(f"cannot listen on {self.address}: {reason}")
        self.port = port
        server.start()
        self._server = server
        return port

    def stop(self, grace=None):
        """Stops the server; requests in flight get ``grace`` seconds to finish."""
        if self._server is not None:
            self._server.stop(grace).wait()
            self._server = None

    def wait(self):
        """Blocks until the server stops."""
        if self._server is not None:
            self._server.wait_for_termination()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False
