"""Ensemble targets for distillation: copies of a training config's septuplets whose target
frames are the mean of several trained models' predictions instead of the real frames
(docs/training.md, "Ninetieth to ninety-sixth attempts").

For each ``videos`` or ``tfrecord`` source of CONFIG (synthetic sources are skipped: a
student config keeps them as they are), every ``--every``-th septuplet of each of its
files is read (the first, then every n-th: consecutive septuplets of a clip overlap), turned
into prediction mode as training turns it (`spiritnet_tf.data.to_prediction_mode`, one
frame later for models with ``flow_history``), every teacher predicts the targets from the
same state0 (`SpiritNet.infer`, each in the resampling mode its run recorded), and the
septuplet is written to ``OUT/source<k>/<file name>`` with its target frames replaced by
the teachers' mean (rounded to uint8); the frames before state0's, the flows (the flow
term's teacher flows) and the ids stay (depth, where a source has it, is not copied). A
student config reads ``OUT/source<k>`` as a ``tfrecord`` source. Files already written are
kept, so an interrupted run resumes. OUT/SOURCES.json records the config, the teachers (path,
SHA-256, since the bundled file's path names different weights over time, and the commands
that made them, from the manifest beside them) and ``--every``;
each OUT/source<k>/SOURCES.json records the same and the distilled folder's own
SOURCES.json (package, version, licence), so that a student's manifest names the real
footage behind its targets (`spiritnet_tf.training.bundle.data_sources` reads the folders
a run trained on).

    python configs/distill_data.py CONFIG OUT TEACHER.weights.h5 [TEACHER ...] [--every 3]
"""

import argparse
import json
import os
import time

import numpy as np


def distill_file(models, source, target, every=1, batch_size=4):
    """Writes every ``every``-th septuplet of ``source`` (a TFRecord file; the first, then
    every n-th) to ``target`` with its target frames replaced by the mean prediction of
    ``models`` (a list of SpiritNets with the same ``flow_history``); returns how many were
    written."""
    import tensorflow as tf

    from spiritnet_tf.data import read_septuplets
    from spiritnet_tf.data.pipeline import to_prediction_mode
    from spiritnet_tf.data.records import write_septuplets

    history = {m.config.flow_history for m in models}
    if len(history) != 1:
        raise ValueError("teachers must agree on flow_history (they start from one state0)")
    history = history.pop()
    septuplets = read_septuplets(source).shard(every, 0)
    # (septuplet, inputs, targets) as training takes them; the targets are its last frames
    samples_in = septuplets.map(lambda s: (s, *to_prediction_mode(s, history=history)))

    def samples():
        for batch, inputs, targets in samples_in.batch(batch_size):
            steps = targets["frames"].shape[1]
            mean = tf.add_n([m.infer(inputs, num_frames=steps, trace=True)["frames"]
                             for m in models]) / len(models)
            mean = np.round(np.clip(mean.numpy(), 0.0, 1.0) * 255.0).astype(np.uint8)
            for i, frames in enumerate(batch["frames"].numpy()):
                frames[-steps:] = mean[i]
                yield {"id": batch["id"][i].numpy().decode(), "frames": frames,
                       "flows": batch["flows"][i].numpy()}

    partial = target + ".part"
    count = write_septuplets(partial, samples())
    os.replace(partial, target)
    return count


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="the training config whose sources are distilled")
    parser.add_argument("out", help="folder for source<k>/ of the distilled records")
    parser.add_argument("teachers", nargs="+",
                        help="teachers' weights (a run's .weights.h5, or a .keras file)")
    parser.add_argument("--every", type=int, default=1,
                        help="distil every n-th septuplet of each file (default 1: all)")
    args = parser.parse_args(argv)
    if args.every < 1:
        parser.error(f"--every must be 1 or more, got {args.every}")

    from spiritnet_tf.io.weights import load_model
    from spiritnet_tf.training.config import load_config
    from spiritnet_tf.training.bundle import data_sources, file_sha256, weights_commands
    from spiritnet_tf.training.data import load_source
    from spiritnet_tf.training.run import repository_relative

    config = load_config(args.config)
    models = [load_model(path, run_config=True) for path in args.teachers]
    record = {"config": args.config, "every": args.every,
              "teachers": [{"path": repository_relative(os.path.abspath(path)),
                            "sha256": file_sha256(path),
                            "commands": weights_commands(path, repository_relative)}
                           for path in args.teachers],
              "command": " ".join(["python configs/distill_data.py", args.config, args.out,
                                   *args.teachers, "--every", str(args.every)])}
    for k, source in enumerate(config.train_data):
        if source["type"] not in ("videos", "tfrecord"):
            continue
        _, loaded = load_source(source, progress=False)
        folder = os.path.join(args.out, f"source{k}")
        os.makedirs(folder, exist_ok=True)
        for path in loaded["files"]:
            target = os.path.join(folder, os.path.basename(path))
            if os.path.exists(target):
                continue
            start = time.time()
            count = distill_file(models, path, target, every=args.every)
            print(f"{target}: {count} septuplets in {time.time() - start:.1f} s", flush=True)
        where = source["path"] if os.path.isdir(source["path"]) else os.path.dirname(source["path"])
        with open(os.path.join(folder, "SOURCES.json"), "w") as f:
            json.dump({**record, "distilled_from": repository_relative(source["path"]),
                       "sources": data_sources([where]).get(where)}, f, indent=1)
    with open(os.path.join(args.out, "SOURCES.json"), "w") as f:
        json.dump(record, f, indent=2)


if __name__ == "__main__":
    main()
