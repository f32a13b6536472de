"""Data benchmarks: teacher cost per frame pair, synthetic rendering, pipeline throughput.

    python benchmarks/data.py [--markdown docs/benchmarks.md] [--samples 24]

Everything runs at 256x448 (the Vimeo-90K size). Writes the ``data`` section.
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

H, W = 256, 448


def teacher_rows(samples):
    from spiritnet_tf.data import DISTeacher

    rows = []
    for preset in ("ultrafast", "fast", "medium"):
        teacher = DISTeacher(preset)
        seconds, epe = [], []
        for s in samples:
            for k in range(6):
                start = time.perf_counter()
                flow = teacher.backward_flow(s["frames"][k], s["frames"][k + 1])
                seconds.append(time.perf_counter() - start)
                epe.append(np.linalg.norm(flow - s["flows"][k], axis=-1).mean())
        rows.append((preset, 1000 * float(np.median(seconds)), float(np.mean(epe))))
    return rows


def pipeline_rate(dataset_fn, batch_size, batches):
    ds = iter(dataset_fn())
    next(ds)  # warm-up (tracing, first reads)
    start = time.perf_counter()
    for _ in range(batches):
        next(ds)
    return batches * batch_size / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--markdown", help="Markdown file whose `data` section is rewritten")
    parser.add_argument("--samples", type=int, default=16, help="synthetic samples to render")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)

    from report import machine_description, timings, today, update_section

    from spiritnet_tf.data import (
        generate_septuplet,
        read_septuplets,
        synthetic_dataset,
        training_pipeline,
        write_synthetic_records,
    )

    render_s = float(np.median(timings(lambda: generate_septuplet(0, H, W), 5)))
    samples = [generate_septuplet(i, H, W) for i in range(4)]
    teachers = teacher_rows(samples)

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        paths = write_synthetic_records(tmp, args.samples, H, W, seed=1, progress=False)
        write_s = (time.perf_counter() - start) / args.samples
        size_mb = sum(os.path.getsize(p) for p in paths) / args.samples / 2**20
        b = args.batch_size
        records = lambda: training_pipeline(  # noqa: E731
            read_septuplets(paths, with_depth=True).cache(), b, crop_size=(H, W), shuffle=64)
        records_rate = pipeline_rate(records, b, 30)
        records_det = lambda: training_pipeline(  # noqa: E731
            read_septuplets(paths, with_depth=True).cache(), b, crop_size=(H, W), shuffle=64,
            deterministic=True)
        det_rate = pipeline_rate(records_det, b, 30)
        live = lambda: training_pipeline(  # noqa: E731
            synthetic_dataset(10**6, H, W, seed=2), b, crop_size=(H, W), shuffle=0)
        live_rate = pipeline_rate(live, b, 3)

    lines = [
        f"Measured {today()} on {machine_description()}. Shared 2-core machine: timings are noisy.",
        "",
        "| What (256x448) | Figure |",
        "|---|---|",
        f"| Synthetic scene, render one septuplet | {1000 * render_s:.0f} ms |",
        f"| Synthetic scene, render + write TFRecord | {1000 * write_s:.0f} ms/sample, "
        f"{size_mb:.1f} MiB/sample on disk |",
    ]
    for preset, ms, epe in teachers:
        lines.append(f"| DIS teacher `{preset}`, one frame pair | {ms:.1f} ms "
                     f"(EPE vs exact synthetic flow {epe:.2f} px) |")
    lines += [
        f"| Pipeline from TFRecords (crop, flips, batch {b}) | {records_rate:.0f} samples/s |",
        f"| Same, `deterministic=True` | {det_rate:.0f} samples/s |",
        f"| Pipeline rendering synthetic scenes on the fly | {live_rate:.1f} samples/s |",
        "",
        "A Vimeo-90K septuplet needs 6 teacher pairs, so with DIS `medium` the teacher costs "
        f"about {6 * teachers[-1][1] / 1000:.2f} s per septuplet on this machine. TFRecord "
        "throughput is measured on a cached (in-memory) dataset, so it bounds the augmentation "
        "and batching cost, not disk reads.",
    ]
    text = "## Data (`benchmarks/data.py`)\n\n" + "\n".join(lines)
    print(text)
    if args.markdown:
        update_section(args.markdown, "data", text)


if __name__ == "__main__":
    main()
