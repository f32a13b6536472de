"""Every limit of spiritnet-tf, each defined once (docs/design.md §8).

Inputs are bounded wherever a user or the network reaches them. The values may differ
by path (an animation may be longer than one serving request), but each is a named
constant here, and the command line, `spiritnet_tf.animate`, the exports, the serving
code and training read it from this module rather than keeping a copy. Plain Python
values, no imports: every module may depend on this one.
"""

__all__ = [
    "MAX_ANIMATION_FRAMES",
    "MAX_SERVING_FRAMES",
    "MAX_TRAINING_FRAMES",
    "training_frames",
    "MIN_SIDE",
    "MAX_PIXELS",
    "MAX_REMAP_SIDE",
    "MAX_OUTPUT_SIDE",
    "MIN_INVERSE_DEPTH",
    "MAX_MESSAGE_BYTES",
    "MAX_WARMUP_RECORDS",
    "MAX_JPEG_SIDE",
    "MAX_IMAGES_PER_REQUEST",
    "MAX_REQUEST_PIXELS",
    "TRIM_AFTER_PIXELS",
    "STOP_GRACE_SECONDS",
    "JPEG_QUALITY_RANGE",
    "DEFAULT_JPEG_QUALITY",
]

# --------------------------------------------------------------------- frames
MAX_ANIMATION_FRAMES = 120
"""Generated frames per animation: `spiritnet_tf.animate`, ``spiritnet animate`` and the
fixed frame count of the TFLite/ONNX exports (``--frames``)."""

MAX_SERVING_FRAMES = 64
"""Generated frames per serving request: the SavedModel's ``num_frames`` (checked in
the graph), the dev gRPC server and ``spiritnet predict``."""

MAX_TRAINING_FRAMES = 5
"""Generated frames per training sample: prediction mode starts from im2 of a
septuplet and has the 5 targets im3..im7 (docs/design.md §4)."""


def training_frames(history=False):
    """The targets a training sample holds: `MAX_TRAINING_FRAMES`, one fewer for a model
    with ``flow_history``, whose samples start one frame later (the flow before flow0
    comes first; `spiritnet_tf.data.to_prediction_mode`)."""
    return MAX_TRAINING_FRAMES - int(bool(history))


# --------------------------------------------------------------------- pictures
MIN_SIDE = 32
"""Smallest image side accepted anywhere (photos, the model's input, the working size,
export sizes, training crops and synthetic scenes)."""

MAX_PIXELS = 50_000_000
"""Pixels per input image (50 MP); files are checked from their header before decoding,
so decompression bombs are refused. A default: `load_image` and `animate` take
``max_pixels``, the dev server ``max_pixels=``."""

MAX_REMAP_SIDE = 32767
"""`animate` refuses photos with a side of this many pixels or more: OpenCV's remap,
which makes the full-resolution frames, needs both sides below SHRT_MAX."""

MAX_JPEG_SIDE = 65535
"""JPEG's largest side: Motion Photo and Live Photo outputs (`spiritnet_tf.io.phone`)
refuse frames with a longer side before anything is encoded."""

MAX_OUTPUT_SIDE = 1024
"""Default long side above which the SavedModel's ``serving_default`` shrinks its input
(an export option, ``--max-output-side``): 6 frames at 1024x768 are about 14 MB."""

# --------------------------------------------------------------------- values
MIN_INVERSE_DEPTH = 1e-3
"""Inverse depth z is clamped below at this value, never 0: DAFI divides by sums of z
(docs/design.md §2)."""

# --------------------------------------------------------------------- serving
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""gRPC message size, both directions, of the dev server and the client (64 MiB)."""

MAX_WARMUP_RECORDS = 1000
"""Warm-up records replayed from ``assets.extra/tf_serving_warmup_requests`` (TF
Serving's own limit)."""

MAX_IMAGES_PER_REQUEST = 4
"""Images (batch size B) of one request to the dev server (``spiritnet serve --max-images``)."""

MAX_REQUEST_PIXELS = 100_000_000
"""Decoded pixels of all the images of one request to the dev server, read from their
headers (``spiritnet serve --max-request-pixels``)."""

TRIM_AFTER_PIXELS = 4_000_000
"""Dev-server requests, and each full-resolution frame of `spiritnet_tf.animate` photos,
at least this large give freed memory back to the system after (`spiritnet_tf.memory`)."""

STOP_GRACE_SECONDS = 10.0
"""How long the dev server's calls in flight may run on after SIGTERM or Ctrl-C
(``spiritnet serve --grace``)."""

JPEG_QUALITY_RANGE = (1, 100)
"""JPEG qualities the SavedModel's ``encoded`` signature accepts (checked in the graph)
and ``spiritnet predict --quality``."""

DEFAULT_JPEG_QUALITY = 90
"""JPEG quality of the ``encoded`` signature's frames when the client does not choose:
`SpiritNetClient.predict` and ``spiritnet predict``."""
