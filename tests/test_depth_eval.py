"""Real-depth evaluation (`spiritnet evaluate-depth`) on a tiny set in the real format."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from spiritnet_tf import cli
from spiritnet_tf.evaluation.depth import (
    depth_baselines,
    edge_spearman,
    evaluate_depth,
    gradient_magnitude,
    load_depth_scenes,
    spearman,
    ssi_mae,
)
from spiritnet_tf.evaluation.depth_scenes import parallax_inverse_depth


def _write_scene(folder, name, truth, size=(40, 48), seed=0):
    sub = os.path.join(folder, name)
    os.makedirs(sub)
    rng = np.random.default_rng(seed)
    image = (rng.random(size + (3,)) * 255).astype(np.uint8)
    Image.fromarray(image).save(os.path.join(sub, "image.png"))
    np.save(os.path.join(sub, "inverse_depth.npy"), truth.astype(np.float32))
    return sub


@pytest.fixture
def scenes(tmp_path):
    h, w = 40, 48
    rows = np.repeat(np.arange(h, dtype=np.float32)[:, None], w, 1)
    lower = rows.copy()
    lower[:4] = np.nan  # no truth there
    _write_scene(tmp_path, "a_lower", lower)
    _write_scene(tmp_path, "b_upper", -rows + 0.01 * np.arange(w)[None], seed=1)
    return str(tmp_path)


def test_spearman_and_scale_shift_invariant_error():
    rng = np.random.default_rng(0)
    truth = rng.random((20, 30))
    assert spearman(3 * truth + 5, truth) == pytest.approx(1.0)
    assert spearman(-np.exp(truth), truth) == pytest.approx(-1.0)
    assert spearman(np.zeros_like(truth), truth) == 0.0
    # ties share their mean rank: two ranks only, the correlation of a step function
    step = (truth > 0.5).astype(float)
    assert 0.7 < spearman(step, truth) < 0.9
    assert ssi_mae(2.5 * truth - 7, truth) == pytest.approx(0.0, abs=1e-9)
    # the truth's own scale does not matter; a reversed order is no better than constant
    assert ssi_mae(truth, 10 * truth + 3) == pytest.approx(0.0, abs=1e-9)
    constant = ssi_mae(np.zeros_like(truth), truth)
    assert ssi_mae(-truth, truth) == pytest.approx(constant)
    assert constant > 0.5


def test_baselines_and_model_scores_on_a_tiny_real_format_set(scenes):
    loaded = load_depth_scenes(scenes)
    assert [s.name for s in loaded] == ["a_lower", "b_upper"]
    assert loaded[0].valid[:4].sum() == 0 and loaded[0].valid[4:].all()
    base = depth_baselines(loaded[0].image)
    assert set(base) == {"constant", "lower_is_nearer", "sharper_is_nearer"}
    result = evaluate_depth(loaded, predict=lambda image: -np.arange(image.shape[0])[:20, None]
                            * np.ones((20, 24)))  # half size: resized to the truth
    by = {s["scene"]: {r["method"]: r for r in s["rows"]} for s in result["scenes"]}
    assert by["a_lower"]["lower_is_nearer"]["spearman"] == pytest.approx(1.0)
    assert by["a_lower"]["lower_is_nearer"]["ssi_mae"] == pytest.approx(0.0, abs=1e-6)
    assert by["b_upper"]["lower_is_nearer"]["spearman"] < -0.99
    assert by["a_lower"]["model"]["spearman"] < -0.99  # "upper is nearer"
    assert by["b_upper"]["model"]["spearman"] > 0.99
    assert by["a_lower"]["constant"]["spearman"] == 0.0
    assert result["mean"]["constant"]["spearman"] == 0.0


def test_command_prints_every_scene_and_method(scenes, tmp_path, capsys):
    out = str(tmp_path / "r.json")
    assert cli.main(["evaluate-depth", scenes, "--baselines-only", "--json", out]) == 0
    text = capsys.readouterr().out
    for word in ("a_lower", "b_upper", "constant", "lower_is_nearer", "sharper_is_nearer", "mean"):
        assert word in text
    with open(out) as f:
        assert len(json.load(f)["scenes"]) == 2
    assert cli.main(["evaluate-depth", scenes, "--baselines-only", "--json", out]) == 1  # no overwrite
    assert "exists" in capsys.readouterr().err


def test_bad_inputs_name_the_problem(tmp_path, capsys):
    missing = str(tmp_path / "nowhere")
    assert cli.main(["evaluate-depth", missing, "--baselines-only"]) == 1
    assert "nowhere" in capsys.readouterr().err
    sub = _write_scene(tmp_path, "broken", np.zeros((40, 48)))
    with open(os.path.join(sub, "inverse_depth.npy"), "wb") as f:
        f.write(b"not numpy")
    assert cli.main(["evaluate-depth", str(tmp_path), "--baselines-only"]) == 1
    assert os.path.join("broken", "inverse_depth.npy") in capsys.readouterr().err
    np.save(os.path.join(sub, "inverse_depth.npy"), np.random.rand(30, 48).astype(np.float32))
    assert cli.main(["evaluate-depth", str(tmp_path), "--baselines-only"]) == 1
    err = capsys.readouterr().err
    assert "inverse_depth.npy is 48x30" in err and "image.png is 48x40" in err
    os.remove(os.path.join(sub, "image.png"))
    assert cli.main(["evaluate-depth", str(tmp_path), "--baselines-only"]) == 1
    assert os.path.join("broken", "image.png") in capsys.readouterr().err


def test_evaluate_depth_runs_a_model(scenes, tiny_spiritnet, monkeypatch, tmp_path, capsys):
    path = str(tmp_path / "tiny.weights.h5")
    tiny_spiritnet.save_weights(path)
    # configs/tiny_test.json's architecture: pass the model itself through load_model
    from spiritnet_tf import animation
    monkeypatch.setattr(animation, "load_model", lambda weights=None, **kw: tiny_spiritnet)
    picture = str(tmp_path / "depth.png")
    assert cli.main(["evaluate-depth", scenes, "--working-side", "48", "--picture", picture]) == 0
    text = capsys.readouterr().out
    assert "model" in text and "model edge rho" in text
    assert Image.open(picture).size == (3 * 144, 2 * (120 + 4))  # 40x48 scenes, 120 px high
    # photos without truth: the edge figure per photo, and a bad photo named
    photo = str(tmp_path / "p.png")
    Image.fromarray((np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)).save(photo)
    out = str(tmp_path / "r.json")
    assert cli.main(["evaluate-depth", scenes, "--working-side", "48", "--photos", photo, "--json", out]) == 0
    assert "| p.png | " in capsys.readouterr().out
    with open(out) as f:
        assert -1 <= json.load(f)["photos_edge_spearman"][photo] <= 1
    assert cli.main(["evaluate-depth", scenes, "--photos", str(tmp_path / "absent.jpg")]) == 1
    assert "absent.jpg" in capsys.readouterr().err
    assert cli.main(["evaluate-depth", scenes, "--baselines-only", "--photos", photo]) == 1


def test_edge_spearman_tells_an_edge_map_from_a_smooth_one():
    rng = np.random.default_rng(0)
    image = np.zeros((64, 64, 3), np.uint8)
    image[:, 32:] = 200  # one vertical edge
    image[20:24, 8:12] = 255
    edges = gradient_magnitude(image)
    assert edge_spearman(edges[::2, ::2], image) > 0.9  # half size: resized to the photo
    smooth = np.tile(np.linspace(0, 1, 64, dtype=np.float32)[:, None], (1, 64)) + 0.01 * rng.random((64, 64))
    assert abs(edge_spearman(smooth, image)) < 0.2


def test_parallax_ranks_a_near_square_above_its_background():
    """Plane + parallax on a synthetic sideways move: a near square shifts more."""
    rng = np.random.default_rng(3)
    h, w = 96, 128
    background = (rng.random((h // 4, w // 4 + 4, 3)) * 255).astype(np.uint8)
    background = np.kron(background, np.ones((4, 4, 1), np.uint8))
    near = (rng.random((8, 8, 3)) * 255).astype(np.uint8)
    near = np.kron(near, np.ones((4, 4, 1), np.uint8))

    def frame(bg_shift, fg_shift):
        f = background[:, bg_shift:bg_shift + w].copy()
        f[32:64, 48 + fg_shift:80 + fg_shift] = near
        return f

    gamma, info = parallax_inverse_depth(frame(4, 0), frame(0, 8))
    square = np.nanmedian(gamma[38:58, 56:72])
    rest = np.nanmedian(gamma[:, :30])
    # the square moved 12 px relative to the background, which is one plane (no parallax)
    assert abs(square - rest) > 2
    assert abs(rest) < 0.5 and np.nanpercentile(np.abs(gamma[:, :30]), 90) < 1.0
    assert 0.5 < info["valid_fraction"] <= 1
