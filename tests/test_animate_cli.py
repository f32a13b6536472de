"""`spiritnet animate` on folders and patterns, checks before the model, output modes, signals.

The model-free tests replace `animation.load_model` and the SpiritNet constructor with
functions that fail the test when called, so "before the model" is what they assert.
"""

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest
from PIL import Image

from spiritnet_tf import animation
from spiritnet_tf.cli import main
from spiritnet_tf.io import writers

from conftest import REPO



def _photo(path, height=40, width=60, seed=0):
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return str(path)


def _hidden(folder):
    return [f for f in os.listdir(folder) if f.startswith(".")]


@pytest.fixture
def no_model(monkeypatch):
    """Fails the test if a model is loaded or built."""
    from spiritnet_tf.model import SpiritNet

    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise AssertionError("the model was loaded before the inputs were checked")

    monkeypatch.setattr(animation, "load_model", refuse)
    monkeypatch.setattr(SpiritNet, "__init__", refuse)
    return calls


# ----------------------------------------------------------------------------- folders, failures


def test_folder_with_corrupt_photos_goes_on_and_names_them(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    _photo(photos / "a.png", seed=1)
    _photo(photos / "b.jpg", seed=2)
    (photos / "text.png").write_text("I am not a picture")
    # A valid header with damaged pixel data: found only when the photo is decoded.
    data = open(_photo(tmp_path / "full.png", 40, 60, seed=3), "rb").read()
    (photos / "truncated.png").write_bytes(data[:len(data) // 2])
    (photos / "notes.txt").write_text("not a photo extension: skipped")
    out = tmp_path / "out"
    argv = ["animate", str(photos), "-o", str(out), "--frames", "1", "--working-side", "48"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "2 of 4 photo(s) animated; 2 failed" in err, err
    summary = err[err.index("2 of 4 photo(s) animated; 2 failed"):]
    assert "text.png: not an image" in summary and "truncated.png" in summary
    assert sorted(os.listdir(out)) == ["a.gif", "b.gif"]
    for name in ("a.gif", "b.gif"):
        with open(out / name, "rb") as f:
            assert f.read(6) == b"GIF89a"
    assert not _hidden(out) and not _hidden(tmp_path)

    # Nothing is replaced without --overwrite: the rerun stops before any work.
    before = {n: (out / n).read_bytes() for n in os.listdir(out)}
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "a.gif already exists; pass --overwrite to replace it" in err
    assert "overwrite=True" not in err
    assert {n: (out / n).read_bytes() for n in os.listdir(out)} == before


def test_glob_pattern_and_folder_output(tmp_path, no_model, capsys):
    _photo(tmp_path / "x1.png")
    assert main(["animate", str(tmp_path / "*.jpg"), "-o", str(tmp_path / "o")]) == 1
    assert "the pattern matches no file" in capsys.readouterr().err
    # A pattern means a folder output, even for one match.
    assert main(["animate", str(tmp_path / "x*.png"), "-o", str(tmp_path / "o.gif")]) == 1
    assert "-o must be a folder" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["animate", str(empty), "-o", str(tmp_path / "o")]) == 1
    assert "a folder without photos" in capsys.readouterr().err
    assert no_model == []


# ----------------------------------------------------------------------------- before the model


def _corrupt_keras(path):
    path.write_bytes(b"PK\x03\x04 this zip stops here")


def _foreign_h5(path):
    with h5py.File(path, "w") as f:
        f.create_group("dense")


@pytest.mark.parametrize("case, message", [
    ("mask", "--mask"),
    ("parent-is-file", "is a file, not a folder"),
    ("corrupt-keras", "not a SpiritNet weights file (not a Keras .keras archive"),
    ("corrupt-h5", "not a SpiritNet weights file (not an HDF5 file)"),
    ("foreign-h5", "not a SpiritNet weights file (it holds the weights of another model"),
    ("missing-weights", "--weights"),
    ("existing-side-output", "photo_depth.png already exists; pass --overwrite"),
    ("existing-frames", "already holds frame files (frame_*.png); pass --overwrite"),
    ("all-photos-bad", "0 of 1 photo(s) animated"),
    ("too-many-pixels", "limit 100); resize it first or raise the pixel limit (--max-pixels)"),
])
def test_errors_come_before_the_model(tmp_path, no_model, capsys, case, message):
    photo = _photo(tmp_path / "photo.png")
    out = tmp_path / "photo.gif"
    extra = []
    if case == "mask":
        (tmp_path / "mask.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
        extra = ["--mask", str(tmp_path / "mask.png")]
    elif case == "parent-is-file":
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "photo.gif"
    elif case == "corrupt-keras":
        _corrupt_keras(tmp_path / "w.keras")
        extra = ["--weights", str(tmp_path / "w.keras")]
    elif case == "corrupt-h5":
        (tmp_path / "w.weights.h5").write_bytes(b"garbage" * 10)
        extra = ["--weights", str(tmp_path / "w.weights.h5")]
    elif case == "foreign-h5":
        _foreign_h5(tmp_path / "w.weights.h5")
        extra = ["--weights", str(tmp_path / "w.weights.h5")]
    elif case == "missing-weights":
        extra = ["--weights", str(tmp_path / "none.weights.h5")]
    elif case == "existing-side-output":
        (tmp_path / "photo_depth.png").write_bytes(b"mine")
        extra = ["--save-depth"]
    elif case == "existing-frames":
        out = tmp_path / "frames"
        out.mkdir()
        (out / "frame_0000.png").write_bytes(b"mine")
    elif case == "all-photos-bad":
        photo = str(tmp_path / "missing.jpg")
    elif case == "too-many-pixels":
        extra = ["--max-pixels", "100"]
    started = time.monotonic()
    assert main(["animate", photo, "-o", str(out), *extra]) == 1
    assert time.monotonic() - started < 5  # a model run takes longer (and is refused here)
    err = capsys.readouterr().err
    assert message in err, err
    for library_name in ("overwrite=True", "num_frames", "max_pixels", "Errno"):
        assert library_name not in err
    assert no_model == []
    assert not out.exists() or case == "existing-frames"
    assert not _hidden(tmp_path)


@pytest.mark.parametrize("option, value, message", [
    ("--fps", "0", "argument --fps: expected a finite number > 0"),
    ("--fps", "nan", "argument --fps"),
    ("--frames", "121", "argument --frames: expected a whole number >= 1 and <= 120"),
    ("--magnitude", "-1", "argument --magnitude"),
    ("--working-side", "8", "argument --working-side"),
])
def test_bad_options_are_argument_errors(tmp_path, no_model, capsys, option, value, message):
    with pytest.raises(SystemExit) as stop:
        main(["animate", _photo(tmp_path / "p.png"), "-o", str(tmp_path / "p.gif"), option, value])
    assert stop.value.code == 2
    assert message in capsys.readouterr().err
    assert no_model == []


# ----------------------------------------------------------------------------- output modes


def _tiny_animation(size=(36, 40), steps=2):
    rng = np.random.default_rng(0)
    image = rng.random(size + (3,), dtype=np.float32)
    return animation.Animation(image, np.repeat(image[None], steps + 1, 0),
                               np.zeros((steps,) + size + (2,), np.float32),
                               np.full(size + (1,), 0.5, np.float32))


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_outputs_get_the_umask_mode(tmp_path, umask):
    old = os.umask(umask)
    try:
        anim = _tiny_animation()
        written = []
        for name in ("g.gif", "m.mp4", "w.webp", "frames"):
            written += anim.save(tmp_path / name, save_flows=True, save_depth=(name == "g.gif"))
        written.append(writers.write_image(anim.frame(1), tmp_path / "still.png"))
    finally:
        os.umask(old)
    assert len(written) == 4 * 3 + 2 + 1
    for path in written:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        expected = (0o777 if os.path.isdir(path) else 0o666) & ~umask
        assert mode == expected, (path, oct(mode), oct(expected))
    for folder in (tmp_path / "frames", tmp_path / "frames_flows"):
        for frame in os.listdir(folder):
            assert stat.S_IMODE(os.stat(folder / frame).st_mode) == 0o666 & ~umask


# ----------------------------------------------------------------------------- signals

_SLOW_CLI = textwrap.dedent("""
    import sys, time
    import numpy as np
    from spiritnet_tf import animation, cli

    size = (48, 64)
    image = np.random.default_rng(0).random(size + (3,), dtype=np.float32)

    class Slow(animation.Animation):
        def frame(self, t):
            print("frame", t, flush=True)
            time.sleep(0.2)
            return super().frame(t)

    def fake_animate(photo, num_frames, seed, **kwargs):
        return Slow(image, np.repeat(image[None], num_frames + 1, 0),
                    np.zeros((num_frames,) + size + (2,), np.float32),
                    np.full(size + (1,), 0.5, np.float32))

    animation.animate = fake_animate
    animation.load_model = lambda *args, **kwargs: None
    cli.run()  # the `spiritnet` script's own exit
""")


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
@pytest.mark.parametrize("output", ["anim.gif", "frames"])
def test_signal_during_a_write_leaves_no_file(tmp_path, signum, status, output):
    photo = _photo(tmp_path / "photo.png")
    out = tmp_path / "out"
    out.mkdir()
    target = out / output
    if output == "frames":  # an existing output that must survive untouched
        target.mkdir()
        (target / "frame_0000.png").write_bytes(b"old frame")
    else:
        target.write_bytes(b"old animation")
    script = tmp_path / "slow_cli.py"
    script.write_text(_SLOW_CLI)
    proc = subprocess.Popen(
        [sys.executable, str(script), "animate", photo, "-o", str(target), "--frames", "20",
         "--overwrite"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": REPO},  # this checkout's package, not another install
        # A shell's background job inherits SIGINT ignored, and Python then keeps it so.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        for line in proc.stdout:
            if line.startswith("frame 3"):
                break
        assert any(f.startswith(".") for f in os.listdir(out))  # the write is under way
        proc.send_signal(signum)
        assert proc.wait(timeout=60) == status, proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
    assert os.listdir(out) == [output]
    if output == "frames":
        assert os.listdir(target) == ["frame_0000.png"]
        assert (target / "frame_0000.png").read_bytes() == b"old frame"
    else:
        assert target.read_bytes() == b"old animation"
