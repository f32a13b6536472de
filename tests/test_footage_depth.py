"""Footage pseudo-depth for the depth net's training (`spiritnet_tf.data.footage_depth`) and
its samples in the depth pre-training (`spiritnet_tf.training.depth`)."""

import json

import numpy as np
import pytest

from spiritnet_tf.config import ConfigError
from spiritnet_tf.data.footage_depth import mine_footage, occlusion_sign, sign_of_parallax
from spiritnet_tf.evaluation.depth_scenes import parallax_inverse_depth
from spiritnet_tf.evaluation.depth import load_depth_scenes
from spiritnet_tf.training.depth import DepthPretraining, _depth_frames, footage_sample, photo_sample

H, W = 192, 320


def _texture(h, w, seed):
    rng = np.random.default_rng(seed)
    import cv2

    noise = rng.uniform(0, 255, (h // 4, w // 4, 3)).astype(np.uint8)
    return cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)


def _write_video(path, frames):
    import imageio.v3 as iio

    iio.imwrite(path, np.stack(frames), fps=24, codec="libx264", quality=9, macro_block_size=16)


def _parallax_video(count, near=2, far=1):
    """A camera moving sideways: a far backdrop (the upper two thirds) shifting ``far`` px
    per frame above a near band (the lower third, like ground) shifting ``near`` px."""
    backdrop, band = _texture(H, W + 200, 0), _texture(H // 3, W + 200, 1)
    frames = []
    for t in range(count):
        frame = backdrop[:, 100 + far * t:100 + far * t + W].copy()
        frame[-(H // 3):] = band[:, 100 + near * t:100 + near * t + W]
        frames.append(frame)
    return frames


def _object_video(count, box, near=3, far=1):
    """A camera moving sideways past a near textured object (``box`` = top, bottom, left,
    right in frame 0, clipped at the frame's edges) before a far textured backdrop: the
    backdrop's content moves ``far`` px per frame, the object's ``near`` px."""
    top, bottom, left, right = box
    backdrop, thing = _texture(H, W + 400, 2), _texture(bottom - top, right - left, 3)
    frames = []
    for t in range(count):
        frame = backdrop[:, 200 - far * t:200 - far * t + W].copy()
        x0 = left + near * t
        a, b = max(x0, 0), min(x0 + right - left, W)
        frame[top:bottom, a:b] = thing[:, a - x0:b - x0]
        frames.append(frame)
    return frames


LOW, MIDDLE, UPPER = (110, 180, 60, 170), (60, 130, 110, 200), (10, 80, 60, 160)


def _near_minus_far(gamma, box, near):
    """Median parallax on the object in frame 4 minus the backdrop's, away from its edges."""
    top, bottom, left, right = box
    x0 = left + 4 * near
    inside = np.nanmedian(gamma[top + 10:bottom - 10, x0 + 15:x0 + right - left - 15])
    away = np.ones(gamma.shape, bool)
    away[max(top - 15, 0):bottom + 15, max(x0 - 25, 0):x0 + right - left + 25] = False
    return inside - np.nanmedian(gamma[away])


@pytest.mark.parametrize("box", [LOW, MIDDLE, UPPER], ids=["low", "middle", "upper"])
@pytest.mark.parametrize("near, far", [(3, 1), (-3, -1), (1, 3)], ids=["right", "left", "far-faster"])
def test_occlusion_sign_makes_the_occluder_nearer(box, near, far):
    """Wherever the near object is (low, mid-frame, upper half: the row index says nothing
    or the wrong thing there) and whichever way the camera moves, the occlusion sign makes
    it larger than the backdrop. ``far-faster``: the backdrop moves more than the object
    (e.g. a camera following a character), so the object's parallax is the smaller one
    before the sign."""
    frames = _object_video(9, box, near, far)
    parallax = parallax_inverse_depth(frames[4], frames[8], return_flows=True)
    sign, figures = occlusion_sign(frames[4], frames[8], frames[0], parallax=parallax)
    assert sign != 0 and figures["votes"] >= 100 and figures["frames"] == 3
    assert sign * _near_minus_far(parallax[0], box, near) > 3
    assert (figures["share"] > 0.9) if sign > 0 else (figures["share"] < 0.1)


def test_occlusion_sign_is_undecided_without_a_depth_edge():
    """One plane (the whole frame shifting, and a still frame): nothing is covered."""
    frames = _object_video(9, (40, 80, 100, 160), 2, 2)  # the "object" moves with the backdrop
    assert occlusion_sign(frames[4], frames[8], frames[0])[0] == 0
    assert occlusion_sign(frames[4], frames[8])[0] == 0
    assert occlusion_sign(frames[0], frames[0], frames[0])[0] == 0  # nothing moves


def test_parallax_inverse_depth_returns_its_flows_on_request():
    frames = _object_video(9, MIDDLE)
    gamma, info = parallax_inverse_depth(frames[4], frames[8])
    gamma2, info2, flows = parallax_inverse_depth(frames[4], frames[8], return_flows=True)
    np.testing.assert_array_equal(gamma, gamma2)
    assert info == info2
    assert flows["forward"].shape == flows["backward"].shape == (H, W, 2)
    np.testing.assert_array_equal(flows["valid"], np.isfinite(gamma))
    assert flows["homography"].shape == (3, 3) and abs(np.linalg.norm(flows["direction"]) - 1) < 1e-6
    # the backdrop moves 4 px to the right over the four frames
    assert abs(np.median(flows["forward"][:40, ..., 0]) - 4) < 0.2


def test_sign_of_parallax_follows_the_row_and_the_reference():
    rows = np.tile(np.arange(40, dtype=np.float32)[:, None], (1, 30))
    gamma = rows.copy()
    gamma[:5] = np.nan
    assert sign_of_parallax(gamma)[0] == 1  # larger lower down: already near = larger
    assert sign_of_parallax(-gamma)[0] == -1
    # the reference (near = larger) also puts the bottom near: both say flip gamma
    assert sign_of_parallax(-gamma, reference=rows)[0] == -1
    assert sign_of_parallax(-gamma, reference=-rows)[0] == 0  # they disagree: no sample
    flat_rows = np.tile(np.arange(30, dtype=np.float32)[None], (40, 1))  # left-right only
    assert sign_of_parallax(flat_rows)[0] == 0  # the row index cannot tell


def test_mine_footage_keeps_parallax_and_drops_a_still_camera(tmp_path):
    """A moving camera's pairs are kept with the near band nearer; a still camera filming
    the same moving band is not parallax (its motion is the band's own) and is dropped."""
    moving, still = str(tmp_path / "moving.mp4"), str(tmp_path / "still.mp4")
    _write_video(moving, _parallax_video(14))
    _write_video(still, _parallax_video(14, near=2, far=0))  # a still camera, a moving band
    source = {"package": "test"}
    kept = mine_footage(moving, str(tmp_path / "out"), prefix="m", source=source, every=6,
                        gap=4, progress=False, exclude=[(11, 13)], sign="agreement")
    assert [k["name"] for k in kept] == ["m_000000", "m_000006"]  # frame 12 is excluded
    scenes = load_depth_scenes(str(tmp_path / "out"))
    assert [s.name for s in scenes] == ["m_000000", "m_000006"]
    for scene in scenes:
        near = np.nanmedian(scene.truth[-50:])
        far = np.nanmedian(scene.truth[:100])
        assert near > far + 3  # the band moved 4 px more than the backdrop over 4 frames
    record = json.load(open(tmp_path / "out" / "SOURCES.json"))
    assert record["source"] == source and record["pairs_tried"] == 2
    assert mine_footage(still, str(tmp_path / "none"), prefix="s", source=source, every=6, gap=4,
                        progress=False, sign="agreement") == []
    # the same folder again with the same options resumes; with another sign rule it would
    # mix samples signed two ways: refused, naming what changed
    assert len(mine_footage(moving, str(tmp_path / "out"), prefix="m", source=source, every=6,
                            gap=4, progress=False, exclude=[(11, 13)], sign="agreement")) == 2
    with pytest.raises(ValueError, match="other options \\(sign: sign='agreement'\\)"):
        mine_footage(moving, str(tmp_path / "out"), prefix="m", source=source, every=6, gap=4,
                     progress=False, exclude=[(11, 13)], sign="occlusion")
    with pytest.raises(ValueError, match="every"):
        mine_footage(moving, str(tmp_path / "x"), prefix="m", source=source, every=4, gap=4)
    with pytest.raises(FileNotFoundError, match="no video"):
        mine_footage(str(tmp_path / "missing.mp4"), str(tmp_path / "x"), prefix="m", source=source)


@pytest.mark.parametrize("box", [MIDDLE, UPPER], ids=["middle", "upper"])
def test_mine_footage_signs_by_occlusion(tmp_path, box):
    """The default rule: the near object mid-frame or high up comes out nearer (larger),
    both rules' figures are recorded; the band video (no object edge crossing the motion)
    has nothing covered, so its pairs are undecided and dropped."""
    video = str(tmp_path / "object.mp4")
    _write_video(video, _object_video(26, box, 3, 1))
    source = {"package": "test"}
    kept = mine_footage(video, str(tmp_path / "out"), prefix="o", source=source, every=8, gap=4,
                        progress=False)
    # pairs (8, 12) and (16, 20): the first pair, (0, 4), has no frame before it
    assert [k["name"] for k in kept] == ["o_000008", "o_000016"]
    record = json.load(open(tmp_path / "out" / "SOURCES.json"))
    assert record["options"]["sign"] == "occlusion" and record["pairs_tried"] == 2
    for k, scene in zip(record["samples"], load_depth_scenes(str(tmp_path / "out"))):
        assert k["sign_rule"] == "occlusion" and k["occlusion"]["votes"] >= 100
        assert {"rho_row", "rho_reference", "agreement_sign"} <= set(k)
        top, bottom, left, right = box
        x0 = left + 3 * int(k["frames"][0])
        inside = np.nanmedian(scene.truth[top + 10:bottom - 10, x0 + 15:x0 + right - left - 15])
        assert inside > np.nanmedian(scene.truth[-20:]) + 2  # the object, not the low backdrop
    band = str(tmp_path / "band.mp4")
    _write_video(band, _parallax_video(14))
    assert mine_footage(band, str(tmp_path / "none"), prefix="b", source=source, every=6, gap=4,
                        progress=False) == []
    record = json.load(open(tmp_path / "none" / "SOURCES.json"))
    assert record["pairs_tried"] == 1 and record["dropped"]["sign"] == 1
    with pytest.raises(ValueError, match="sign"):
        mine_footage(band, str(tmp_path / "x"), prefix="b", source=source, sign="rows")


def test_footage_sample_crops_keeps_order_and_marks_no_truth():
    rng = np.random.default_rng(0)
    image = rng.uniform(size=(90, 160, 3)).astype(np.float32)
    truth = np.tile(np.linspace(-3, 5, 90, dtype=np.float32)[:, None], (1, 160))
    truth[:, :20] = np.nan
    for _ in range(5):
        crop, target = footage_sample(image, truth, 32, 64, rng)
        assert crop.shape == (32, 64, 3) and target.shape == (32, 64, 1)
        t = target[..., 0]
        assert (t >= 0).all() and (t > 0).any()
        for column in range(64):  # order kept down every column with truth
            values = t[:, column]
            if (values > 0).all():
                assert np.all(np.diff(values) >= 0)
    # a crop of the columns without truth: all zero (ignored by the loss)
    crop, target = footage_sample(image[:, :20], truth[:, :20], 32, 16, rng)
    assert (target == 0).all()


def test_pretraining_mixes_footage_samples(tmp_path):
    folder = tmp_path / "footage"
    (folder / "a").mkdir(parents=True)
    from PIL import Image

    Image.fromarray(np.full((64, 96, 3), 200, np.uint8)).save(folder / "a" / "image.png")
    truth = np.tile(np.linspace(1, 2, 64, dtype=np.float32)[:, None], (1, 96))
    np.save(folder / "a" / "inverse_depth.npy", truth)
    options = DepthPretraining(steps=1, batch_size=16, count=2, height=32, width=64, scenes="cues",
                               footage=str(folder), footage_fraction=0.5, color_jitter=False,
                               flip=False)
    images, depth = next(iter(_depth_frames(options)))
    assert images.shape == (16, 32, 64, 3) and depth.shape == (16, 32, 64, 1)
    grey = np.all(np.abs(images.numpy() - 200 / 255) < 1e-3, axis=(1, 2, 3))
    assert 2 <= grey.sum() <= 14  # both sources in one batch of 16 (p of failing ~ 1e-3)
    with pytest.raises(ConfigError, match="footage needs loss"):
        DepthPretraining(footage=str(folder), loss="scale_invariant_log")
    with pytest.raises(ConfigError, match="edge_weight needs loss"):
        DepthPretraining(edge_weight=1.0, loss="scale_invariant_log")


def test_pretraining_mixes_real_photos_for_the_edge_term_alone(tmp_path):
    """Photos without depth come in at their share with the target -1 (the depth loss
    ignores it, the edge term counts it), beside footage and scenes; bad set-ups are
    refused by name."""
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(np.full((80, 120, 3), 30, np.uint8)).save(folder / "dark.jpg")
    (folder / "notes.txt").write_text("not a photo")
    crop, target = photo_sample(np.random.default_rng(0).random((80, 120, 3)), 32, 64,
                                np.random.default_rng(1))
    assert crop.shape == (32, 64, 3) and target.shape == (32, 64, 1) and (target == -1).all()
    options = DepthPretraining(steps=1, batch_size=32, count=2, height=32, width=64, scenes="cues",
                               photos=str(folder), photos_fraction=0.4, edge_weight=1.0,
                               color_jitter=False, flip=False)
    images, depth = next(iter(_depth_frames(options)))
    photo = np.all(depth.numpy() == -1, axis=(1, 2, 3))
    assert 4 <= photo.sum() <= 24  # p of failing ~ 1e-3
    assert np.all(np.abs(images.numpy()[photo] - 30 / 255) < 0.02)
    assert (depth.numpy()[~photo] > 0).all()
    with pytest.raises(ConfigError, match="photos needs edge_weight"):
        DepthPretraining(photos=str(folder))
    with pytest.raises(ConfigError, match="must stay below 1"):
        DepthPretraining(photos=str(folder), edge_weight=1.0, footage=str(folder),
                         footage_fraction=0.7, photos_fraction=0.3)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"no photo file \(\.jpg, .*\.png.*\) in .*empty"):
        _depth_frames(DepthPretraining(photos=str(empty), edge_weight=1.0, count=2, height=32,
                                       width=64))


def test_a_config_file_resolves_the_footage_folder_beside_it(tmp_path):
    from spiritnet_tf.training.config import parse_config

    values = {"train_data": [{"type": "synthetic", "count": 2}],
              "depth_pretraining": {"footage": "data/footage", "textures": "data/textures"}}
    config = parse_config(values, base_dir=str(tmp_path / "configs"))
    assert config.depth_pretraining["footage"] == str(tmp_path / "configs" / "data" / "footage")
    assert config.depth_pretraining["textures"] == str(tmp_path / "configs" / "data" / "textures")
    values["depth_pretraining"]["loss"] = "scale_invariant_log"
    with pytest.raises(ConfigError, match="depth_pretraining.footage needs loss"):
        parse_config(values)
