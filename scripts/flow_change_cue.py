"""How much the flow changes from one step to the next, per video of cached septuplets: the
cue a `flow_history` model sees (`spiritnet_tf.layers.cell.flow_change`).

    python scripts/flow_change_cue.py CACHE_DIR [CACHE_DIR ...]

For each septuplet, mean |F_{3->2}(x) - F_{2->1}(x + F_{3->2}(x))| over mean |F_{3->2}|
(the history protocol's flow0 and flow before); prints per video the median and quartiles
over its septuplets. docs/training.md, "Forty-eighth and forty-ninth attempts", quotes them.
"""

import glob
import os
import sys

import numpy as np

from spiritnet_tf.data import read_septuplets
from spiritnet_tf.data.pipeline import training_pipeline
from spiritnet_tf.layers.cell import flow_change
from spiritnet_tf.training.bundle import septuplets_by_video


def change_ratios(septuplets):
    """mean |change| / mean |flow0| of each septuplet."""
    ratios = []
    for inputs, _ in training_pipeline(septuplets, 8, crop_size=None, flip=False, shuffle=0,
                                       repeat=False, deterministic=True, drop_remainder=False,
                                       history=True):
        change = np.linalg.norm(flow_change(inputs["flow_before"], inputs["flow0"]), axis=-1)
        flow = np.linalg.norm(inputs["flow0"], axis=-1)
        ratios += list(change.mean(axis=(1, 2)) / np.maximum(flow.mean(axis=(1, 2)), 1e-6))
    return np.array(ratios)


def main(caches):
    for cache in caches:
        files = sorted(glob.glob(os.path.join(cache, "*.tfrecord")))
        if not files:
            raise SystemExit(f"no *.tfrecord in {cache}")
        ids = [s["id"].numpy().decode() for s in read_septuplets(files)]
        for video, ds in septuplets_by_video(files, ids):
            r = change_ratios(ds)
            print(f"{os.path.basename(video)}: {len(r)} septuplets, median {np.median(r):.2f}, "
                  f"quartiles {np.percentile(r, 25):.2f}-{np.percentile(r, 75):.2f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
