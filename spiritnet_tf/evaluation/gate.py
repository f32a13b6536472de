"""The quality gate: what weights must show before they become the bundled default
(docs/training.md, "The quality gate"; enforced by `spiritnet_tf.training.bundle`).

`quality_gate(result, method, generation)` returns ``{"checks": {name: check},
"passed": bool, ...}``; each check is ``{"value": the measured figure, "at_least" |
"at_most" | "above": the goal, "passed": bool}`` and ``passed`` is all of them. The goals
are the constants below (one place); the check names are the figures' names.

Prediction mode, on held-out real clips (``result``: a `spiritnet_tf.evaluation.evaluate`
result with ``method``, "copy-frame" and "constant-velocity"):
  * ``psnr_margin_over_copy_frame_db``: the smallest per-step PSNR margin over
    copy-frame, above 0 (the model above copy-frame at every step);
  * ``psnr_margin_over_constant_velocity_db``: mean PSNR minus constant velocity's, at
    least `MIN_PSNR_MARGIN_DB` (0.3 dB);
  * ``flow_ratio``: |flow| ratio over all steps at least `MIN_FLOW_RATIO` (0.5; kept from
    the first gate: a model that hardly moves fails).

Generation mode, on at least `MIN_PHOTOS` real photos (``generation``: what
`measure_generation` returns; `GATE_SEEDS` 0-2, `GATE_FRAMES` 6 frames, default settings:
edges "zoom", the bundled working side 448). Each figure is the **mean over photos and
seeds** (every photo has the same seeds, so each photo weighs the same); the per-photo
means are recorded beside it (``generation["photos"]``) but not checked one by one:
  * ``num_photos`` at least `MIN_PHOTOS` (4);
  * ``spearman_f1_z``: Spearman(|F_1|, z) at least `MIN_SPEARMAN_F1_Z` (0.5);
  * ``spearman_flast_z``: Spearman(|F_T|, z), T = 6, at least `MIN_SPEARMAN_FLAST_Z` (0.4);
  * ``p90_p10_f1``: p90/p10 of |F_1| at least `MIN_P90_P10_F1` (2);
  * ``outside_share``: share of the last frame's pixels whose content DIS finds outside
    the photo, at most `MAX_OUTSIDE_SHARE` (0.003 = 0.3 %);
  * ``median_motion_px_448``: median displacement first -> last frame in pixels of a
    448 px working size (`REFERENCE_SIDE`; the working-size figure scaled by 448 / the
    working size's long side), at least `MIN_MEDIAN_MOTION_PX` (3);
  * ``last_frame_sharpness_ratio``: sharpness (Laplacian variance) of the last frame over
    that of the animation's own first frame (the zoomed photo), at least
    `MIN_SHARPNESS_RATIO` (0.8);
  * ``closing_step_ratio``: with ``loop="seamless"``, the closing step (mean absolute
    grey-level difference, last frame to first) over the mean step, at most
    `MAX_CLOSING_STEP_RATIO` (1.5).

The motion figures are `spiritnet_tf.evaluation.motion`'s (one owner), the sharpness
`spiritnet_tf.evaluation.metrics.sharpness_ratio`; the photos
`spiritnet_tf.evaluation.photos`.
"""

import os

import numpy as np

__all__ = ["quality_gate", "prediction_checks", "generation_checks", "animation_figures",
           "measure_generation", "failed_checks", "GATE_SEEDS", "GATE_FRAMES", "MIN_PHOTOS",
           "REFERENCE_SIDE", "MIN_PSNR_MARGIN_DB", "MIN_FLOW_RATIO", "MIN_SPEARMAN_F1_Z",
           "MIN_SPEARMAN_FLAST_Z", "MIN_P90_P10_F1", "MAX_OUTSIDE_SHARE", "MIN_MEDIAN_MOTION_PX",
           "MIN_SHARPNESS_RATIO", "MAX_CLOSING_STEP_RATIO", "GENERATION_FIGURES"]

# Prediction mode (held-out clips).
MIN_PSNR_MARGIN_DB = 0.3  # mean PSNR above constant velocity, dB
MIN_FLOW_RATIO = 0.5
# Generation mode (real photos).
GATE_SEEDS = (0, 1, 2)
GATE_FRAMES = 6
MIN_PHOTOS = 4
REFERENCE_SIDE = 448  # median motion is counted in pixels of this working size
MIN_SPEARMAN_F1_Z = 0.5
MIN_SPEARMAN_FLAST_Z = 0.4
MIN_P90_P10_F1 = 2.0
MAX_OUTSIDE_SHARE = 0.003  # 0.3 %
MIN_MEDIAN_MOTION_PX = 3.0
MIN_SHARPNESS_RATIO = 0.8
# Seamless loops.
MAX_CLOSING_STEP_RATIO = 1.5

# Figure -> (comparison, goal) of the generation checks (num_photos is checked apart).
_GENERATION_GOALS = {
    "spearman_f1_z": ("at_least", MIN_SPEARMAN_F1_Z),
    "spearman_flast_z": ("at_least", MIN_SPEARMAN_FLAST_Z),
    "p90_p10_f1": ("at_least", MIN_P90_P10_F1),
    "outside_share": ("at_most", MAX_OUTSIDE_SHARE),
    "median_motion_px_448": ("at_least", MIN_MEDIAN_MOTION_PX),
    "last_frame_sharpness_ratio": ("at_least", MIN_SHARPNESS_RATIO),
    "closing_step_ratio": ("at_most", MAX_CLOSING_STEP_RATIO),
}
GENERATION_FIGURES = tuple(_GENERATION_GOALS)
_COMPARE = {"at_least": lambda v, g: v >= g, "at_most": lambda v, g: v <= g,
            "above": lambda v, g: v > g}


def _check(value, comparison, goal):
    value = float(value)
    return {"value": value, comparison: goal, "passed": bool(_COMPARE[comparison](value, goal))}


def prediction_checks(result, method="model"):
    """The prediction-mode checks of ``method`` (module docstring) on ``result`` (an
    `EvaluationResult` holding ``method``, "copy-frame" and "constant-velocity")."""
    summary = {s["method"]: s for s in result.summary}
    missing = [m for m in (method, "copy-frame", "constant-velocity") if m not in summary]
    if missing:
        raise ValueError(f"quality_gate needs results for {', '.join(missing)}")

    def psnr_per_step(name):
        return {r["step"]: r["psnr"] for r in result.rows if r["method"] == name}

    model, copy = psnr_per_step(method), psnr_per_step("copy-frame")
    if not model or set(model) != set(copy):
        raise ValueError(f"quality_gate needs per-step PSNR of {method} and copy-frame for the same steps")
    margin_copy = min(model[t] - copy[t] for t in model)
    margin_cv = summary[method]["psnr"] - summary["constant-velocity"]["psnr"]
    return {
        "psnr_margin_over_copy_frame_db": _check(margin_copy, "above", 0.0),
        "psnr_margin_over_constant_velocity_db": _check(margin_cv, "at_least", MIN_PSNR_MARGIN_DB),
        "flow_ratio": _check(summary[method]["flow_ratio"], "at_least", MIN_FLOW_RATIO),
    }


def generation_checks(generation):
    """The generation-mode and loop checks (module docstring) of ``generation``, the
    summary `measure_generation` returns (its ``"mean"`` figures and ``"num_photos"``)."""
    missing = [k for k in GENERATION_FIGURES if k not in generation.get("mean", {})]
    if missing or "num_photos" not in generation:
        raise ValueError(f"generation figures lack {', '.join(missing or ['num_photos'])}")
    checks = {"num_photos": _check(generation["num_photos"], "at_least", MIN_PHOTOS)}
    for name, (comparison, goal) in _GENERATION_GOALS.items():
        checks[name] = _check(generation["mean"][name], comparison, goal)
    return checks


def quality_gate(result, method="model", generation=None):
    """The gate of ``method`` (module docstring): ``{"checks": {name: {"value", goal,
    "passed"}}, "scope": "prediction" | "prediction+generation", "passed": all checks}``.

    Without ``generation`` only the prediction checks are made (what `spiritnet train`
    records after training); the bundle step always passes the generation figures.
    Raises ValueError when ``result`` lacks a method or ``generation`` a figure.
    """
    checks = prediction_checks(result, method)
    if generation is not None:
        checks.update(generation_checks(generation))
    return {"checks": checks,
            "scope": "prediction" if generation is None else "prediction+generation",
            "passed": all(c["passed"] for c in checks.values())}


def failed_checks(gate):
    """``"name (value; goal)"`` of each failing check of a `quality_gate` dict."""
    out = []
    for name, check in gate["checks"].items():
        if not check["passed"]:
            goal = next(f"{k.replace('_', ' ')} {v:g}" for k, v in check.items() if k in _COMPARE)
            out.append(f"{name} ({check['value']:.4g}; {goal})")
    return out


# ----------------------------------------------------------------------------- measurement


def animation_figures(anim):
    """The generation figures (`GENERATION_FIGURES`, plus the rest of
    `spiritnet_tf.evaluation.motion.motion_figures`) of one `spiritnet_tf.Animation`
    made with ``loop="none"``. The closing step is measured on the same model output
    played as a seamless loop (what ``animate(..., loop="seamless")`` returns for it:
    the loop changes only the full-resolution frames, not the model's run)."""
    from spiritnet_tf.animation import Animation
    from spiritnet_tf.evaluation import metrics
    from spiritnet_tf.evaluation.motion import closing_step_ratio, motion_figures

    if anim.loop != "none":
        raise ValueError(f"animation_figures needs an animation with loop 'none', got {anim.loop!r}")
    figures = motion_figures(anim)
    figures["median_motion_px_448"] = (figures["median_motion_px"] * REFERENCE_SIDE
                                       / max(anim.working_size))
    first, last = anim.frame(0), anim.frame(anim.num_frames)
    figures["last_frame_sharpness_ratio"] = float(metrics.sharpness_ratio(
        last[None].astype(np.float32) / 255, first[None].astype(np.float32) / 255)[0])
    seamless = Animation(anim.image, anim.working_frames, anim.flows, anim.depth, loop="seamless",
                         residuals=anim.residuals, edges=anim.edges,
                         warp_outside=anim.warp_outside)
    figures["closing_step_ratio"] = closing_step_ratio(
        np.stack([seamless.frame(t) for t in seamless.frame_order()]))
    return figures


def measure_generation(model, photos, *, seeds=None, num_frames=None, sheets=None, progress=False):
    """Animates each photo with ``model`` (a SpiritNet or weights, as
    `spiritnet_tf.animate` takes them) for each seed (default `GATE_SEEDS`, `GATE_FRAMES`
    frames, other settings default) and returns ``{"mean": {figure: mean over photos and
    seeds}, "photos": {name: {"path", "per_seed": [figures], "mean": {figure: mean over
    seeds}}}, "num_photos", "seeds", "num_frames"}`` for `quality_gate`.

    ``photos``: {name: path}, e.g. `spiritnet_tf.evaluation.photos.prepare_photos`.
    ``sheets``: a folder that receives ``<name>.jpg`` per photo, a contact sheet of the first
    seed's frames (frame 0 first), to look at before the figures are trusted (replaced
    when present)."""
    import spiritnet_tf

    seeds = list(GATE_SEEDS if seeds is None else seeds)
    num_frames = GATE_FRAMES if num_frames is None else num_frames
    if not photos or not seeds:
        raise ValueError("measure_generation needs at least one photo and one seed")
    per_photo = {}
    for name, path in photos.items():
        rows = []
        for seed in seeds:
            anim = spiritnet_tf.animate(path, num_frames, seed, weights=model)
            rows.append(animation_figures(anim))
            if sheets and seed == seeds[0]:
                from spiritnet_tf.io import contact_sheet, write_image

                os.makedirs(sheets, exist_ok=True)
                write_image(contact_sheet(anim.frames, columns=num_frames + 1, width=200),
                            os.path.join(sheets, f"{name}.jpg"), overwrite=True)
            if progress:
                print(f"gate: {name} seed {seed}: "
                      + ", ".join(f"{k} {rows[-1][k]:.3g}" for k in GENERATION_FIGURES), flush=True)
        per_photo[name] = {"path": path, "per_seed": rows,
                           "mean": {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}}
    keys = per_photo[next(iter(per_photo))]["mean"]
    return {"mean": {k: float(np.mean([p["mean"][k] for p in per_photo.values()])) for k in keys},
            "photos": per_photo, "num_photos": len(per_photo), "seeds": seeds,
            "num_frames": num_frames}
