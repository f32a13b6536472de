"""Turns a finished training run into the bundled default weights (``make default-weights``).

    python -m spiritnet_tf.training.bundle runs/default_weights [--heldout data/heldout_videos]

1. evaluates the run on the held-out clips in prediction mode with
   `spiritnet_tf.training.run.evaluate_weights` (what ``spiritnet evaluate`` runs, called
   as a function; both resampling modes, the copy-frame / constant-velocity / oracle
   baselines; the report in ``RUN/heldout/``) and applies the quality gate of
   `spiritnet_tf.evaluation.quality_gate`;
2. animates the bundled example photo in generation mode (6 frames, default settings) and
   measures the sharpness ratio of the last frame to the input (the gate asks >= 0.8)
   and the mean flow magnitude at the working size (>= 0.5 px per frame, as the
   animate tests ask);
3. copies the run's ``model.weights.h5`` to `spiritnet_tf.config.DEFAULT_WEIGHTS` and
   writes ``MANIFEST.json`` beside it: the training manifest (config, data, steps,
   losses), both evaluations, the gate, the chosen ``resample_from`` (the mode with the
   higher held-out mean PSNR among those that pass the gate), sizes and checksums; paths
   inside the repository are recorded relative to it
   (`spiritnet_tf.training.run.repository_relative`).

It refuses to replace bundled weights when the gate fails, unless ``--force`` (the
manifest then records the failing gate, and the README must say so).
"""

import argparse
import hashlib
import json
import os
import shutil
import sys

from spiritnet_tf.config import DEFAULT_MANIFEST, DEFAULT_WEIGHTS, RESAMPLE_MODES
from spiritnet_tf.training.run import REPO

__all__ = ["bundle", "choose_mode", "example_check", "main", "MANIFEST_PATH", "MIN_SHARPNESS_RATIO",
           "MIN_EXAMPLE_MOTION"]

MANIFEST_PATH = DEFAULT_MANIFEST
MIN_SHARPNESS_RATIO = 0.8
MIN_EXAMPLE_MOTION = 0.5  # px per frame at the working size
EXAMPLE = os.path.join(REPO, "examples", "coffee.jpg")
EXAMPLE_FRAMES = 6


def _depth_mapping(config):
    """The depth mapping of a run's config (its model overrides on the preset)."""
    from spiritnet_tf.model import PRESETS

    return config.get("model", {}).get("depth_mapping", PRESETS[config["preset"]].depth_mapping)


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def example_check(weights, resample_from, image=EXAMPLE, seed=0):
    """``image`` animated with the defaults (6 frames): {"sharpness_ratio": last generated
    frame / input, full resolution; "motion_px": mean flow magnitude per frame, working size}.
    ``weights``: a file of the run (loaded with the run's architecture,
    `spiritnet_tf.io.weights.load_model` with ``run_config=True``)."""
    import numpy as np

    import spiritnet_tf
    from spiritnet_tf.evaluation import metrics
    from spiritnet_tf.io.weights import load_model

    model = load_model(weights, resample_from=resample_from, run_config=True)
    anim = spiritnet_tf.animate(image, num_frames=EXAMPLE_FRAMES, seed=seed, weights=model)
    frames = anim.frames.astype("float32") / 255.0  # uint8 [T+1, H, W, 3], input first
    sharpness = float(metrics.sharpness_ratio(frames[-1][None], frames[0][None])[0])
    motion = float(np.linalg.norm(anim.flows, axis=-1).mean())
    return {"sharpness_ratio": sharpness, "motion_px": motion}


def choose_mode(heldout_result, example):
    """The gate of each resampling mode and the mode to bundle.

    Args:
      heldout_result: the evaluation as ``evaluation.json`` holds it
        (`spiritnet_tf.evaluation.json_dict`; prediction mode) with
        rows for "model (previous)", "model (input)" and the baselines.
      example: mode -> `example_check` of the example photo.

    Returns:
      (modes, chosen): modes[mode] = {"quality_gate": checks + example checks +
      "passed", "heldout_summary": the mode's summary row}; chosen = the mode with the
      higher held-out mean PSNR among those that pass (among all when none passes).
    """
    from spiritnet_tf.evaluation import EvaluationResult, quality_gate

    result = EvaluationResult(**{k: heldout_result[k] for k in
                                 ("mode", "num_samples", "num_frames", "rows", "summary")})
    modes = {}
    for mode, check in example.items():
        name = f"model ({mode})"
        gate = quality_gate(result, name)
        gate["example_sharpness_ratio"] = check["sharpness_ratio"]
        gate["example_sharpness_at_least_0.8"] = check["sharpness_ratio"] >= MIN_SHARPNESS_RATIO
        gate["example_motion_px"] = check["motion_px"]
        gate["example_motion_at_least_0.5px"] = check["motion_px"] >= MIN_EXAMPLE_MOTION
        gate["passed"] = all(v for k, v in gate.items() if isinstance(v, bool) and k != "passed")
        summary = next(s for s in heldout_result["summary"] if s["method"] == name)
        modes[mode] = {"quality_gate": gate, "heldout_summary": summary}
    passing = [m for m in modes if modes[m]["quality_gate"]["passed"]]
    chosen = max(passing or list(modes), key=lambda m: modes[m]["heldout_summary"]["psnr"])
    return modes, chosen


def bundle(run_dir, heldout, *, size="128x224", cache_dir=None, force=False, progress=True):
    """Evaluates ``run_dir`` and installs its weights as the bundled default (see module doc)."""
    from spiritnet_tf.evaluation import json_dict
    from spiritnet_tf.layers.dafr import DAFRConfig
    from spiritnet_tf.training.cli import parse_size
    from spiritnet_tf.training.run import evaluate_weights, repository_relative

    run_dir = os.path.abspath(run_dir)
    with open(os.path.join(run_dir, "manifest.json")) as f:
        run = json.load(f)
    weights = os.path.join(run_dir, "model.weights.h5")
    out = os.path.join(run_dir, "heldout")
    result, _ = evaluate_weights(run_dir, heldout, out, mode="prediction",
                                 resample_from=list(RESAMPLE_MODES), size=parse_size(size),
                                 cache_dir=cache_dir or None, overwrite=True, progress=progress)
    heldout_result = json_dict(result)  # as evaluation.json holds it
    example = {mode: example_check(weights, mode) for mode in RESAMPLE_MODES}
    modes, chosen = choose_mode(heldout_result, example)
    if not modes[chosen]["quality_gate"]["passed"] and not force:
        raise SystemExit(f"quality gate failed in both modes: {json.dumps(modes, indent=2)}")
    os.makedirs(os.path.dirname(DEFAULT_WEIGHTS), exist_ok=True)
    shutil.copyfile(weights, DEFAULT_WEIGHTS)
    manifest = {
        "weights": os.path.basename(DEFAULT_WEIGHTS),
        "sha256": _sha256(DEFAULT_WEIGHTS),
        "bytes": os.path.getsize(DEFAULT_WEIGHTS),
        "preset": run["config"]["preset"],
        "resample_from": chosen,
        # The DAFR rule the gate measured, applied whenever these weights are loaded.
        "dafr": DAFRConfig.coerce(run.get("model_config", {}).get("dafr") or None).to_dict(),
        "depth_mapping": _depth_mapping(run["config"]),
        "resample_from_choice": "the mode with the higher held-out mean PSNR among those "
                                "passing the quality gate",
        "quality_gate": modes[chosen]["quality_gate"],
        "modes": modes,
        "heldout": {"data": os.path.relpath(heldout, REPO),
                    "size": size, "mode": "prediction",
                    "num_samples": heldout_result["num_samples"],
                    "summary": heldout_result["summary"], "rows": heldout_result["rows"]},
        "commands": ["make default-weights",
                     "sh configs/default_weights_data.sh data",
                     "spiritnet train --config configs/default_weights.json "
                     "--out runs/default_weights",
                     "python -m spiritnet_tf.training.bundle runs/default_weights"],
        "training": {k: run.get(k) for k in ("name", "config", "model_config", "loss_setup",
                                             "data", "steps", "samples_seen", "epochs",
                                             "final_losses", "git_revision", "versions",
                                             "started", "finished", "evaluation")},
    }
    manifest = repository_relative(json.loads(json.dumps(manifest, default=str)))  # no machine's paths
    with open(MANIFEST_PATH, "w") as f:
        json.dump(manifest, f, indent=2, default=str)
        f.write("\n")
    return manifest


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m spiritnet_tf.training.bundle",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", help="a finished `spiritnet train` run directory")
    parser.add_argument("--heldout", default=os.path.join("data", "heldout_videos"),
                        help="folder of held-out videos (default data/heldout_videos)")
    parser.add_argument("--size", default="128x224", help="clip size HxW (default 128x224)")
    parser.add_argument("--cache-dir", default=os.path.join("data", "cache", "heldout"))
    parser.add_argument("--force", action="store_true",
                        help="install the weights even when the quality gate fails")
    args = parser.parse_args(argv)
    manifest = bundle(args.run_dir, args.heldout, size=args.size, cache_dir=args.cache_dir,
                      force=args.force)
    print(json.dumps({k: manifest[k] for k in ("weights", "bytes", "resample_from",
                                               "quality_gate")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
