"""spiritnet_tf.evaluation.gate: each check of the stricter quality gate on fixtures that fail
exactly that check (never on the bundled weights), and its figures measured on tiny
animations. The bundle step's refusal is tested in test_bundle.py."""

import numpy as np
import pytest

from spiritnet_tf.evaluation import gate

METHODS = ("model", "copy-frame", "constant-velocity")
COPY, CV = [30.0, 26.0, 24.0], [31.0, 26.0, 23.0]  # constant velocity: mean 26.67 dB


class _Result:
    """An evaluation result (rows per step, summary per method) as `quality_gate` reads it."""

    def __init__(self, model, flow_ratio=0.9):
        psnr = {"model": model, "copy-frame": COPY, "constant-velocity": CV}
        self.rows = [{"method": m, "step": t, "psnr": v} for m in METHODS for t, v in enumerate(psnr[m], 1)]
        self.summary = [{"method": m, "psnr": float(np.mean(psnr[m])),
                         "flow_ratio": flow_ratio if m == "model" else 0.0} for m in METHODS]


def _generation(**changes):
    mean = {"spearman_f1_z": 0.6, "spearman_flast_z": 0.45, "p90_p10_f1": 2.2, "outside_share": 0.002,
            "median_motion_px_448": 4.0, "last_frame_sharpness_ratio": 0.85, "closing_step_ratio": 1.2}
    num_photos = changes.pop("num_photos", 4)
    mean.update(changes)
    return {"mean": mean, "photos": {}, "num_photos": num_photos, "seeds": [0, 1, 2], "num_frames": 6}


PASSING_MODEL = [31.0, 27.0, 24.5]  # above copy-frame at every step, +0.83 dB over constant velocity

# Check -> (held-out model PSNR per step, flow ratio, generation figures) failing that check only.
FAILING = {
    # below copy-frame at step 3 (23.9 < 24) while 1.3 dB above constant velocity
    "psnr_margin_over_copy_frame_db": ([33.0, 29.0, 23.9], 0.9, _generation()),
    # above copy-frame at every step, but only 0.2 dB above constant velocity
    "psnr_margin_over_constant_velocity_db": ([30.3, 26.1, 24.2], 0.9, _generation()),
    "flow_ratio": (PASSING_MODEL, 0.4, _generation()),
    "num_photos": (PASSING_MODEL, 0.9, _generation(num_photos=3)),
    "spearman_f1_z": (PASSING_MODEL, 0.9, _generation(spearman_f1_z=0.49)),
    "spearman_flast_z": (PASSING_MODEL, 0.9, _generation(spearman_flast_z=0.39)),
    "p90_p10_f1": (PASSING_MODEL, 0.9, _generation(p90_p10_f1=1.9)),
    "outside_share": (PASSING_MODEL, 0.9, _generation(outside_share=0.0031)),
    "median_motion_px_448": (PASSING_MODEL, 0.9, _generation(median_motion_px_448=2.9)),
    "last_frame_sharpness_ratio": (PASSING_MODEL, 0.9, _generation(last_frame_sharpness_ratio=0.79)),
    "closing_step_ratio": (PASSING_MODEL, 0.9, _generation(closing_step_ratio=1.51)),
}


def test_a_model_at_every_goal_passes():
    result = gate.quality_gate(_Result(PASSING_MODEL), "model", _generation())
    assert result["passed"] is True and result["scope"] == "prediction+generation"
    assert set(result["checks"]) == set(FAILING)  # every check has its failing fixture below
    assert all(c["passed"] for c in result["checks"].values())
    margin = result["checks"]["psnr_margin_over_constant_velocity_db"]
    assert margin["value"] == pytest.approx(82.5 / 3 - 80 / 3) and margin["at_least"] == gate.MIN_PSNR_MARGIN_DB
    assert result["checks"]["psnr_margin_over_copy_frame_db"]["value"] == pytest.approx(0.5)
    assert gate.failed_checks(result) == []


@pytest.mark.parametrize("name", sorted(FAILING))
def test_each_check_fails_alone_on_its_fixture(name):
    model, flow_ratio, generation = FAILING[name]
    result = gate.quality_gate(_Result(model, flow_ratio), "model", generation)
    failed = [n for n, c in result["checks"].items() if not c["passed"]]
    assert failed == [name] and result["passed"] is False
    assert gate.failed_checks(result)[0].startswith(f"{name} (")


def test_the_goals_are_the_issues_and_values_on_the_goal_pass():
    assert (gate.MIN_PSNR_MARGIN_DB, gate.MIN_SPEARMAN_F1_Z, gate.MIN_SPEARMAN_FLAST_Z, gate.MIN_P90_P10_F1,
            gate.MAX_OUTSIDE_SHARE, gate.MIN_MEDIAN_MOTION_PX, gate.MIN_SHARPNESS_RATIO,
            gate.MAX_CLOSING_STEP_RATIO, gate.MIN_PHOTOS) == (0.3, 0.5, 0.4, 2.0, 0.003, 3.0, 0.8, 1.5, 4)
    assert (gate.GATE_SEEDS, gate.GATE_FRAMES, gate.REFERENCE_SIDE) == ((0, 1, 2), 6, 448)
    on_goal = _generation(spearman_f1_z=0.5, spearman_flast_z=0.4, p90_p10_f1=2.0, outside_share=0.003,
                          median_motion_px_448=3.0, last_frame_sharpness_ratio=0.8, closing_step_ratio=1.5)
    assert gate.quality_gate(_Result(PASSING_MODEL), "model", on_goal)["passed"]
    # Not a number fails (a figure that could not be measured is not at its goal).
    assert not gate.quality_gate(_Result(PASSING_MODEL), "model",
                                 _generation(spearman_f1_z=float("nan")))["passed"]


def test_prediction_only_gate_and_bad_input():
    result = gate.quality_gate(_Result(PASSING_MODEL), "model")
    assert result["scope"] == "prediction" and result["passed"]
    assert set(result["checks"]) == {"psnr_margin_over_copy_frame_db", "psnr_margin_over_constant_velocity_db",
                                     "flow_ratio"}
    with pytest.raises(ValueError, match="needs results for other"):
        gate.quality_gate(_Result(PASSING_MODEL), "other")
    incomplete = _generation()
    del incomplete["mean"]["closing_step_ratio"]
    with pytest.raises(ValueError, match="lack closing_step_ratio"):
        gate.quality_gate(_Result(PASSING_MODEL), "model", incomplete)


# ----------------------------------------------------------------------------- figures measured


def test_closing_step_of_loops():
    from spiritnet_tf.evaluation.motion import closing_step_ratio, loop_steps

    def frames(levels):
        return np.stack([np.full((4, 6, 3), v, np.uint8) for v in levels])

    steps, closing = loop_steps(frames([0, 10, 20, 30, 40, 50, 60]))  # a ramp: jumps back by 60
    assert steps == pytest.approx([10] * 6) and closing == pytest.approx(60)
    assert closing_step_ratio(frames([0, 10, 20, 30, 40, 50, 60])) == pytest.approx(6.0)
    assert closing_step_ratio(frames([0, 20, 40, 60, 40, 20])) == pytest.approx(1.0)  # a cycle
    assert closing_step_ratio(frames([7, 7, 7])) == 0.0
    with pytest.raises(ValueError, match="frames"):
        loop_steps(frames([1]))


def _photo(h, w, blobs=(8, 12)):
    import cv2

    coarse = np.random.default_rng(1).random(blobs + (3,)).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def _moving(h=32, w=48):
    """A depth-ordered animation (content moves right, near 3x as fast as far; 3 steps) of a
    photo twice the working size: its frames are the photo warped by the flows."""
    from spiritnet_tf.animation import Animation

    import cv2

    photo = _photo(2 * h, 2 * w)
    z = np.tile(np.linspace(0.3, 1.0, w, dtype=np.float32)[None, :, None], (h, 1, 1))
    flows = np.zeros((3, h, w, 2), np.float32)
    flows[..., 0] = -0.5 * z[..., 0]
    working = np.repeat(cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA)[None], 4, axis=0)
    return Animation(photo, working, flows, z, residuals=np.zeros((3, h, w, 3), np.float32))


def test_animation_figures_of_a_depth_ordered_animation():
    from spiritnet_tf.animation import Animation
    from spiritnet_tf.evaluation.motion import closing_step_ratio

    anim = _moving()
    figures = gate.animation_figures(anim)
    assert set(gate.GENERATION_FIGURES) <= set(figures)
    assert figures["spearman_f1_z"] == pytest.approx(1.0) and figures["spearman_flast_z"] == pytest.approx(1.0)
    z = anim.depth[..., 0]  # the speed is 0.5 z px per step
    assert figures["p90_p10_f1"] == pytest.approx(np.percentile(z, 90) / np.percentile(z, 10), rel=1e-4)
    assert figures["median_motion_px_448"] == pytest.approx(figures["median_motion_px"] * 448 / 48)
    assert 0 <= figures["outside_share"] < 0.3  # DIS's estimate on a tiny frame: loose
    assert figures["sample_outside_share"] == 0.0  # zoom keeps every sample inside
    assert figures["last_frame_sharpness_ratio"] > gate.MIN_SHARPNESS_RATIO  # a smooth warp
    # The closing step is that of the same model output played as a seamless loop (what
    # animate(..., loop="seamless") makes of it): it closes like a step; played as it is,
    # the animation jumps back by all three steps at once and fails the loop check.
    seamless = Animation(anim.image, anim.working_frames, anim.flows, anim.depth, loop="seamless",
                         residuals=anim.residuals)
    assert figures["closing_step_ratio"] == pytest.approx(closing_step_ratio(seamless.frames))
    assert figures["closing_step_ratio"] <= gate.MAX_CLOSING_STEP_RATIO
    assert closing_step_ratio(anim.frames) > 2.0
    with pytest.raises(ValueError, match="loop 'none'"):
        gate.animation_figures(seamless)


def test_sharpness_figure_is_last_frame_over_the_animations_first():
    """At the working size the frames are the model's: a last frame that is the photo keeps
    its sharpness, a blurred one fails the check."""
    import cv2

    from spiritnet_tf.animation import Animation

    h, w = 32, 48
    photo = _photo(h, w, blobs=(8, 12))
    z = np.full((h, w, 1), 0.5, np.float32)

    def still(last):
        return Animation(photo, np.stack([photo, photo, last]), np.zeros((2, h, w, 2), np.float32), z)

    assert gate.animation_figures(still(photo))["last_frame_sharpness_ratio"] == pytest.approx(1.0, abs=0.02)
    soft = gate.animation_figures(still(cv2.GaussianBlur(photo, (0, 0), 1.0)))
    assert soft["last_frame_sharpness_ratio"] < gate.MIN_SHARPNESS_RATIO


def test_measure_generation_means_over_photos_and_seeds(monkeypatch):
    import spiritnet_tf

    animated = []

    def animate(path, num_frames, seed, weights=None):
        animated.append((path, num_frames, seed, weights))
        return path  # stands for the animation

    figures = {"p": 1.0, "q": 3.0}
    monkeypatch.setattr(spiritnet_tf, "animate", animate)
    monkeypatch.setattr(gate, "animation_figures",
                        lambda path: {k: figures[path] + animated[-1][2] for k in gate.GENERATION_FIGURES})
    summary = gate.measure_generation("model", {"a": "p", "b": "q"})
    assert animated == [(p, 6, s, "model") for p in ("p", "q") for s in (0, 1, 2)]
    assert summary["num_photos"] == 2 and summary["seeds"] == [0, 1, 2] and summary["num_frames"] == 6
    assert summary["photos"]["b"]["mean"]["spearman_f1_z"] == pytest.approx(4.0)  # 3 + mean seed 1
    assert summary["mean"]["closing_step_ratio"] == pytest.approx(3.0)  # (2 + 4) / 2
    with pytest.raises(ValueError, match="at least one photo"):
        gate.measure_generation("model", {})


def test_lazy_package_names_survive_their_submodule(tmp_path, monkeypatch):
    """A public name spelled like its submodule (``evaluation.evaluate``) stays the function
    after another name of that submodule was read first."""
    import sys

    package = tmp_path / "lazypkg"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from spiritnet_tf.lazy import lazy_names\n"
        "__getattr__, __dir__ = lazy_names(__name__, {'evaluate': 'lazypkg.evaluate', 'Other': 'lazypkg.evaluate'})\n")
    (package / "evaluate.py").write_text("def evaluate():\n    return 1\n\nclass Other:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        from lazypkg import Other  # noqa: F401
        from lazypkg import evaluate

        assert callable(evaluate) and evaluate() == 1
    finally:
        for name in ("lazypkg", "lazypkg.evaluate"):
            sys.modules.pop(name, None)
