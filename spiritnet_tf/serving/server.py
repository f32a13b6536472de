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
  decoded, so decompression bombs are refused), all images of one request must share
  a size (the model stacks them), then TensorFlow must decode each;
* float ``image`` tensors: finite, in [0, 1] (the tolerance of
  `spiritnet_tf.io.images.check_unit_range`), within the pixel limit; other float
  inputs finite;
* no tensor may declare more elements than a message can carry.

Per request, at most ``max_images`` images (`MAX_IMAGES_PER_REQUEST`) of at most
``max_request_pixels`` decoded pixels in all (`MAX_REQUEST_PIXELS`); both are read from
the tensor shape or the image headers before any image is decoded, and a request
over either gets ``RESOURCE_EXHAUSTED`` with a message naming the limit. Images are
decoded (checked, then run) one request at a time, so the memory of a burst is that
of its largest request.

Memory after large requests: TensorFlow's oneDNN build (on by default on x86) serves
every allocation of 4 KB or more from a pool (a BFC allocator) that never gives memory
back, so a process that once decoded a 100 MP request stays that large for good.
``spiritnet serve`` therefore restarts itself with ``TF_ENABLE_ONEDNN_OPTS=0`` (unless
given ``--onednn``): then freed tensors go back to the C library, and after a request
of at least `TRIM_AFTER_PIXELS` pixels the server also calls glibc's ``malloc_trim``
(half a second later) so that freed heap pages are returned too. A `PredictionServer`
made in a process that imported TensorFlow with oneDNN on keeps the pool
(`onednn_memory_pool`).

An error raised by the model itself is returned with TensorFlow's status code (its
codes are gRPC's) and message; anything else is ``INTERNAL``. The server keeps
serving either way. Requests above ``max_message_bytes`` are refused by gRPC itself
with ``RESOURCE_EXHAUSTED``; a response that would exceed it gets ``RESOURCE_EXHAUSTED``
with a message saying so.

Not done (use TF Serving for these): watching BASE for new versions while running,
version labels, Classify/Regress/MultiInference (they answer ``UNIMPLEMENTED``).

``stop(grace)`` (``spiritnet serve`` calls it on SIGTERM and Ctrl-C) refuses new calls
at once and gives the calls in flight ``grace`` seconds to finish; gRPC cancels those
still running after that.
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
    MAX_IMAGES_PER_REQUEST,
    MAX_MESSAGE_BYTES,
    MAX_PIXELS,
    MAX_REQUEST_PIXELS,
    MAX_SERVING_FRAMES,
    MAX_WARMUP_RECORDS,
    MIN_SIDE,
    STOP_GRACE_SECONDS,
    TRIM_AFTER_PIXELS,
)
from spiritnet_tf.serving import DEFAULT_HOST, DEFAULT_PORT, MODEL_NAME
from spiritnet_tf.io.images import ImageInputError, check_unit_range
from spiritnet_tf.memory import malloc_trim, release_freed_memory

__all__ = [
    "PredictionServer",
    "latest_version",
    "onednn_memory_pool",
    "MODEL_NAME",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "MAX_MESSAGE_BYTES",
    "MAX_SERVING_FRAMES",
    "MAX_PIXELS",
    "MAX_REQUEST_PIXELS",
    "MAX_IMAGES_PER_REQUEST",
    "MIN_SIDE",
    "STOP_GRACE_SECONDS",
    "WARMUP_FILE",
]

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


def _exhausted(message):
    return _RequestError(grpc.StatusCode.RESOURCE_EXHAUSTED, message)


def onednn_memory_pool():
    """Whether this process's TensorFlow allocates from oneDNN's pool, which keeps
    freed memory (decided when TensorFlow is imported, by ``TF_ENABLE_ONEDNN_OPTS``)."""
    try:
        from tensorflow.python.util import _pywrap_util_port
        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):  # another TensorFlow build: no such pool
        return False


class _MemoryReturner:
    """Hands freed heap memory back to the system shortly after large requests.

    Decoding and animating a large request frees hundreds of MB at its end, but glibc
    keeps freed memory in its arenas (one per worker thread), so the process would stay
    at its peak size. `after_large_request` arms a timer (at most one at a time) that
    calls ``malloc_trim(0)`` ``delay`` seconds later, when the response has been sent.
    Does nothing where the C library has no ``malloc_trim``.
    """

    def __init__(self, delay=0.5):
        self._delay = delay
        self._lock = threading.Lock()
        self._timer = None

    def after_large_request(self):
        if malloc_trim() is None:  # (looked up once)
            return
        with self._lock:
            if self._timer is None:
                self._timer = threading.Timer(self._delay, self._run)
                self._timer.daemon = True
                self._timer.start()

    def _run(self):
        with self._lock:
            self._timer = None
        release_freed_memory()

    def close(self):
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None


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
                 max_frames, max_request_pixels, max_images):
        self.path = path
        self.version = version
        self.model_name = model_name
        self.max_message_bytes = max_message_bytes
        self.max_pixels = max_pixels
        self.max_frames = max_frames
        self.max_request_pixels = max_request_pixels
        self.max_images = max_images
        self.memory = _MemoryReturner()
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
        pixels = [0]  # decoded pixels of the request's images, counted by the checks
        inputs = {key: self._input_array(key, request.inputs[key], signature.inputs[key],
                                         pixels)
                  for key in sorted(signature.inputs)}
        try:
            return self._run(request, name, inputs)
        finally:
            if pixels[0] >= TRIM_AFTER_PIXELS:
                self.memory.after_large_request()

    def _run(self, request, name, inputs):
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

    def _input_array(self, name, proto, info, pixels):
        """Checks one input TensorProto against its TensorInfo; returns a NumPy array.

        ``pixels`` is a one-element list; the decoded pixels of an ``image`` input are
        added to it.
        """
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
        if name == "image" and dims:
            self._check_image_count(dims[0])
            if len(dims) == 4:  # float images: the shape says how many pixels
                self._check_request_pixels(dims[0], dims[1] * dims[2] * dims[0])
        try:
            array = tf.make_ndarray(proto)
        except (ValueError, TypeError) as e:
            raise _invalid(f"input {name!r}: malformed TensorProto ({e})") from None
        pixels[0] += self._check_values(name, array)
        return array

    def _check_image_count(self, count):
        if count > self.max_images:
            raise _exhausted(f"input 'image': {count} images in one request, over the limit "
                             f"of {self.max_images} images per request; send them in "
                             "several requests")

    def _check_request_pixels(self, count, total):
        if total > self.max_request_pixels:
            raise _exhausted(f"input 'image': {count} image(s) of {total:,} pixels in all, "
                             f"over the limit of {self.max_request_pixels:,} pixels per "
                             "request; send fewer or smaller images")

    def _check_values(self, name, array):
        """The value rules of docs/design.md §6 and §8, by input name; returns the decoded
        pixels of an ``image`` input (0 for the others)."""
        if name == "num_frames":
            if array.size == 0 or array.min() < 1 or array.max() > self.max_frames:
                raise _invalid(f"input 'num_frames': must be within 1..{self.max_frames}, "
                               f"got {array.tolist()}")
        elif array.dtype == object and name == "image":
            return self._check_encoded_images(array.reshape(-1))
        elif np.issubdtype(array.dtype, np.floating):
            if not np.all(np.isfinite(array)):
                raise _invalid(f"input {name!r}: contains NaN or infinite values")
            if name == "image":
                try:
                    check_unit_range(array, "input 'image'")
                except ImageInputError as e:
                    raise _invalid(str(e)) from None
                if array.ndim == 4:
                    self._check_size("input 'image'", array.shape[1], array.shape[2])
                    return array.shape[0] * array.shape[1] * array.shape[2]
        return 0

    def _check_size(self, what, height, width):
        if height * width > self.max_pixels:
            raise _invalid(f"{what}: too many pixels ({width}x{height} = {width * height:,}, "
                           f"limit {self.max_pixels:,})")
        if min(height, width) < MIN_SIDE:
            raise _invalid(f"{what}: too small ({width}x{height}); each side must be at "
                           f"least {MIN_SIDE} px")

    def _check_encoded_images(self, images):
        """Headers of all images first (nothing decoded: per-image and per-request limits,
        one shared size), then a decode of each by TensorFlow; returns their pixels."""
        self._check_image_count(len(images))
        sizes = [self._image_size(f"image[{index}]", data) for index, data in enumerate(images)]
        total = sum(width * height for width, height in sizes)
        self._check_request_pixels(len(images), total)
        if len(set(sizes)) > 1:
            listed = ", ".join(f"image[{index}] is {width}x{height}"
                               for index, (width, height) in enumerate(sizes))
            raise _invalid(f"input 'image': the images of one request must share a size "
                           f"({listed}); send images of different sizes in separate requests")
        with self._call_lock:  # like the model call: one request's pixels at a time
            for index, data in enumerate(images):
                try:
                    tf.io.decode_image(data, channels=3, expand_animations=False)
                except tf.errors.OpError as e:
                    raise _invalid(f"image[{index}]: cannot be decoded "
                                   f"({_op_error_text(e.message)})") from None
        return total

    def _image_size(self, what, data):
        """(width, height) from the header, read with Pillow (no pixels decoded), checked
        against the per-image limits."""
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
        return width, height

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
        self._lock = threading.Lock()
        self.in_flight = 0  # calls being answered now

    def _answer(self, method, request, context):
        with self._lock:
            self.in_flight += 1
        try:
            return method(request)
        except _RequestError as e:
            context.abort(e.code, e.message)
        except Exception as e:  # noqa: BLE001 - the server must keep serving
            _log.exception("request failed")
            context.abort(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}")
        finally:
            with self._lock:
                self.in_flight -= 1

    def Predict(self, request, context):  # noqa: N802 - gRPC method name
        return self._answer(self._servable.predict, request, context)

    def GetModelMetadata(self, request, context):  # noqa: N802 - gRPC method name
        return self._answer(self._servable.metadata, request, context)


class PredictionServer:
    """The dev PredictionService: newest version of ``model_dir`` under ``model_name``.

    ``start()`` binds ``host:port`` (port 0 picks a free one) and returns the port;
    ``stop(grace)`` ends it; ``wait()`` blocks until it ends. Also a context manager.
    The model is loaded (and warmed up) in the constructor; ``version`` and
    ``warmup_requests`` say what was loaded; ``in_flight`` counts the calls being
    answered. Limits (module docstring): ``max_pixels`` per image,
    ``max_request_pixels`` and ``max_images`` per request, ``max_frames`` per
    request, ``max_message_bytes`` per message; each must be at least 1 (ValueError).
    """

    def __init__(self, model_dir, *, host=DEFAULT_HOST, port=DEFAULT_PORT,
                 model_name=MODEL_NAME, max_message_bytes=MAX_MESSAGE_BYTES,
                 max_pixels=MAX_PIXELS, max_frames=MAX_SERVING_FRAMES,
                 max_request_pixels=MAX_REQUEST_PIXELS, max_images=MAX_IMAGES_PER_REQUEST,
                 workers=8):
        limits = dict(max_message_bytes=max_message_bytes, max_pixels=max_pixels,
                      max_frames=max_frames, max_request_pixels=max_request_pixels,
                      max_images=max_images, workers=workers)
        for key, value in limits.items():
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"PredictionServer: {key} must be a whole number >= 1, "
                                 f"got {value!r}")
        version, path = latest_version(model_dir)
        self._servable = _Servable(path, version, model_name=model_name,
                                   max_message_bytes=max_message_bytes,
                                   max_pixels=max_pixels, max_frames=max_frames,
                                   max_request_pixels=max_request_pixels,
                                   max_images=max_images)
        self.host, self.port = host, port
        self.model_name, self.version, self.path = model_name, version, path
        self.warmup_requests = self._servable.warmup_requests
        self.max_message_bytes = max_message_bytes
        self._workers = workers
        self._server = None
        self._servicer = None

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
        servicer = _Servicer(self._servable)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(servicer, server)
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
        self._server, self._servicer = server, servicer
        return port

    @property
    def in_flight(self):
        """How many calls are being answered now (0 when not running)."""
        return self._servicer.in_flight if self._servicer is not None else 0

    def stop(self, grace=None):
        """Stops the server: new calls are refused at once (``UNAVAILABLE``), calls in
        flight get ``grace`` seconds to finish (None: none) and are then cancelled.
        Returns when the server has stopped."""
        if self._server is not None:
            self._server.stop(grace).wait()
            self._server = None
        self._servable.memory.close()

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
