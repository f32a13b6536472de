"""``spiritnet serve`` (the dev PredictionService) and ``spiritnet predict`` (its client)."""

import os
import signal
import sys

from spiritnet_tf.cli import add_command, ranged
from spiritnet_tf.config import DEFAULT_EDGES, EDGES
from spiritnet_tf.limits import (
    DEFAULT_JPEG_QUALITY,
    JPEG_QUALITY_RANGE,
    MAX_IMAGES_PER_REQUEST,
    MAX_PIXELS,
    MAX_REQUEST_PIXELS,
    MAX_SERVING_FRAMES,
    STOP_GRACE_SECONDS,
)
from spiritnet_tf.serving import DEFAULT_HOST, DEFAULT_PORT, MODEL_NAME

__all__ = ["add_parser"]


def add_parser(subparsers):
    p = add_command(subparsers, "serve",
                    "Serve the newest numbered version in --model-dir over gRPC, like "
                    "tensorflow_model_server --model_base_path (docs/design.md §6). For "
                    "production use the tensorflow/serving Docker image.")
    p.add_argument("--model-dir", required=True,
                   help="base folder holding numbered SavedModel versions (BASE/1, BASE/2, ...)")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help=f"address to bind (default {DEFAULT_HOST}: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"gRPC port (default {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument("--model-name", default=MODEL_NAME, help=f"model name (default {MODEL_NAME})")
    p.add_argument("--max-pixels", type=ranged(int, 1), default=MAX_PIXELS,
                   help=f"largest image accepted, in pixels (default {MAX_PIXELS:,})")
    p.add_argument("--max-request-pixels", type=ranged(int, 1), default=MAX_REQUEST_PIXELS,
                   help="most decoded pixels of all the images of one request; more get "
                        f"RESOURCE_EXHAUSTED (default {MAX_REQUEST_PIXELS:,})")
    p.add_argument("--max-images", type=ranged(int, 1), default=MAX_IMAGES_PER_REQUEST,
                   help="most images in one request; more get RESOURCE_EXHAUSTED "
                        f"(default {MAX_IMAGES_PER_REQUEST})")
    p.add_argument("--grace", type=ranged(float, 0), default=STOP_GRACE_SECONDS,
                   help="seconds the calls in flight may run on after SIGTERM or Ctrl-C "
                        f"before they are cancelled (default {STOP_GRACE_SECONDS:g})")
    p.add_argument("--onednn", action="store_true",
                   help="keep TensorFlow's oneDNN CPU kernels and their memory pool, which "
                        "never gives memory back (by default the server restarts itself "
                        "with TF_ENABLE_ONEDNN_OPTS=0)")
    p.set_defaults(func=_serve)

    p = add_command(subparsers, "predict",
                    "Send IMAGE to a PredictionService (spiritnet serve or TF Serving) and "
                    "write the input followed by the generated frames.")
    p.add_argument("image", help="photo to animate (JPEG, PNG, ...)")
    p.add_argument("-o", "--output", required=True,
                   help="animation to write: .gif, .mp4, .webp, or a folder of PNGs")
    p.add_argument("--fps", type=float, default=None, help="frames per second of the output")
    p.add_argument("--server", default=f"{DEFAULT_HOST}:{DEFAULT_PORT}",
                   help=f"HOST:PORT of the server (default {DEFAULT_HOST}:{DEFAULT_PORT})")
    p.add_argument("--frames", type=int, default=6,
                   help=f"generated frames T, 1..{MAX_SERVING_FRAMES} (default 6); the "
                        "output holds T+1 frames, the input first")
    p.add_argument("--seed", type=int, default=0, help="random seed of the motion (default 0)")
    p.add_argument("--edges", choices=EDGES, default=DEFAULT_EDGES,
                   help="zoom: crop every frame alike so that no pixel shows content from "
                        "outside the photo; extend: no crop (default %(default)s)")
    p.add_argument("--quality", type=ranged(int, *JPEG_QUALITY_RANGE), default=DEFAULT_JPEG_QUALITY,
                   help="JPEG quality of the frames the server sends back (the SavedModel's "
                        "'encoded' signature), {}..{} (default %(default)s)".format(
                            *JPEG_QUALITY_RANGE))
    p.add_argument("--exact", action="store_true",
                   help="ask serving_default for the exact frames (and flows) instead of JPEG "
                        "frames; its response of a large photo can pass gRPC's default 4 MB "
                        "limit of stock clients")
    p.add_argument("--model-name", default=MODEL_NAME, help=f"model name (default {MODEL_NAME})")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait (default 300)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.set_defaults(func=_predict)


class _Stop(Exception):
    """Raised in the main thread by the SIGTERM handler."""


def _raise_stop(signum, frame):
    raise _Stop()


_ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"


def _restart_without_onednn_pool():
    """Turns oneDNN's memory pool off (server module docstring): sets
    ``TF_ENABLE_ONEDNN_OPTS=0`` when TensorFlow is not loaded yet, else re-executes
    this command line with it when the pool is active; returns without doing so when
    the command was not started from the command line (nothing to re-execute)."""
    if "tensorflow" not in sys.modules:  # TensorFlow reads it when it loads
        os.environ[_ONEDNN_ENV] = "0"
        return
    from spiritnet_tf.serving.server import onednn_memory_pool

    if (os.environ.get(_ONEDNN_ENV) == "0" or not onednn_memory_pool()
            or sys.argv[1:2] != ["serve"] or len(getattr(sys, "orig_argv", ())) < 2):
        return
    print(f"spiritnet serve: restarting with {_ONEDNN_ENV}=0, so that memory freed after "
          "large requests goes back to the system (--onednn keeps oneDNN)",
          file=sys.stderr, flush=True)
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]],
              {**os.environ, _ONEDNN_ENV: "0"})


def _serve(args):
    from spiritnet_tf.serving.server import PredictionServer

    if not args.onednn:
        _restart_without_onednn_pool()
    server = PredictionServer(args.model_dir, host=args.host, port=args.port,
                              model_name=args.model_name, max_pixels=args.max_pixels,
                              max_request_pixels=args.max_request_pixels,
                              max_images=args.max_images)
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    try:
        server.start()
        print(f"serving {server.path} as model {server.model_name!r} version {server.version} "
              f"on {server.address} (gRPC); Ctrl-C or SIGTERM stops", flush=True)
        try:
            server.wait()
            reason = "the server ended"
        except KeyboardInterrupt:
            reason = "interrupted"
        except _Stop:
            reason = "SIGTERM received"
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the drain
        in_flight = server.in_flight
        print(f"spiritnet serve: {reason}; stopping: new calls are refused, "
              f"{in_flight} call(s) in flight get up to {args.grace:g} s to finish",
              file=sys.stderr, flush=True)
        server.stop(grace=args.grace)
        left = server.in_flight
        print("spiritnet serve: stopped" + (
            f" ({left} call(s) still running after the grace period were cancelled; the "
            "process ends when their model calls return)"
            if left else " (every call in flight finished)"), file=sys.stderr, flush=True)
    finally:
        server.stop(grace=0)
        signal.signal(signal.SIGTERM, previous)
    return 0


def _predict(args):
    from spiritnet_tf.serving.client import ServingError, SpiritNetClient

    from spiritnet_tf.io.writers import DEFAULT_FPS, output_format, write_animation

    output_format(args.output)  # unknown extensions fail before the request
    if os.path.exists(args.output) and not args.overwrite:
        raise FileExistsError(f"{args.output} exists; pass --overwrite to replace it")
    with open(args.image, "rb") as f:
        encoded = f.read()
    try:
        with SpiritNetClient(args.server, model_name=args.model_name,
                             timeout=args.timeout) as client:
            result = client.predict(encoded, num_frames=args.frames, seed=args.seed,
                                    edges=args.edges, encoded=not args.exact,
                                    quality=args.quality)
    except ServingError as e:
        print(f"spiritnet predict: {args.server}: {e}", file=sys.stderr)
        return 1
    frames = result["frames"][0]  # [T, H, W, 3] uint8
    write_animation([result["first_frame"][0], *frames], args.output, fps=args.fps or DEFAULT_FPS,
                    overwrite=args.overwrite)
    print(f"wrote {args.output}: {len(frames) + 1} frames "
          f"({frames.shape[2]}x{frames.shape[1]}, input first)")
    scale = float(result["motion_scale"][0])
    if scale < 1:
        print(f"note: the motion was scaled down to {scale:.0%} so that the zoom stays within "
              "its limit and no pixel shows content from outside the photo")
    return 0
