"""Serving benchmark: response size and latency of the SavedModel's ``serving_default``
(uint8 frames and float32 flows) against ``encoded`` (JPEG frames, no flows).

    python benchmarks/serving.py --markdown docs/benchmarks.md [--repeats 3]

The bundled default weights are exported (`export_savedmodel`, default working side 448
and output side 1024) and served by the dev server (`PredictionServer`) in this process;
the client (`SpiritNetClient`, 64 MiB channel limit so that both answers arrive) sends a
textured 1024x768 photo (the example photo mirrored 2x2) for 6 frames, seed 0, edges
"zoom". Size: the serialised PredictResponse; "fits 4 MB": whether a stock gRPC client,
whose default receive limit is 4 MiB, takes it. Latency: median (min) of ``--repeats``
round trips after one warm-up, TensorFlow limited to 2 threads per pool.
"""

import argparse
import io
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from PIL import Image  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from report import machine_description, today, update_section  # noqa: E402

STOCK_LIMIT = 4 * 1024 * 1024  # gRPC's default receive limit


def textured_photo():
    example = np.asarray(Image.open(os.path.join(ROOT, "examples", "coffee.jpg")).convert("RGB"))
    row = np.concatenate([example, example[:, ::-1]], 1)
    pixels = np.concatenate([row, row[::-1]], 0)[:768, :1024]
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", help="Markdown file whose `serving` section to rewrite")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=6)
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(2)

    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from spiritnet_tf.export import export_savedmodel
    from spiritnet_tf.limits import DEFAULT_JPEG_QUALITY, MAX_MESSAGE_BYTES
    from spiritnet_tf.model import SpiritNet
    from spiritnet_tf.serving import PredictionServer, SpiritNetClient

    photo = textured_photo()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        model = SpiritNet.from_preset("small", weights="default")
        export_savedmodel(model, os.path.join(folder, "spiritnet", "1"))
        with PredictionServer(os.path.join(folder, "spiritnet"), port=0) as server, \
                SpiritNetClient(f"127.0.0.1:{server.port}", timeout=600) as client, \
                grpc.insecure_channel(f"127.0.0.1:{server.port}", options=[
                    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            cases = [("serving_default", dict(encoded=False)),
                     (f"encoded (JPEG quality {DEFAULT_JPEG_QUALITY})", dict(encoded=True))]
            for name, options in cases:
                signature = "encoded" if options["encoded"] else "serving_default"
                inputs = {"image": tf.make_tensor_proto([photo], dtype=tf.string),
                          "num_frames": tf.make_tensor_proto(args.frames, dtype=tf.int32),
                          "seed": tf.make_tensor_proto(0, dtype=tf.int64),
                          "edges": tf.make_tensor_proto("zoom", dtype=tf.string)}
                if options["encoded"]:
                    inputs["quality"] = tf.make_tensor_proto(DEFAULT_JPEG_QUALITY, dtype=tf.int32)
                request = predict_pb2.PredictRequest()
                request.model_spec.name = client.model_name
                request.model_spec.signature_name = signature
                for key, value in inputs.items():
                    request.inputs[key].CopyFrom(value)
                size = stub.Predict(request, timeout=600).ByteSize()  # also the warm-up
                times = []
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    client.predict(photo, num_frames=args.frames, seed=0, **options)
                    times.append(time.perf_counter() - start)
                rows.append((name, size, float(np.median(times)), float(np.min(times))))
    load = os.getloadavg()[0]
    lines = [
        "## Serving responses (`benchmarks/serving.py`)",
        "",
        f"Measured {today()} on {machine_description()}.",
        f"Bundled weights exported with the defaults (working side 448, output side 1024), "
        f"served by the dev server in the benchmark's process; a textured 1024x768 photo "
        f"(the example photo mirrored 2x2), {args.frames} frames, edges \"zoom\". Latency: "
        f"client round trip (the client decodes the JPEGs), median (min) of {args.repeats} "
        "after one warm-up.",
        f"Load average at the end of the run: {load:.1f}.",
        "",
        "| signature | response | fits a stock client (4 MiB) | latency median (min) |",
        "|---|---|---|---|",
    ]
    for name, size, median, low in rows:
        lines.append(f"| {name} | {size / 2**20:.2f} MiB | {'yes' if size < STOCK_LIMIT else 'no'} "
                     f"| {median:.2f} s ({low:.2f} s) |")
    markdown = "\n".join(lines)
    print(markdown)
    if args.markdown:
        update_section(args.markdown, "serving", markdown)


if __name__ == "__main__":
    main()
