"""Video-folder source: septuplets from videos and frame folders, TFRecord cache, bad files."""

import logging
import os

import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pytest

from spiritnet_tf import cli
from spiritnet_tf.data import CorruptInputError, read_septuplets
from spiritnet_tf.data.videos import cache_videos, find_sources, video_septuplets

from conftest import REPO, load_script

H, W = 48, 64


def _clip(n, seed=0):
    """n frames of a textured picture whose content moves right by 1 px per frame."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (H // 4, (W + n) // 4 + 1, 3), np.uint8)
    base = np.repeat(np.repeat(base, 4, 0), 4, 1)
    return np.stack([base[:H, n - k:n - k + W] for k in range(n)])


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    writer = imageio_ffmpeg.write_frames(str(d / "walk.mp4"), (W, H), quality=10,
                                         macro_block_size=1)
    writer.send(None)
    for frame in _clip(16):
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    iio.imwrite(d / "loop.gif", _clip(8, seed=1))
    os.makedirs(d / "shots" / "frames")
    for k, frame in enumerate(_clip(9, seed=2)):
        iio.imwrite(d / "shots" / "frames" / f"{k:04d}.png", frame)
    return d


def test_sources_cut_into_septuplets(media):
    sources = find_sources(media)
    assert sources == sorted([str(media / "loop.gif"), str(media / "shots" / "frames"),
                              str(media / "walk.mp4")])
    mp4 = list(video_septuplets(media / "walk.mp4", size=None))
    assert len(mp4) == 2 and mp4[0].shape == (7, H, W, 3)  # 16 frames: two of 7
    assert len(list(video_septuplets(media / "walk.mp4", size=None, stride=3))) == 4
    assert len(list(video_septuplets(media / "walk.mp4", size=None, frame_step=2))) == 1
    gif = list(video_septuplets(media / "loop.gif", size=(32, 32)))
    assert len(gif) == 1 and gif[0].shape == (7, 32, 32, 3)
    folder = list(video_septuplets(media / "shots" / "frames", size=None))
    np.testing.assert_array_equal(folder[0], _clip(9, seed=2)[:7])


def test_cache_writes_teacher_flows_and_is_reused(media, tmp_path):
    paths = cache_videos(media, tmp_path, size=(H, W), progress=False)
    assert len(paths) == 3 and all(p.endswith(".tfrecord") for p in paths)
    samples = list(read_septuplets(paths).as_numpy_iterator())
    assert len(samples) == 2 + 1 + 1
    for s in samples:
        assert s["frames"].shape == (7, H, W, 3) and s["flows"].shape == (6, H, W, 2)
        # Content moves right by 1 px per frame: backward flow dx ≈ -1.
        assert np.median(s["flows"][:, 8:-8, 8:-8, 0]) == pytest.approx(-1.0, abs=0.2)
    stamps = [os.stat(p).st_mtime_ns for p in paths]
    assert cache_videos(media, tmp_path, size=(H, W), progress=False) == paths
    assert [os.stat(p).st_mtime_ns for p in paths] == stamps  # reused, not recomputed
    # Other options give other cache files.
    assert set(cache_videos([media / "loop.gif"], tmp_path, size=(32, 32),
                            progress=False)).isdisjoint(paths)


def test_corrupt_inputs_named_and_skipped_or_fatal(media, tmp_path, caplog, capsys):
    bad = tmp_path / "bad"
    os.makedirs(bad / "frames")
    (bad / "garbage.mp4").write_bytes(b"\x00not a video" * 64)
    data = (media / "walk.mp4").read_bytes()
    (bad / "cut.mp4").write_bytes(data[: len(data) // 3])  # truncated, header at the end
    # Header first (faststart): the cut file still decodes, just fewer frames.
    writer = imageio_ffmpeg.write_frames(str(tmp_path / "fs.mp4"), (W, H), macro_block_size=1,
                                         output_params=["-movflags", "+faststart"])
    writer.send(None)
    for frame in _clip(30):
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    data = (tmp_path / "fs.mp4").read_bytes()
    (bad / "short.mp4").write_bytes(data[: len(data) * 4 // 5])
    assert len(list(video_septuplets(tmp_path / "fs.mp4", size=None))) == 4
    for k, frame in enumerate(_clip(7)):
        iio.imwrite(bad / "frames" / f"{k:04d}.png", frame)
    png = bad / "frames" / "0003.png"
    png.write_bytes(png.read_bytes()[:50])  # truncated image
    (bad / "ok.gif").write_bytes((media / "loop.gif").read_bytes())

    with pytest.raises(CorruptInputError) as info:
        cache_videos(bad, tmp_path / "c1", progress=False)
    assert str(bad / "cut.mp4") in str(info.value)  # the first bad source, by name

    with caplog.at_level(logging.WARNING, logger="spiritnet_tf.data"):
        paths = cache_videos(bad, tmp_path / "c2", size=(H, W), on_error="skip", progress=False)
    assert len(paths) == 1 and "ok-" in os.path.basename(paths[0])
    assert "truncated: decoded" in caplog.text
    for name in (bad / "cut.mp4", bad / "garbage.mp4", bad / "short.mp4", png):
        assert str(name) in caplog.text
    assert not [f for f in os.listdir(tmp_path / "c2") if f.endswith(".partial")]

    # The command line reports it with the path and no traceback.
    status = cli.main(["data", "videos", str(bad), "--out", str(tmp_path / "c3")])
    err = capsys.readouterr().err
    assert status == 1 and str(bad / "cut.mp4") in err and "Traceback" not in err


def test_cli_synthetic_and_videos(media, tmp_path, capsys):
    assert cli.main(["data", "synthetic", "3", "--out", str(tmp_path / "syn"), "--height", "32",
                     "--width", "48", "--shard-size", "2"]) == 0
    shards = sorted(os.listdir(tmp_path / "syn"))
    assert len(shards) == 2
    ds = read_septuplets([str(tmp_path / "syn" / f) for f in shards], with_depth=True)
    assert [s["depth"].shape for s in ds] == [(7, 32, 48, 1)] * 3
    assert cli.main(["data", "videos", str(media), "--out", str(tmp_path / "v"),
                     "--height", "32", "--width", "32"]) == 0
    assert "3 TFRecord files" in capsys.readouterr().out


def test_find_shots_cuts_where_one_frame_changes_a_lot_and_not_during_a_pan():
    from spiritnet_tf.data.videos import find_shots

    import cv2

    rng = np.random.default_rng(4)
    scenes = []
    for sigma in (3, 3, 6):  # smooth pictures, the third smoother
        s = cv2.GaussianBlur(rng.uniform(0, 255, (36, 200)).astype(np.float32), (0, 0), sigma)
        scenes.append((s - s.min()) / np.ptp(s) * 255)
    # 30 frames of a fast pan over scene 0, 25 still frames of scene 1, 40 of a slow pan over 2
    frames = ([scenes[0][:, k * 3:k * 3 + 64] for k in range(30)] + [scenes[1][:, :64]] * 25
              + [scenes[2][:, k:k + 64] for k in range(40)])
    assert find_shots(np.stack(frames)) == [(0, 29), (30, 54), (55, 94)]
    assert find_shots(np.stack(frames), min_length=26) == [(0, 29), (55, 94)]
    # a fade (every frame a little darker) is not a cut; one still picture is one shot
    fade = np.stack([scenes[1][:, :64] * (1 - k / 40) for k in range(40)])
    assert find_shots(fade) == [(0, 39)]
    assert find_shots(fade[:1]) == [(0, 0)]
    with pytest.raises(ValueError, match="thumbnails must be"):
        find_shots(np.zeros((5, 8)))


def test_motion_clips_script_splits_shots_at_dissolves():
    script = load_script(os.path.join("configs", "motion_footage_data.py"))
    shots = [(0, 100), (120, 200), (300, 310)]
    assert script.split_at(shots, [(150, 160), (300, 400)]) == [(0, 100), (120, 149), (161, 200)]
    assert script.split_at(shots, [(95, 125)]) == [(0, 94), (126, 200), (300, 310)]
    for a, b in script.DISSOLVES:  # each listed dissolve lies outside the left-out ranges
        assert a <= b and not any(a <= y and b >= x for x, y in script.EXCLUDE)


def test_depth_photos_script_takes_frames_outside_the_left_out_ranges(tmp_path):
    """configs/depth_photos_data.py keeps one frame every --every outside the left-out
    ranges (frames 0-284 are the film's titles) and drops near-flat ones."""
    import json
    import subprocess
    import sys

    import imageio_ffmpeg

    video = str(tmp_path / "film.mp4")
    writer = imageio_ffmpeg.write_frames(video, (64, 48), fps=24, macro_block_size=16)
    writer.send(None)
    rng = np.random.default_rng(0)
    for i in range(420):
        frame = np.full((48, 64, 3), 128, np.uint8) if 390 <= i < 410 else \
            (rng.random((48, 64, 3)) * 255).astype(np.uint8)
        writer.send(frame)
    writer.close()
    script = os.path.join(REPO, "configs", "depth_photos_data.py")
    out = tmp_path / "photos"
    subprocess.run([sys.executable, script, video, str(out), "--every", "50"], check=True,
                   capture_output=True, text=True)
    record = json.loads((out / "SOURCES.json").read_text())
    assert record["frames"] == [300, 350] and record["flat_dropped"] == 1  # 400 is flat
    assert sorted(os.listdir(out)) == ["SOURCES.json", "bbb_000300.png", "bbb_000350.png"]
    from PIL import Image

    assert Image.open(out / "bbb_000300.png").size == (448, 336)


def test_pan_clips_script_moves_a_window_inside_the_picture(tmp_path):
    """configs/pan_clips_data.py: frame t is the picture's window at its corner (a pan's
    start + t * velocity; whole pixels here, so frames compare exactly with crops), every
    window of a pan, a shake or a ramp inside the picture, a shake's speed within its range
    and turning back, a ramp's speed changing linearly, and the clips are recorded."""
    import json

    from PIL import Image

    script = load_script(os.path.join("configs", "pan_clips_data.py"))
    picture = (np.random.default_rng(0).random((60, 90, 3)) * 255).astype(np.uint8)
    clip = script.pan_clip(picture, (20, 30), np.array([4, 10]) + np.arange(5)[:, None] * [3, -1])
    for t, frame in enumerate(clip):
        x, y = 4 + 3 * t, 10 - t
        np.testing.assert_array_equal(frame, picture[y:y + 20, x:x + 30])
    rng = np.random.default_rng(1)
    for _ in range(50):
        velocity, start = script.draw_pan(rng, picture.shape, (20, 30), 8, (1, 4))
        corners = [start + t * velocity for t in (0, 7)]
        assert all(c.min() >= -1e-9 and c[0] <= 60 + 1e-9 and c[1] <= 40 + 1e-9 for c in corners)
        assert 0 < np.linalg.norm(velocity) <= 4
    for _ in range(50):
        corners = script.draw_shake(rng, picture.shape, (20, 30), 24, (1, 4))
        assert corners.shape == (24, 2)
        assert corners.min() >= -1e-9 and (corners.max(axis=0) <= [60 + 1e-9, 40 + 1e-9]).all()
        steps = np.diff(corners, axis=0)
        assert 0 < np.abs(steps).max() <= 4 + 1e-9
        assert ((steps[1:] * steps[:-1]) < 0).any()  # some axis reverses: it shakes
    for _ in range(50):
        corners = script.draw_ramp(rng, picture.shape, (20, 30), 8, (1, 4))
        assert corners.min() >= -1e-9 and (corners.max(axis=0) <= [60 + 1e-9, 40 + 1e-9]).all()
        speeds = np.linalg.norm(np.diff(corners, axis=0), axis=1)
        assert 0 < speeds.max() <= 4 + 1e-9
        np.testing.assert_allclose(np.diff(speeds, 2), 0, atol=1e-9)  # the speed ramps linearly
    for draw in (script.draw_pan, script.draw_shake, script.draw_ramp):
        with pytest.raises(ValueError, match="smaller than"):
            draw(rng, (10, 90, 3), (20, 30), 8, (1, 4))

    pictures = tmp_path / "pictures"
    pictures.mkdir()
    Image.fromarray(picture).save(pictures / "a.png")
    script.main([str(pictures), str(tmp_path / "pans"), "--frames", "6", "--size", "20x30"])
    assert len(os.listdir(tmp_path / "pans" / "a")) == 6
    record = json.loads((tmp_path / "pans" / "SOURCES.json").read_text())
    assert list(record["clips"]) == ["a"] and record["frames"] == 6
    script.main([str(pictures), str(tmp_path / "shakes"), "--frames", "6", "--size", "20x30",
                 "--motion", "shake"])
    record = json.loads((tmp_path / "shakes" / "SOURCES.json").read_text())
    assert record["motion"] == "shake" and len(record["clips"]["a"]["corners_px"]) == 6
