"""Depth cues of the synthetic photo-like scenes (`generate_depth_scene`) and their textures."""

import json
import os
import struct

import numpy as np
import pytest
from PIL import Image

from spiritnet_tf.data.synthetic import (
    DepthSceneConfig,
    adjust_surface,
    apply_defocus,
    apply_haze,
    generate_depth_scene,
)
from spiritnet_tf.data.textures import convert_patterns, load_textures, read_gimp_pattern

PLAIN = DepthSceneConfig(objects=(0, 0), haze=(0.0, 0.0), defocus=(0.0, 0.0))


def _local_std(gray, rows):
    return float(np.mean([gray[r].std() for r in rows]))


def test_ground_depth_grows_towards_the_horizon():
    for seed in range(3):
        s = generate_depth_scene(seed, 96, 128, PLAIN)
        z = s["depth"][..., 0]
        rows = np.flatnonzero(s["distance"][:, 64] < s["backdrop_distance"])
        assert rows.min() > s["horizon"] and rows.max() == 95 and len(rows) > 20
        assert np.all(np.diff(rows) == 1)  # the ground: one run of rows down to the bottom
        ground = z[rows, 64]
        # inverse depth falls strictly going up towards the horizon (depth grows) ...
        assert np.all(np.diff(ground) > 0)
        # ... linearly in the row, as a plane seen from camera_height: 1/Z = (y - y_h) / (f h)
        distance = s["distance"][rows, 64]
        np.testing.assert_allclose(1 / distance, (rows + 0.5 - s["horizon"]) / (s["focal"] * s["camera_height"]),
                                   rtol=1e-4)
        # above the horizon: backdrop and sky, farther than every ground pixel
        assert z[: int(s["horizon"]) - 1].max() <= ground.min()
        assert s["depth"].min() >= 1e-3 and s["depth"].max() == pytest.approx(1.0)


def test_haze_fades_contrast_and_saturation_with_depth():
    rng = np.random.default_rng(0)
    image = rng.random((40, 60, 3)).astype(np.float32)
    distance = np.repeat(np.linspace(1, 100, 40, dtype=np.float32)[:, None], 60, 1)
    hazy = apply_haze(image, distance, beta=0.02, airlight=(0.7, 0.75, 0.8))
    contrast = [hazy[r].std() for r in range(40)]
    saturation = [np.mean(hazy[r].max(-1) - hazy[r].min(-1)) for r in range(40)]
    assert contrast[0] > 2 * contrast[-1] and saturation[0] > 2 * saturation[-1]
    assert np.corrcoef(contrast, distance[:, 0])[0, 1] < -0.95
    # in a generated scene: far ground rows lose more contrast to haze than near ones
    config = DepthSceneConfig(objects=(0, 0), haze=(0.8, 0.8), defocus=(0.0, 0.0), photo_fraction=0.0,
                              haze_fraction=1.0)
    clear = generate_depth_scene(5, 96, 128, PLAIN.__class__(**{**PLAIN.__dict__, "photo_fraction": 0.0}))
    hazy = generate_depth_scene(5, 96, 128, config)
    gray = lambda s: s["image"].astype(np.float32).mean(-1)  # noqa: E731
    near, far = range(86, 96), range(int(clear["horizon"]) + 3, int(clear["horizon"]) + 8)
    kept_near = _local_std(gray(hazy), near) / _local_std(gray(clear), near)
    kept_far = _local_std(gray(hazy), far) / _local_std(gray(clear), far)
    assert kept_far < 0.8 * kept_near


def test_defocus_blur_grows_away_from_the_focus_plane():
    rng = np.random.default_rng(1)
    image = rng.random((60, 80, 3)).astype(np.float32)
    z = np.repeat(np.linspace(0, 1, 60, dtype=np.float32)[:, None], 80, 1)
    out = apply_defocus(image, z, focus=0.5, strength=3.0)
    detail = np.array([np.abs(np.diff(out[r], axis=0)).mean() for r in range(60)])
    sharpest = int(np.argmax(detail))
    assert abs(sharpest - 30) <= 3  # sharp at the focus plane ...
    assert detail[5] < 0.5 * detail[30] and detail[55] < 0.5 * detail[30]  # ... blurred away from it
    assert np.all(np.diff(detail[32:]) < 1e-3) and np.all(np.diff(detail[:28]) > -1e-3)
    assert apply_defocus(image, z, 0.5, 0.0) is image


def test_objects_stand_on_the_ground_and_their_size_scales_with_inverse_depth():
    config = DepthSceneConfig(objects=(4, 4), haze=(0.0, 0.0), defocus=(0.0, 0.0))
    seen = 0
    for seed in range(12):
        s = generate_depth_scene(seed, 96, 128, config)
        f, h, y_h = s["focal"], s["camera_height"], s["horizon"]
        for obj in s["objects"]:
            # standing on the ground: its base row is where the ground is at its distance
            assert obj["distance"] == pytest.approx(f * h / (obj["bottom"] - y_h), rel=1e-6)
            # image height = f * real height / distance
            assert obj["height_px"] * obj["distance"] == pytest.approx(f * obj["height_m"], rel=1e-6)
            rows, cols = np.flatnonzero(obj["mask"].any(1)), np.flatnonzero(obj["mask"].any(0))
            inside = obj["mask"].sum() and rows.max() < 95 and rows.min() > 0 and cols.min() > 0 and cols.max() < 127
            if inside and not obj["occluded"]:  # wholly in the picture (a cut ellipse is shorter)
                drawn = rows.max() - rows.min() + 1
                assert abs(drawn - obj["height_px"]) <= 2.5
                assert abs(rows.max() + 1 - obj["bottom"]) <= 2.5  # drawn on integer pixels
                z = 1 / obj["distance"] / (1 / s["distance"]).max()
                np.testing.assert_allclose(s["depth"][..., 0][obj["mask"]], max(z, 1e-3), rtol=1e-5)
                seen += 1
    assert seen >= 3


def test_photographic_textures_from_gimp_patterns(tmp_path):
    # a GIMP pattern (.pat version 1) written here: a red/green check
    tile = np.zeros((24, 24, 3), np.uint8)
    tile[:12, :12] = (220, 30, 30)
    tile[12:, 12:] = (30, 220, 30)
    name = b"check\x00"
    header = struct.pack(">5I", 24 + len(name), 1, 24, 24, 3) + b"GPAT" + name
    os.makedirs(tmp_path / "pats" / "Stone")
    (tmp_path / "pats" / "Stone" / "rock.pat").write_bytes(header + tile.tobytes())
    np.testing.assert_array_equal(read_gimp_pattern(tmp_path / "pats" / "Stone" / "rock.pat"), tile)
    assert convert_patterns(str(tmp_path / "pats"), str(tmp_path / "tex")) == ["Stone_rock.png"]
    with open(tmp_path / "tex" / "SOURCES.json") as f:
        assert "GPL" in json.load(f)["source"]["licence"]
    textures = load_textures(str(tmp_path / "tex"))
    config = DepthSceneConfig(objects=(0, 0), haze=(0.0, 0.0), defocus=(0.0, 0.0), photo_fraction=1.0,
                              surface_gain=(1.0, 1.0), surface_contrast=(1.0, 1.0))  # the texture as it is
    s = generate_depth_scene(0, 64, 80, config, textures=textures)
    ground = s["image"][int(s["horizon"]) + 12:]
    red = (ground[..., 0] > ground[..., 1] + 60).mean()
    green = (ground[..., 1] > ground[..., 0] + 60).mean()
    assert red > 0.1 and green > 0.1  # the check is on the ground
    # bad texture folders are named
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_textures(str(tmp_path / "nowhere"))
    (tmp_path / "tex" / "bad.png").write_bytes(b"nope")
    with pytest.raises(ValueError, match="bad.png"):
        load_textures(str(tmp_path / "tex"))
    with pytest.raises(ValueError, match="GPAT"):
        read_gimp_pattern(tmp_path / "tex" / "bad.png")
    Image.fromarray(tile[:4, :4]).save(tmp_path / "tex" / "bad.png")
    with pytest.raises(ValueError, match="below 16"):
        load_textures(str(tmp_path / "tex"))


def test_depth_pretraining_draws_cue_scenes_layers_or_both(tmp_path):
    from spiritnet_tf.training.depth import DepthPretraining, _depth_frames

    with pytest.raises(ValueError, match="scenes must be one of"):
        DepthPretraining(scenes="photos").validate("depth_pretraining")
    with pytest.raises(ValueError, match="loss must be one of"):
        DepthPretraining(loss="l2").validate("depth_pretraining")
    tile = (np.random.default_rng(0).random((20, 20, 3)) * 255).astype(np.uint8)
    os.makedirs(tmp_path / "tex")
    Image.fromarray(tile).save(tmp_path / "tex" / "t.png")
    for scenes in ("cues", "mixed"):
        options = DepthPretraining(scenes=scenes, count=2, height=32, width=32, batch_size=3,
                                   textures=str(tmp_path / "tex"))
        images, depth = next(iter(_depth_frames(options)))
        assert images.shape == (3, 32, 32, 3) and depth.shape == (3, 32, 32, 1)
        assert float(depth.numpy().min()) >= 1e-3 and float(depth.numpy().max()) <= 1.0


def test_wall_backdrop_is_near_and_rises_above_the_horizon():
    walls = DepthSceneConfig(objects=(0, 0), haze=(0.0, 0.0), defocus=(0.0, 0.0), wall_fraction=1.0,
                             wall_depth=(5.0, 10.0))
    for seed in range(3):
        s = generate_depth_scene(seed, 96, 128, walls)
        assert s["wall"] and 5.0 <= s["backdrop_distance"] <= 10.0
        at_wall = s["distance"] == s["backdrop_distance"]
        rows = np.flatnonzero(at_wall.any(1))
        assert rows.min() < s["horizon"] - 10  # the wall stands well above the horizon
        # the ground meets the wall where it reaches the wall's distance, and is nearer below
        below = s["distance"][int(rows.max()) + 1:]
        assert below.size == 0 or below.max() < s["backdrop_distance"]
    far = generate_depth_scene(0, 96, 128, DepthSceneConfig(wall_fraction=0.0))
    assert not far["wall"] and far["backdrop_distance"] >= 60.0
    # a wall so near that no ground shows before it leaves no room for objects on the ground
    near = DepthSceneConfig(wall_fraction=1.0, wall_depth=(1.0, 1.5), objects=(3, 3), camera_height=(1.9, 2.0))
    assert all(generate_depth_scene(seed, 64, 128, near)["objects"] == [] for seed in range(3))


def test_brightness_and_texture_contrast_do_not_tell_depth():
    tile = np.random.default_rng(0).uniform(0.3, 0.5, (16, 16, 3)).astype(np.float32)
    out = adjust_surface(tile, gain=1.5, contrast=0.5)
    np.testing.assert_allclose(out.mean((0, 1)), 1.5 * tile.mean((0, 1)), rtol=1e-5)
    np.testing.assert_allclose(out.std((0, 1)), 0.75 * tile.std((0, 1)), rtol=1e-4)
    assert adjust_surface(tile, 4.0, 1.0).max() == 1.0  # clipped to [0, 1]
    # Over many scenes, near objects are brighter than the backdrop behind them about as
    # often as darker (without the per-surface gain, the procedural look decides it), and
    # without haze their texture is not systematically stronger either.
    config = DepthSceneConfig(objects=(1, 1), defocus=(0.0, 0.0), wall_fraction=1.0, haze_fraction=0.0,
                              photo_fraction=0.0)
    brighter, sharper = [], []
    for seed in range(24):
        s = generate_depth_scene(seed, 64, 96, config)
        gray = s["image"].astype(np.float32).mean(-1)
        back = s["distance"] == s["backdrop_distance"]
        if not s["objects"] or s["objects"][0]["mask"].sum() < 30 or back.sum() < 30:
            continue
        obj = s["objects"][0]["mask"]
        brighter.append(gray[obj].mean() > gray[back].mean())
        sharper.append(gray[obj].std() > gray[back].std())
    assert len(brighter) >= 12
    assert 0.25 <= np.mean(brighter) <= 0.75 and 0.2 <= np.mean(sharper) <= 0.8
    # a scene drawn without haze (haze_fraction 0) is the scene with haze turned off
    base = dict(objects=(2, 2), defocus=(0.0, 0.0), photo_fraction=0.0)
    clear = generate_depth_scene(3, 48, 64, DepthSceneConfig(haze=(0.6, 0.6), haze_fraction=0.0, **base))
    off = generate_depth_scene(3, 48, 64, DepthSceneConfig(haze=(0.0, 0.0), **base))
    hazy = generate_depth_scene(3, 48, 64, DepthSceneConfig(haze=(0.6, 0.6), haze_fraction=1.0, **base))
    np.testing.assert_array_equal(clear["image"], off["image"])
    assert np.abs(hazy["image"].astype(int) - off["image"]).mean() > 3
