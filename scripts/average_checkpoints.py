"""Averages the weights of a run's per-epoch checkpoints (a uniform average of the last
epochs, "stochastic weight averaging" done after the run).

    python scripts/average_checkpoints.py RUN --first 21 --last 30 [--out FILE]

Writes ``RUN/checkpoints/average-021-030.weights.h5`` (or ``--out``): every float array
of the checkpoints ``epoch-021 .. epoch-030.weights.h5`` averaged, other arrays (step
counters) taken from the last. A file in ``RUN/checkpoints/`` loads with the run's
architecture (``spiritnet evaluate --weights FILE``). docs/training.md, "Forty-sixth and
forty-seventh attempts", quotes the figures.
"""

import argparse
import os
import shutil
import sys

import h5py
import numpy as np


def average(paths, out):
    """Writes into ``out`` a copy of the last of ``paths`` whose float datasets hold the
    mean of that dataset over all of ``paths``."""
    if os.path.exists(out):
        raise SystemExit(f"{out} exists; remove it first")
    shutil.copyfile(paths[-1], out)
    files = [h5py.File(p, "r") for p in paths]
    try:
        with h5py.File(out, "r+") as target:
            def visit(name, node):
                if isinstance(node, h5py.Dataset) and np.issubdtype(node.dtype, np.floating):
                    node[...] = np.mean([f[name][...].astype(np.float64) for f in files],
                                        axis=0).astype(node.dtype)
            target.visititems(visit)
    finally:
        for f in files:
            f.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--first", type=int, required=True)
    parser.add_argument("--last", type=int, required=True)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    folder = os.path.join(args.run, "checkpoints")
    paths = [os.path.join(folder, f"epoch-{e:03d}.weights.h5")
             for e in range(args.first, args.last + 1)]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise SystemExit(f"missing checkpoints: {', '.join(missing)}")
    out = args.out or os.path.join(folder, f"average-{args.first:03d}-{args.last:03d}.weights.h5")
    average(paths, out)
    print(f"wrote {out}: the mean of {len(paths)} checkpoints", file=sys.stderr)


if __name__ == "__main__":
    main()
