"""A PredictionService client for SpiritNet behind TF Serving (or `PredictionServer`).

Signatures (`spiritnet_tf.export.savedmodel`): ``serving_default`` takes encoded images (``image``
string [B]), ``num_frames`` (int32 scalar, 1..`spiritnet_tf.limits.MAX_SERVING_FRAMES`), ``seed`` (int64 scalar) and ``edges``
(string scalar, "zoom" or "extend") and returns ``frames`` (uint8 [B, T, H, W, 3], the T
generated frames, input not repeated), ``first_frame`` (uint8 [B, H, W, 3], frame 0 with
the same zoom), ``crop`` (float32 [B, 4]), ``motion_scale`` (float32 [B]) and ``flows``
(float32 [B, T, h, w, 2], backward flows in pixels); ``animate_tensor`` takes ``image``
float32 [B, H, W, 3] in [0, 1], ``flow0`` float32 [B, H, W, 2] and ``num_frames`` and
returns the same outputs (edges "extend"); ``encoded`` takes serving_default's inputs
and ``quality`` (int32 scalar, 1..100) and returns ``frames`` (string [B, T]) and
``first_frame`` (string [B]) as JPEG files, ``crop`` and ``motion_scale``: no flows, so the
response of a large photo fits gRPC's default 4 MB limit. `SpiritNetClient.predict` uses
``encoded`` by default.
"""

import os

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from spiritnet_tf.limits import DEFAULT_JPEG_QUALITY, MAX_MESSAGE_BYTES
from spiritnet_tf.serving import DEFAULT_HOST, DEFAULT_PORT, MODEL_NAME

__all__ = ["SpiritNetClient", "ServingError"]


class ServingError(Exception):
    """A failed call: ``code`` is the ``grpc.StatusCode``, ``message`` the server's text."""

    def __init__(self, code, message):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class SpiritNetClient:
    """Calls ``Predict`` on ``target`` ("host:port") for the model ``model_name``.

    ``timeout`` (seconds) bounds each call; ``max_message_bytes`` bounds what the
    channel sends and receives (keep it equal to the server's). Use as a context
    manager or call `close`.
    """

    def __init__(self, target=f"{DEFAULT_HOST}:{DEFAULT_PORT}", model_name=MODEL_NAME,
                 timeout=120.0, max_message_bytes=MAX_MESSAGE_BYTES):
        self.target = target
        self.model_name = model_name
        self.timeout = timeout
        self._channel = grpc.insecure_channel(
            target, options=[("grpc.max_send_message_length", max_message_bytes),
                             ("grpc.max_receive_message_length", max_message_bytes)])
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)

    def predict(self, images, num_frames=6, seed=0, edges="zoom", *, encoded=True,
                quality=DEFAULT_JPEG_QUALITY, signature=None):
        """Animates encoded images: one (path or bytes) or a list of same-size ones.

        By default calls the ``encoded`` signature (frames come back as JPEG files of
        ``quality`` 1..100, so a response fits gRPC's default 4 MB for large photos) and
        returns ``frames`` uint8 [B, T, H, W, 3] and ``first_frame`` uint8 [B, H, W, 3]
        decoded from them, the JPEG bytes themselves as ``frames_jpeg`` (object [B, T]) and
        ``first_frame_jpeg`` (object [B]), ``crop`` and ``motion_scale``. With
        ``encoded=False`` calls ``serving_default`` and returns its outputs unchanged
        (exact frames and the ``flows`` float32 [B, T, h, w, 2]). ``signature`` names
        another signature with the same inputs.
        """
        if isinstance(images, (bytes, str, os.PathLike)):
            images = [images]
        data = [_read_bytes(image) for image in images]
        inputs = {
            "image": tf.make_tensor_proto(data, dtype=tf.string, shape=[len(data)]),
            "num_frames": tf.make_tensor_proto(num_frames, dtype=tf.int32),
            "seed": tf.make_tensor_proto(seed, dtype=tf.int64),
            "edges": tf.make_tensor_proto(edges, dtype=tf.string),
        }
        if not encoded:
            return self.run(signature or "serving_default", inputs)
        inputs["quality"] = tf.make_tensor_proto(quality, dtype=tf.int32)
        out = self.run(signature or "encoded", inputs)
        out["frames_jpeg"], out["first_frame_jpeg"] = out["frames"], out["first_frame"]
        out["frames"] = _decode_jpegs(out["frames_jpeg"])
        out["first_frame"] = _decode_jpegs(out["first_frame_jpeg"])
        return out

    def animate_tensor(self, image, flow0, num_frames=6, signature="animate_tensor"):
        """Animates float32 ``image`` [B,H,W,3] in [0, 1] from backward flow ``flow0``
        [B,H,W,2] (pixels); unbatched [H,W,C] arrays get B = 1. Same outputs as `predict`."""
        image, flow0 = (np.asarray(x, dtype=np.float32) for x in (image, flow0))
        if image.ndim == 3:
            image, flow0 = image[None], flow0[None]
        return self.run(signature, {
            "image": tf.make_tensor_proto(image),
            "flow0": tf.make_tensor_proto(flow0),
            "num_frames": tf.make_tensor_proto(num_frames, dtype=tf.int32),
        })

    def run(self, signature, inputs, output_filter=()):
        """One Predict call: ``inputs`` maps names to TensorProtos or arrays.

        Returns the outputs as NumPy arrays; raises `ServingError` on any failure.
        """
        request = predict_pb2.PredictRequest()
        request.model_spec.name = self.model_name
        request.model_spec.signature_name = signature
        for name, value in inputs.items():
            if not isinstance(value, tensor_pb2.TensorProto):
                value = tf.make_tensor_proto(value)
            request.inputs[name].CopyFrom(value)
        request.output_filter.extend(output_filter)
        response = self._call(self._stub.Predict, request)
        return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}

    def metadata(self):
        """The served SignatureDefs: a ``SignatureDefMap`` proto (``.signature_def[name]``)."""
        request = get_model_metadata_pb2.GetModelMetadataRequest()
        request.model_spec.name = self.model_name
        request.metadata_field.append("signature_def")
        response = self._call(self._stub.GetModelMetadata, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return signature_map

    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as e:
            raise ServingError(e.code(), e.details()) from None

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _decode_jpegs(jpegs):
    """uint8 [..., H, W, 3] of an object array [...] of JPEG bytes (all the same size)."""
    flat = [tf.io.decode_jpeg(data, channels=3).numpy() for data in jpegs.reshape(-1)]
    return np.stack(flat).reshape(jpegs.shape + flat[0].shape)


def _read_bytes(image):
    if isinstance(image, bytes):
        return image
    with open(image, "rb") as f:
        return f.read()
