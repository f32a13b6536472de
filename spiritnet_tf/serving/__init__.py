"""Serving SpiritNet over gRPC: a PredictionService client and a dev server (docs/design.md §6, §8).

The exported SavedModel (``export/to_savedmodel.py --out models/spiritnet/<version>``)
is served by stock TensorFlow Serving in production; `PredictionServer`
(``spiritnet serve``) is an in-process stand-in for development and tests, and
`SpiritNetClient` (``spiritnet predict``) talks to either.

Production, TF Serving in Docker (gRPC on 8500; the container serves the newest
numbered version under /models/spiritnet and replays its warm-up requests)::

    docker run --rm -p 127.0.0.1:8500:8500 \\
        -v "$PWD/models/spiritnet:/models/spiritnet:ro" \\
        -e MODEL_NAME=spiritnet tensorflow/serving:latest

(Pin the image tag to a release at least as new as the TensorFlow that exported
the model. Drop ``127.0.0.1:`` to accept connections from other machines.)

Scaling out: run several such containers (replicas) with the same model folder
behind a gRPC-aware load balancer (Envoy, an L7 Kubernetes ingress, or client-side
round robin over a headless Service); gRPC keeps one HTTP/2 connection per
client, so plain L4 balancing pins each client to one replica. Server-side request
batching is left off: requests differ in image size and frame count (docs/design.md §8).
TF Serving accepts messages of up to 2 GB, so bound request sizes at the load
balancer (this package's default is `MAX_MESSAGE_BYTES` = 64 MB).

Client::

    from spiritnet_tf.serving import SpiritNetClient

    with SpiritNetClient("127.0.0.1:8500") as client:
        out = client.predict("photo.jpg", num_frames=6, seed=0)
    out["frames"]  # uint8 [1, 6, H, W, 3]: the generated frames (input not repeated)
    out["flows"]   # float32 [1, 6, h, w, 2]: backward flows in pixels, at the working size

or from the shell: ``spiritnet predict --server 127.0.0.1:8500 photo.jpg -o photo.gif``.
Errors arrive as `ServingError` with the gRPC ``code`` and the server's ``message``.

Dev server: ``spiritnet serve --model-dir models/spiritnet [--port 8500]``, or in
Python ``with PredictionServer("models/spiritnet", port=0) as server: server.port``.
"""

from spiritnet_tf.lazy import lazy_names

MODEL_NAME = "spiritnet"
"""Model name served and asked for by default (TF Serving's ``--model_name``)."""
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8500  # TF Serving's gRPC port

# The client and the server import TensorFlow: load them on first use, so that
# ``spiritnet serve --help`` and ``spiritnet predict --help`` answer without it.
_LAZY = {
    "SpiritNetClient": "client",
    "ServingError": "client",
    "PredictionServer": "server",
    "latest_version": "server",
}
_LIMITS = ("MAX_MESSAGE_BYTES", "MAX_PIXELS", "MAX_REQUEST_PIXELS", "MAX_IMAGES_PER_REQUEST",
           "MAX_SERVING_FRAMES")

__all__ = [
    "SpiritNetClient",
    "ServingError",
    "PredictionServer",
    "latest_version",
    "MODEL_NAME",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    *_LIMITS,
]


__getattr__, __dir__ = lazy_names(__name__, {
    **{name: f"{__name__}.{module}" for name, module in _LAZY.items()},
    **dict.fromkeys(_LIMITS, "spiritnet_tf.limits")})
