"""``spiritnet serve`` (the dev PredictionService) and ``spiritnet predict`` (its client)."""

import os
import sys

from spiritnet_tf.config import DEFAULT_EDGES, EDGES
from spiritnet_tf.limits import MAX_SERVING_FRAMES
from spiritnet_tf.serving.server import DEFAULT_HOST, DEFAULT_PORT, MODEL_NAME

__all__ = ["add_parser"]


def add_parser(subparsers):
    p = subparsers.add_parser(
        "serve", help="serve an exported SavedModel over gRPC (TF Serving's PredictionService)",
        description="Serve the newest numbered version in --model-dir over gRPC, like "
                    "tensorflow_model_server --model_base_path (docs/design.md §6). For "
                    "production use the tensorflow/serving Docker image.")
    p.add_argument("--model-dir", required=True,
                   help="base folder holding numbered SavedModel versions (BASE/1, BASE/2, ...)")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help=f"address to bind (default {DEFAULT_HOST}: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"gRPC port (default {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument("--model-name", default=MODEL_NAME, help=f"model name (default {MODEL_NAME})")
    p.set_defaults(func=_serve)

    p = subparsers.add_parser(
        "predict", help="animate a photo through a running PredictionService",
        description="Send IMAGE to a PredictionService (spiritnet serve or TF Serving) and "
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
    p.add_argument("--model-name", default=MODEL_NAME, help=f"model name (default {MODEL_NAME})")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds to wait (default 300)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.set_defaults(func=_predict)


def _serve(args):
    from spiritnet_tf.serving.server import PredictionServer

    server = PredictionServer(args.model_dir, host=args.host, port=args.port,
                              model_name=args.model_name)
    server.start()
    print(f"serving {server.path} as model {server.model_name!r} version {server.version} "
          f"on {server.address} (gRPC); Ctrl-C stops", flush=True)
    try:
        server.wait()
    except KeyboardInterrupt:
        print("stopping", file=sys.stderr)
    finally:
        server.stop(grace=1.0)
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
                                    edges=args.edges)
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
