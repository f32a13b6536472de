"""The output writer: round trips, loop modes, overwrite, atomicity, streaming, visualisations."""

import os

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from spiritnet_tf.io import (
    AnimationWriter,
    apply_loop,
    depth_to_rgb,
    flow_to_rgb,
    output_format,
    write_animation,
    write_image,
)

from conftest import REPO


def _frames(count=5, height=36, width=50):
    """Smooth moving gradients (palette- and codec-friendly), float32 in [0, 1]."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    return [
        np.stack(
            [(x + 3 * t) / (width + 3 * count), y / height, np.full_like(x, t / count)], -1
        )
        for t in range(count)
    ]


def _read_pillow(path):
    with Image.open(path) as im:
        frames = []
        for i in range(im.n_frames):
            im.seek(i)
            frames.append(np.asarray(im.convert("RGB"), np.float32) / 255)
    return frames


def _read_mp4(path):
    reader = imageio_ffmpeg.read_frames(path)
    meta = next(reader)
    frames = [
        np.frombuffer(f, np.uint8).reshape(meta["size"][1], meta["size"][0], 3) / 255.0
        for f in reader
    ]
    return meta["size"], frames


@pytest.mark.parametrize("extension, tolerance", [(".gif", 0.02), (".webp", 0.03)])
def test_animated_round_trip(tmp_path, extension, tolerance):
    frames = _frames()
    path = tmp_path / f"anim{extension}"
    assert write_animation(frames, path, fps=10) == 5
    back = _read_pillow(path)
    assert len(back) == 5 and back[0].shape == (36, 50, 3)
    for a, b in zip(back, frames):
        assert np.abs(a - b).mean() < tolerance
    assert [f for f in os.listdir(tmp_path)] == [path.name]  # no temporary file left
    with Image.open(path) as im:
        assert im.info["loop"] == 0  # loops forever
        if extension == ".gif":
            assert im.info["duration"] == 100  # 10 fps


def test_gif_palette_from_seven_bit_colours_loses_almost_nothing(tmp_path):
    """The GIF palette is chosen from the colours to 7 bits a channel (`_GIF_STATS`, about
    twice as fast for ffmpeg); on a real photo the GIF stays within 0.1 dB of the one
    whose palette counts every colour, ffmpeg run here with the full filter (measured:
    36.823 against 36.845 dB; with 6 bits a channel 36.614, which fails)."""
    import subprocess

    from spiritnet_tf.evaluation.metrics import psnr
    from spiritnet_tf.io import writers

    photo = np.asarray(Image.open(os.path.join(REPO, "examples", "coffee.jpg")).convert("RGB"))
    photo = photo[:200, :300]
    frames = [np.roll(photo, 2 * t, axis=1) for t in range(3)]
    ours = tmp_path / "ours.gif"
    write_animation(frames, ours)
    full = tmp_path / "full.gif"
    filters = writers._FFMPEG[".gif"][2][1].replace(writers._GIF_STATS, "")
    assert filters != writers._FFMPEG[".gif"][2][1]
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "rawvideo",
                    "-pix_fmt", "rgb24", "-s", "300x200", "-i", "-", "-filter_complex", filters,
                    str(full)], input=np.stack(frames).tobytes(), check=True)
    # PSNR of all frames together (the frames stacked into one picture: their mean MSE)
    reference = np.concatenate(frames) / 255.0
    ours_db, full_db = (float(psnr(np.concatenate(_read_pillow(path)), reference))
                        for path in (ours, full))
    assert full_db > 30 and ours_db > full_db - 0.1, (ours_db, full_db)


def test_mp4_round_trip_pads_odd_sizes_to_even(tmp_path):
    frames = _frames(4, 35, 49)
    path = tmp_path / "anim.mp4"
    write_animation(frames, path, fps=8)
    size, back = _read_mp4(str(path))
    assert size == (50, 36) and len(back) == 4
    assert np.abs(back[2][:35, :49] - frames[2]).mean() < 0.02
    np.testing.assert_allclose(back[2][35, :49], back[2][34, :49], atol=0.05)  # edge copy


def test_png_folder_round_trip_is_exact(tmp_path):
    frames = _frames(3)
    for target in (tmp_path / "frames", str(tmp_path / "frames.d") + "/"):
        write_animation(frames, target)
        folder = os.path.normpath(target)
        names = sorted(os.listdir(folder))
        assert names == ["frame_0000.png", "frame_0001.png", "frame_0002.png"]
        back = np.asarray(Image.open(os.path.join(folder, names[1])))
        np.testing.assert_array_equal(back, np.round(frames[1] * 255).astype(np.uint8))


def test_uint8_frames_and_size_mismatch(tmp_path):
    frames = [np.full((40, 40, 3), v, np.uint8) for v in (0, 128, 255)]
    write_animation(frames, tmp_path / "u8")
    assert np.asarray(Image.open(tmp_path / "u8" / "frame_0001.png"))[0, 0, 0] == 128
    with pytest.raises(ValueError, match="all frames must have one size"):
        write_animation([frames[0], np.zeros((40, 41, 3), np.uint8)], tmp_path / "x.gif")
    assert not (tmp_path / "x.gif").exists()
    with pytest.raises(ValueError, match="NaN"):
        write_animation([np.full((40, 40, 3), np.nan)], tmp_path / "y.gif")


def test_loop_modes():
    frames = list(range(7))  # T + 1 = 7 frames, T = 6
    assert apply_loop(frames, "none") == frames
    boomerang = apply_loop(frames, "boomerang")
    assert len(boomerang) == 12 == 2 * 6
    assert boomerang == [0, 1, 2, 3, 4, 5, 6, 5, 4, 3, 2, 1]
    assert apply_loop([0], "boomerang") == [0] and apply_loop([0, 1], "boomerang") == [0, 1]
    assert len(apply_loop(np.zeros((4, 8, 8, 3)), "boomerang")) == 6
    with pytest.raises(ValueError, match="seamless.*close_loop"):
        apply_loop(frames, "seamless")
    assert apply_loop(frames, "seamless", close_loop=lambda f: f[::-1]) == frames[::-1]
    with pytest.raises(ValueError, match="unknown loop mode 'pingpong'.*boomerang"):
        apply_loop(frames, "pingpong")


def test_unknown_extension_lists_supported(tmp_path):
    with pytest.raises(ValueError, match=r"unknown output extension '\.avi'.*\.gif.*\.mp4.*\.webp"):
        AnimationWriter(tmp_path / "out.avi")
    assert output_format("a/b") == "folder" and output_format("a/b.GIF") == ".gif"
    with pytest.raises(ValueError, match="unknown image extension"):
        write_image(np.zeros((4, 4, 3)), tmp_path / "x.tif")


def test_no_overwrite_without_the_flag(tmp_path):
    path = tmp_path / "anim.gif"
    path.write_bytes(b"user's file")
    with pytest.raises(FileExistsError, match=r"anim\.gif already exists.*overwrite"):
        write_animation(_frames(2), path)
    assert path.read_bytes() == b"user's file"
    write_animation(_frames(2), path, overwrite=True)
    assert len(_read_pillow(path)) == 2

    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "notes.txt").write_text("kept")
    write_animation(_frames(3), folder)  # no frame files yet: allowed
    with pytest.raises(FileExistsError, match="already holds frame files"):
        write_animation(_frames(2), folder)
    write_animation(_frames(2), folder, overwrite=True)  # stale frame_0002.png removed
    assert sorted(os.listdir(folder)) == ["frame_0000.png", "frame_0001.png", "notes.txt"]

    image = tmp_path / "flow.png"
    write_image(np.zeros((8, 8, 3)), image)
    with pytest.raises(FileExistsError, match="flow.png"):
        write_image(np.ones((8, 8, 3)), image)
    write_image(np.ones((8, 8, 3)), image, overwrite=True)
    assert np.asarray(Image.open(image)).min() == 255


@pytest.mark.parametrize("name", ["anim.mp4", "anim.gif", "frames"])
def test_failed_run_leaves_the_users_output_alone(tmp_path, name):
    target = tmp_path / name
    write_animation(_frames(2), target)
    before = sorted(os.listdir(tmp_path)), (
        target.read_bytes() if target.is_file() else sorted(os.listdir(target))
    )

    def failing():
        yield from _frames(3)
        raise RuntimeError("model crashed")

    with pytest.raises(RuntimeError, match="model crashed"):
        write_animation(failing(), target, overwrite=True)
    after = sorted(os.listdir(tmp_path)), (
        target.read_bytes() if target.is_file() else sorted(os.listdir(target))
    )
    assert after == before  # same content, no temporary file left


def test_flow_to_rgb_colour_wheel():
    flow = np.zeros((1, 5, 2), np.float32)
    flow[0, 1] = (2, 0)  # right, the largest vector: pure red
    flow[0, 2] = (-2, 0)  # left: cyan-blue
    flow[0, 3] = (0, 2)  # down: orange-yellow
    flow[0, 4] = (1, 0)  # right, half length: pale red
    rgb = flow_to_rgb(flow)
    assert rgb.shape == (1, 5, 3) and rgb.dtype == np.float32
    np.testing.assert_allclose(rgb[0, 0], [1, 1, 1])  # zero flow is white
    np.testing.assert_allclose(rgb[0, 1], [1, 0, 0], atol=1e-6)
    assert rgb[0, 2, 0] < 0.05 and rgb[0, 2, 2] > 0.95 and rgb[0, 2, 1] > 0.5
    assert rgb[0, 3, 0] > 0.95 and 0.5 < rgb[0, 3, 1] < 1 and rgb[0, 3, 2] < 0.05
    np.testing.assert_allclose(rgb[0, 4], [1, 0.5, 0.5], atol=1e-6)
    darker = flow_to_rgb(flow, max_magnitude=1.0)[0, 1]  # beyond the scale
    np.testing.assert_allclose(darker, [0.75, 0, 0], atol=1e-6)


def test_depth_to_rgb():
    z = np.array([[1.0, 0.5, 1e-3]], np.float32)[..., None]
    rgb = depth_to_rgb(z)
    assert rgb.shape == (1, 3, 3) and rgb.min() >= 0 and rgb.max() <= 1
    brightness = rgb.sum(-1)[0]
    assert brightness[0] > brightness[1] > brightness[2]  # near is bright


@pytest.mark.parametrize("name", ["anim.gif", "anim.mp4", "anim.webp", "frames"])
def test_frames_are_streamed_not_collected(tmp_path, name):
    import tracemalloc

    frame_bytes = 300 * 400 * 3 * 4
    count = 12

    def frames():
        for t in range(count):  # a fresh float32 frame each time, like the model's output
            yield np.full((300, 400, 3), t / count, np.float32)

    tracemalloc.start()
    try:
        write_animation(frames(), tmp_path / name)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # holding every frame would take 12 frames; one frame plus its conversion takes ~2.5
    assert peak < 4 * frame_bytes, f"peak {peak / frame_bytes:.1f} frames"


def test_contact_sheet_tiles_frames_in_rows():
    from spiritnet_tf.io import contact_sheet

    frames = np.stack([np.full((40, 80, 3), 10 * i, np.uint8) for i in range(5)])
    sheet = contact_sheet(frames, columns=4, width=100)
    assert sheet.shape == (100, 400, 3) and sheet.dtype == np.uint8  # 2 rows of 4 tiles, 100x50
    assert sheet[25, 150, 0] == 10 and sheet[75, 50, 0] == 40  # frame 1 in row 1, frame 4 in row 2
    assert (sheet[50:, 100:] == 255).all()  # the short row is padded with white
    with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
        contact_sheet(np.zeros((0, 4, 4, 3), np.uint8))


def test_to_uint8_converts_band_by_band_as_one_conversion(monkeypatch):
    """Float frames become uint8 a band of rows at a time (no full-size float temporary):
    the same values as clipping and rounding the whole frame, NaN or inf refused in any
    band, uint8 passed through."""
    from spiritnet_tf.io import writers

    monkeypatch.setattr(writers, "_CONVERT_VALUES", 50 * 3 * 4)  # bands of 4 rows
    frame = np.random.default_rng(0).uniform(-0.2, 1.2, (37, 50, 3))  # float64, 10 bands
    got = writers.to_uint8(frame)
    assert got.dtype == np.uint8 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, np.rint(np.clip(frame, 0, 1) * 255).astype(np.uint8))
    assert got.min() == 0 and got.max() == 255
    for bad in (np.nan, np.inf):
        broken = frame.astype(np.float32)
        broken[35, 7, 1] = bad  # in the last band
        with pytest.raises(ValueError, match="NaN or infinite"):
            writers.to_uint8(broken)
    np.testing.assert_array_equal(writers.to_uint8(got), got)
    with pytest.raises(ValueError, match=r"must be \[H, W, 3\]"):
        writers.to_uint8(frame[..., :2])
