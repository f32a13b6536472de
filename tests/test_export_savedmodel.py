"""SavedModel export (docs/design.md §6): export/to_savedmodel.py on a tiny random SpiritNet.

One export (through the command-line entry point; conftest.py's ``tiny_export``) is
shared by every test here and by test_serving.py (which also serves it with the dev
server and checks the answers against this SavedModel): tracing is the slow part.
Sizes are chosen so that every resize is an exact factor of 2 (area filter = 2x2 mean
in both OpenCV and TensorFlow), which lets the full-resolution frames be checked
against `spiritnet_tf.animation` (NumPy/OpenCV) independently.
"""

import io
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorflow_serving.apis import prediction_log_pb2

from spiritnet_tf.animation import Animation
from spiritnet_tf.export.savedmodel import WARMUP_FRAMES, main
from spiritnet_tf.io.images import resize_to_working_side
from spiritnet_tf.limits import MAX_SERVING_FRAMES

from conftest import EXPORT_MAX_OUTPUT_SIDE as MAX_OUTPUT_SIDE
from conftest import EXPORT_WORKING_SIDE as WORKING_SIDE


def _smooth(height, width, seed=0):
    """A smooth uint8 picture [H, W, 3] (low frequencies: bilinear resampling is well behaved)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    channels = [0.5 + 0.4 * np.sin(2 * np.pi * (rng.uniform(0.5, 1.5) * x + rng.uniform(0.5, 1.5) * y)
                                   + rng.uniform(0, 6)) for _ in range(3)]
    return np.round(np.stack(channels, -1) * 255).astype(np.uint8)


def _png(pixels):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def export(tiny_spiritnet, tiny_export):
    """(model, version folder BASE/1, CLI arguments): the suite's one export (conftest.py),
    made by the CLI from the model saved as .keras."""
    return (tiny_spiritnet,) + tuple(tiny_export)


@pytest.fixture(scope="module")
def loaded(export):
    return tf.saved_model.load(str(export[1]))


def _serve(loaded, png, num_frames, seed, edges="zoom"):
    out = loaded.signatures["serving_default"](
        image=tf.constant([png]), num_frames=tf.constant(num_frames, tf.int32),
        seed=tf.constant(seed, tf.int64), edges=tf.constant(edges))
    return {k: v.numpy() for k, v in out.items()}


def test_serving_default_matches_keras_at_working_size(export, loaded):
    model, _, _ = export
    pixels = _smooth(36, 48, seed=1)  # already at the working size: no resampling at all
    served = _serve(loaded, _png(pixels), num_frames=3, seed=7, edges="extend")
    ref = model({"image": pixels[None].astype(np.float32) / 255.0}, num_frames=3, seed=7)
    assert served["frames"].shape == (1, 3, 36, 48, 3) and served["frames"].dtype == np.uint8
    np.testing.assert_allclose(served["flows"], ref["flows"].numpy(), atol=1e-4)
    expected = np.round(np.clip(ref["frames"].numpy(), 0, 1) * 255)
    assert np.abs(served["frames"].astype(np.float64) - expected).max() <= 1


@pytest.mark.parametrize("edges", ["zoom", "extend"])
def test_serving_default_full_resolution_matches_animation(export, loaded, edges):
    """128x192 input: capped to 64x96 (max output side), model at 32x48, frames at 64x96.
    serving_default and `spiritnet_tf.animate`'s Animation share `spiritnet_tf.fullres`:
    frames, frame 0, crop and motion scale agree for both edges modes."""
    model, _, _ = export
    pixels = _smooth(128, 192, seed=2)
    served = _serve(loaded, _png(pixels), num_frames=3, seed=11, edges=edges)
    full = resize_to_working_side(pixels.astype(np.float32) / 255.0, MAX_OUTPUT_SIDE)
    small = resize_to_working_side(full, WORKING_SIDE)
    ref = model({"image": small[None]}, num_frames=3, seed=11, return_residuals=True)
    flows = ref["flows"].numpy()[0]
    assert served["flows"].shape == (1, 3, 32, 48, 2)
    np.testing.assert_allclose(served["flows"][0], flows, atol=1e-4)
    assert np.abs(flows).max() > 0.1  # the comparison below involves real motion
    anim = Animation(full, np.concatenate([small[None], ref["frames"].numpy()[0]]), flows,
                     np.ones((32, 48, 1), np.float32), residuals=ref["residuals"].numpy()[0],
                     edges=edges)
    assert (anim.zoom > 1.005) == (edges == "zoom")  # this motion needs a crop
    assert served["frames"].shape == (1, 3, 64, 96, 3)
    diff = np.abs(served["frames"][0].astype(np.int16) - anim.frames[1:].astype(np.int16))
    assert diff.max() <= 1
    assert np.abs(served["first_frame"][0].astype(np.int16) - anim.frames[0]).max() <= 1
    np.testing.assert_allclose(served["crop"][0], anim.crop, rtol=1e-5)
    np.testing.assert_allclose(served["motion_scale"], [anim.motion_scale])


def test_animate_tensor_matches_keras(export, loaded):
    model, _, _ = export
    rng = np.random.default_rng(3)
    image = rng.random((2, 36, 48, 3)).astype(np.float32)
    flow0 = rng.normal(0, 1.5, (2, 36, 48, 2)).astype(np.float32)
    out = loaded.signatures["animate_tensor"](
        image=tf.constant(image), flow0=tf.constant(flow0), num_frames=tf.constant(2))
    ref = model({"image": image, "flow0": flow0}, num_frames=2)
    np.testing.assert_allclose(out["flows"].numpy(), ref["flows"].numpy(), atol=1e-4)
    expected = np.round(np.clip(ref["frames"].numpy(), 0, 1) * 255)
    assert np.abs(out["frames"].numpy().astype(np.float64) - expected).max() <= 1


@pytest.mark.parametrize("num_frames", [0, MAX_SERVING_FRAMES + 1])
def test_num_frames_out_of_range_fails_in_graph(loaded, num_frames):
    """One frame more than `spiritnet_tf.limits.MAX_SERVING_FRAMES` (or none) fails inside
    the SavedModel's graph, with a message naming that limit (serving the limit itself, 64
    steps, takes 13 s here; the dev server test serves it with a light fixture)."""
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=rf"num_frames must be in 1\.\.{MAX_SERVING_FRAMES}\b"):
        _serve(loaded, _png(_smooth(36, 48)), num_frames=num_frames, seed=0)


def test_warmup_records_parse_and_replay(export, loaded):
    path = export[1] / "assets.extra" / "tf_serving_warmup_requests"
    signatures = []
    for record in tf.data.TFRecordDataset(str(path)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        assert log.WhichOneof("log_type") == "predict_log"
        request = log.predict_log.request
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
        out = loaded.signatures[request.model_spec.signature_name](**inputs)
        assert out["frames"].shape[1] == WARMUP_FRAMES
        signatures.append(request.model_spec.signature_name)
    assert sorted(signatures) == ["animate_tensor", "encoded", "serving_default"]


def test_saved_model_cli_lists_both_signatures_without_custom_ops(export):
    out = subprocess.run(
        [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show",
         "--dir", str(export[1]), "--all"], capture_output=True, text=True, check=True).stdout
    for name in ("serving_default", "encoded", "animate_tensor"):
        assert f"signature_def['{name}']" in out
    for name in ("image", "num_frames", "seed", "flow0", "frames", "flows"):
        assert f"['{name}']" in out
    # Composite warp by default: stock TF Serving must not need the compiled op (an
    # export with --custom-ops does hold SpiritnetAdaptiveWarp nodes in this file).
    graph = (export[1] / "saved_model.pb").read_bytes()
    assert b"SpiritnetAdaptiveWarp" not in graph


def _encoded(loaded, png, num_frames, seed, quality, edges="zoom"):
    out = loaded.signatures["encoded"](
        image=tf.constant([png]), num_frames=tf.constant(num_frames, tf.int32),
        seed=tf.constant(seed, tf.int64), edges=tf.constant(edges),
        quality=tf.constant(quality, tf.int32))
    return {k: v.numpy() for k, v in out.items()}


def test_encoded_signature_returns_serving_default_frames_as_jpeg(loaded):
    png = _png(_smooth(80, 96, seed=6))  # shrunk to the working size 40x48, frames at 80x96
    exact = _serve(loaded, png, num_frames=3, seed=2)
    fine = _encoded(loaded, png, num_frames=3, seed=2, quality=95)
    coarse = _encoded(loaded, png, num_frames=3, seed=2, quality=10)
    assert set(fine) == {"frames", "first_frame", "crop", "motion_scale"}
    assert fine["frames"].shape == (1, 3) and fine["first_frame"].shape == (1,)
    np.testing.assert_array_equal(fine["crop"], exact["crop"])
    np.testing.assert_array_equal(fine["motion_scale"], exact["motion_scale"])
    decoded = np.stack([np.asarray(Image.open(io.BytesIO(data))) for data in fine["frames"][0]])
    first = np.asarray(Image.open(io.BytesIO(fine["first_frame"][0])))
    assert decoded.shape == exact["frames"][0].shape and first.shape == exact["first_frame"][0].shape
    assert np.abs(decoded.astype(float) - exact["frames"][0]).mean() < 1.5
    assert np.abs(first.astype(float) - exact["first_frame"][0]).mean() < 1.5
    # The quality input reaches the encoder: a low quality is smaller and further off.
    assert sum(map(len, coarse["frames"][0])) < sum(map(len, fine["frames"][0]))
    low = np.stack([np.asarray(Image.open(io.BytesIO(data))) for data in coarse["frames"][0]])
    assert np.abs(low.astype(float) - exact["frames"][0]).mean() > np.abs(
        decoded.astype(float) - exact["frames"][0]).mean()
    for quality in (0, 101):
        with pytest.raises(tf.errors.InvalidArgumentError, match="quality must be a JPEG quality"):
            _encoded(loaded, png, num_frames=1, seed=0, quality=quality)


def test_cli_never_overwrites_and_checks_the_version(export, capsys):
    _, out, args = export
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(out).st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's private 0700
    stamp = os.path.getmtime(out / "saved_model.pb")
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    assert os.path.getmtime(out / "saved_model.pb") == stamp
    bad = [a if a != str(out) else str(out.parent / "latest") for a in args]
    assert main(bad) == 2
    assert "version" in capsys.readouterr().err


def test_custom_ops_export_overwrites_and_keeps_the_compiled_op(export, loaded, tmp_path):
    _, out, args = export
    target = tmp_path / "spiritnet" / "1"
    target.mkdir(parents=True)
    (target / "stale.txt").write_text("an older export")
    custom = [a if a != str(out) else str(target) for a in args] + ["--custom-ops", "--overwrite"]
    assert main(custom) == 0
    assert not (target / "stale.txt").exists()
    assert b"SpiritnetAdaptiveWarp" in (target / "saved_model.pb").read_bytes()
    png = _png(_smooth(36, 48, seed=6))
    with_op = _serve(tf.saved_model.load(str(target)), png, num_frames=2, seed=1)
    composite = _serve(loaded, png, num_frames=2, seed=1)
    np.testing.assert_allclose(with_op["flows"], composite["flows"], atol=1e-4)
    assert np.abs(with_op["frames"].astype(np.int16) - composite["frames"]).max() <= 1
