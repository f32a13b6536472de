"""Joins separately trained runs of one recipe into an ensemble (`SpiritNetConfig.members`).

    python -m spiritnet_tf.training.ensemble runs/ensemble runs/default_weights_v72 \
        runs/default_weights_v73 ... [--force]

An ensemble of K members holds K cells of the same architecture sharing one depth net:
each member runs its own recurrence from the same first state (depth, DAFR's flow0) and
the model's frames, flows and residuals are their mean at every step (`SpiritNet`). Its
members are trained alone (``spiritnet train``, one seed each) and joined here; their
depth nets and DAFR must be the same (a recipe whose depth net is pretrained and frozen,
``depth_learning_rate`` 0), since the ensemble keeps one.

The output folder is a run directory as ``spiritnet train`` writes one
(``model.weights.h5``, ``model.keras``, ``manifest.json``), so that ``spiritnet evaluate``
and the bundle step (`spiritnet_tf.training.bundle`) take it as they take a run; its
manifest is the first member's, with ``members`` set in the model's configuration and a
``"members"`` list recording each run (path, seed, commit, steps, weights checksum).
"""

import argparse
import copy
import datetime
import json
import os
import sys

import numpy as np

from spiritnet_tf.training.bundle import file_sha256

__all__ = ["join_models", "join_runs", "main"]


def _same_weights(a, b):
    return len(a) == len(b) and all(x.shape == y.shape and np.array_equal(x, y)
                                    for x, y in zip(a, b))


def join_models(models):
    """One `SpiritNet` whose members are ``models`` (SpiritNets with ``members`` 1 and the
    same configuration, each built with its weights): member k's cell carries model k's
    weights; the depth net and DAFR are the first model's.

    Raises:
      ValueError: fewer than two models, an ensemble among them, configurations that
        differ, or depth nets / DAFR weights that differ (the ensemble has one of each).
    """
    import dataclasses

    models = list(models)
    if len(models) < 2:
        raise ValueError(f"an ensemble needs at least two models, got {len(models)}")
    first = models[0].config
    for k, model in enumerate(models):
        model.build()
        if model.config.members != 1:
            raise ValueError(f"model {k} is an ensemble already ({model.config.members} members)")
        if model.config != first:
            fields = [f.name for f in dataclasses.fields(first)
                      if getattr(first, f.name) != getattr(model.config, f.name)]
            raise ValueError(f"model {k}'s configuration differs from model 0's in {fields}")
        for part in ("depth_net", "dafr"):
            if not _same_weights(getattr(model, part).get_weights(),
                                 getattr(models[0], part).get_weights()):
                raise ValueError(f"model {k}'s {part} differs from model 0's; an ensemble keeps "
                                 "one (train the members with the same frozen depth net)")
    return models[0].with_member_cells([model.cell for model in models])


def _member_record(run_dir, run, relative):
    weights = os.path.join(run_dir, "model.weights.h5")
    return {"run": relative(os.path.abspath(run_dir)), "name": run.get("name"),
            "seed": (run.get("config") or {}).get("seed"), "git_revision": run.get("git_revision"),
            "steps": run.get("steps"), "command": run.get("command"),
            "final_losses": run.get("final_losses"), "weights_sha256": file_sha256(weights)}


def join_runs(run_dirs, out, *, force=False):
    """Joins the finished runs ``run_dirs`` (`join_models` of their weights, each with its
    run's architecture) into the run directory ``out`` (module docstring); returns its
    manifest.

    Raises:
      FileExistsError when ``out`` holds files and not ``force`` (nothing is overwritten
      without it); FileNotFoundError for a run without ``manifest.json`` or
      ``model.weights.h5``; ValueError as `join_models`, or when the runs trained on
      different data.
    """
    from spiritnet_tf.io.weights import load_model
    from spiritnet_tf.training.run import repository_relative, write_portable_json

    run_dirs = [os.path.abspath(r) for r in run_dirs]
    out = os.path.abspath(out)
    if out in run_dirs:
        raise ValueError(f"{out}: the output folder is one of the runs")
    if os.path.isdir(out) and os.listdir(out) and not force:
        raise FileExistsError(f"{out}: the folder is not empty (--force replaces its ensemble)")
    runs = []
    for run_dir in run_dirs:
        paths = [os.path.join(run_dir, name) for name in ("manifest.json", "model.weights.h5")]
        for path in paths:
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path}: missing; is {run_dir} a finished training run?")
        with open(paths[0]) as f:
            runs.append(json.load(f))
    for run_dir, run in zip(run_dirs[1:], runs[1:]):
        if run.get("data") != runs[0].get("data"):
            raise ValueError(f"{run_dir} trained on other data than {run_dirs[0]}")
    models = [load_model(os.path.join(r, "model.weights.h5"), run_config=True) for r in run_dirs]
    ensemble = join_models(models)

    os.makedirs(out, exist_ok=True)
    ensemble.save_weights(os.path.join(out, "model.weights.h5"))
    ensemble.save(os.path.join(out, "model.keras"))
    manifest = copy.deepcopy(runs[0])
    manifest["name"] = os.path.basename(out)
    manifest["config"].setdefault("model", {})["members"] = len(runs)
    manifest["model_config"] = ensemble.config.to_dict()
    manifest["members"] = [_member_record(r, run, repository_relative)
                           for r, run in zip(run_dirs, runs)]
    manifest["command"] = " ".join(["python -m spiritnet_tf.training.ensemble"] + [
        repository_relative(p) for p in (out, *run_dirs)])
    manifest["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return write_portable_json(os.path.join(out, "manifest.json"), manifest)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m spiritnet_tf.training.ensemble",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="the ensemble's run directory (created)")
    parser.add_argument("runs", nargs="+", help="finished `spiritnet train` runs of one recipe")
    parser.add_argument("--force", action="store_true", help="replace an ensemble in OUT")
    args = parser.parse_args(argv)
    try:
        manifest = join_runs(args.runs, args.out, force=args.force)
    except (OSError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    print(f"{args.out}: {len(manifest['members'])} members "
          f"({', '.join(m['name'] or m['run'] for m in manifest['members'])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
