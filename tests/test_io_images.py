"""The image loader: conversions and refusals of docs/design.md §2, depth maps and masks."""

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from spiritnet_tf.io import (
    ImageInputError,
    load_depth_map,
    load_image,
    load_mask,
    resize_to_working_side,
    working_size,
)


def _rgb(height=40, width=48, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _save(array_or_image, path, **kwargs):
    im = array_or_image if isinstance(array_or_image, Image.Image) else Image.fromarray(
        array_or_image
    )
    im.save(path, **kwargs)
    return path


def _png_header_only(width, height):
    """A PNG whose IHDR declares width x height but that carries no pixel data at all."""

    def chunk(kind, data):
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


# ----------------------------------------------------------------------------- refusals


def test_missing_file_names_the_file(tmp_path):
    path = tmp_path / "nope.jpg"
    with pytest.raises(ImageInputError, match="nope.jpg: no such file"):
        load_image(path)


def test_not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is text, not a picture\n")
    with pytest.raises(ImageInputError, match=r"notes\.png: not an image"):
        load_image(path)


def test_truncated_image(tmp_path):
    data = io.BytesIO()
    Image.fromarray(_rgb(64, 64)).save(data, format="PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(data.getvalue()[: len(data.getvalue()) // 2])
    with pytest.raises(ImageInputError, match=r"cut\.png: corrupt or truncated"):
        load_image(path)


def test_too_small(tmp_path):
    path = _save(_rgb(10, 10), tmp_path / "tiny.png")
    with pytest.raises(ImageInputError, match=r"tiny\.png: too small \(10x10\)"):
        load_image(path)
    assert load_image(path, min_side=10).shape == (10, 10, 3)


def test_too_many_pixels(tmp_path):
    path = _save(_rgb(100, 120), tmp_path / "big.png")
    with pytest.raises(ImageInputError, match=r"big\.png: too many pixels \(120x100"):
        load_image(path, max_pixels=100 * 120 - 1)
    assert load_image(path, max_pixels=100 * 120).shape == (100, 120, 3)


@pytest.mark.parametrize("side", [8000, 20000])
def test_bomb_refused_from_the_header_before_decoding(tmp_path, side):
    # The file has no pixel data: had the loader decoded it, the error would be
    # "corrupt or truncated". 8000^2 = 64 MP is above our 50 MP default; 20000^2 is
    # also above Pillow's own hard limit, which must map to the same error.
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(side, side))
    with pytest.raises(ImageInputError, match=r"bomb\.png: too many pixels"):
        load_image(path)


def test_encoded_bytes_and_arrays():
    data = io.BytesIO()
    pixels = _rgb()
    Image.fromarray(pixels).save(data, format="PNG")
    np.testing.assert_array_equal(load_image(data.getvalue()), pixels / np.float32(255))
    with pytest.raises(ImageInputError, match="<encoded bytes>: not an image"):
        load_image(b"GIF89a garbage")
    np.testing.assert_array_equal(load_image(pixels), pixels / np.float32(255))
    deep = np.full((40, 40), 65535, np.uint16)
    assert load_image(deep).shape == (40, 40, 3) and load_image(deep).min() == 1.0
    palette = Image.fromarray(pixels).convert("P")
    np.testing.assert_array_equal(
        load_image(palette), np.asarray(palette.convert("RGB")) / np.float32(255)
    )
    with pytest.raises(ImageInputError, match="NaN"):
        load_image(np.full((40, 40, 3), np.nan, np.float32))
    with pytest.raises(ImageInputError, match=r"must lie in \[0, 1\]"):
        load_image(np.full((40, 40, 3), 2.0, np.float32))


# ----------------------------------------------------------------------------- conversions


def test_grayscale_becomes_rgb(tmp_path):
    gray = _rgb()[..., 0]
    image = load_image(_save(gray, tmp_path / "gray.png"))
    assert image.shape == (40, 48, 3) and image.dtype == np.float32
    for c in range(3):
        np.testing.assert_array_equal(image[..., c], gray / np.float32(255))


def test_rgba_composited_on_white(tmp_path):
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., :3] = (200, 40, 0)
    rgba[:, :10, 3] = 0  # transparent -> white
    rgba[:, 10:20, 3] = 255  # opaque -> the colour
    rgba[:, 20:, 3] = 128  # half -> blend
    image = load_image(_save(rgba, tmp_path / "rgba.png"))
    np.testing.assert_allclose(image[0, 0], [1, 1, 1])
    np.testing.assert_allclose(image[0, 15], [200 / 255, 40 / 255, 0], atol=1e-6)
    a = 128 / 255
    expected = np.array([200, 40, 0]) / 255 * a + (1 - a)
    np.testing.assert_allclose(image[0, 30], expected, atol=1e-6)


def test_la_and_palette_transparency_composited_on_white(tmp_path):
    la = Image.new("LA", (40, 40), (0, 0))
    assert np.all(load_image(_save(la, tmp_path / "la.png")) == 1)
    p = Image.new("P", (40, 40), 0)
    p.putpalette([10, 20, 30] * 256)
    p.info["transparency"] = 0
    assert np.all(load_image(_save(p, tmp_path / "p.png", transparency=0)) == 1)


def test_16_bit_png_scaled_exactly(tmp_path):
    rgb16 = np.zeros((40, 40, 3), np.uint16)
    rgb16[0, 0] = (65535, 1, 32768)
    rgb16[1:, :, 0] = np.arange(40, dtype=np.uint16)[None] * 1000
    path = str(tmp_path / "deep.png")
    cv2.imwrite(path, rgb16[..., ::-1])  # OpenCV wants BGR
    image = load_image(path)
    assert image[0, 0, 0] == 1.0
    np.testing.assert_allclose(image[0, 0, 1:], [1 / 65535, 32768 / 65535], rtol=1e-6)
    np.testing.assert_allclose(image, rgb16 / 65535.0, atol=1e-7)

    gray16 = (np.arange(40 * 40).reshape(40, 40) * 40).astype(np.uint16)
    path = str(tmp_path / "deep_gray.png")
    cv2.imwrite(path, gray16)
    image = load_image(path)
    np.testing.assert_allclose(image[..., 1], gray16 / 65535.0, atol=1e-7)


def test_exif_rotated_jpeg(tmp_path):
    pixels = np.zeros((40, 64, 3), np.uint8)
    pixels[:8, :8] = (255, 0, 0)  # red top-left corner in storage order
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: the viewer turns it 90 degrees clockwise
    path = _save(pixels, tmp_path / "rot.jpg", exif=exif, quality=95)
    image = load_image(path)
    assert image.shape == (64, 40, 3)
    assert image[2, -3, 0] > 0.8 and image[2, 2, 0] < 0.2  # red is now top-right
    reference = np.asarray(ImageOps.exif_transpose(Image.open(path))) / 255
    np.testing.assert_allclose(image, reference, atol=1e-6)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillow(tmp_path, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = _save(_rgb(36, 50), tmp_path / "o.png", exif=exif)
    reference = np.asarray(ImageOps.exif_transpose(Image.open(path))) / np.float32(255)
    np.testing.assert_array_equal(load_image(path), reference)


# ----------------------------------------------------------------------------- depth, masks


def test_depth_npy_to_inverse_depth(tmp_path):
    depth = np.linspace(2.0, 10.0, 40 * 30).reshape(30, 40)
    np.save(tmp_path / "d.npy", depth)
    z = load_depth_map(tmp_path / "d.npy")
    assert z.shape == (30, 40, 1) and z.dtype == np.float32
    np.testing.assert_allclose(z[..., 0], (1 / depth) / (1 / depth).max(), rtol=1e-6)
    assert z.max() == 1.0 and z[0, 0, 0] == 1.0  # nearest pixel

    np.save(tmp_path / "far.npy", np.array([[1.0, 1e6], [1.0, 1.0]])[..., None])
    assert load_depth_map(tmp_path / "far.npy").min() == pytest.approx(1e-3)  # clamped

    disparity = depth[::-1]
    np.save(tmp_path / "disp.npy", disparity)
    z = load_depth_map(tmp_path / "disp.npy", kind="inverse", size=(15, 20))
    assert z.shape == (15, 20, 1)
    assert z.max() == pytest.approx(1.0) and z.min() >= 1e-3
    assert z[-1, -1, 0] < z[0, 0, 0]  # larger disparity (top) = nearer


def test_depth_png_16_bit(tmp_path):
    depth = (np.arange(40)[None, :] * 500 + 1000 + np.zeros((32, 1))).astype(np.uint16)
    path = str(tmp_path / "d16.png")
    cv2.imwrite(path, depth)
    z = load_depth_map(path)
    np.testing.assert_allclose(z[..., 0], 1000 / depth.astype(np.float64), rtol=1e-6)


def test_depth_refusals(tmp_path):
    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan], [1.0, 1.0]]))
    with pytest.raises(ImageInputError, match="nan.npy: depth map contains NaN"):
        load_depth_map(tmp_path / "nan.npy")
    np.save(tmp_path / "zero.npy", np.array([[1.0, 0.0], [1.0, 1.0]]))
    with pytest.raises(ImageInputError, match=r"positive everywhere, 1 pixel"):
        load_depth_map(tmp_path / "zero.npy")
    assert load_depth_map(tmp_path / "zero.npy", kind="inverse").min() == pytest.approx(1e-3)
    with pytest.raises(ImageInputError, match="zero everywhere"):
        load_depth_map(np.zeros((4, 4)), kind="inverse")
    with pytest.raises(ImageInputError, match="one channel"):
        load_depth_map(_rgb())
    with pytest.raises(ValueError, match="kind"):
        load_depth_map(np.ones((4, 4)), kind="metres")
    with pytest.raises(ImageInputError, match="no such file"):
        load_depth_map(tmp_path / "missing.npy")


def test_mask_binary_and_resized(tmp_path):
    mask = np.zeros((40, 60), np.uint8)
    mask[:, :30] = 255
    m = load_mask(_save(mask, tmp_path / "m.png"))
    assert m.shape == (40, 60, 1)
    assert set(np.unique(m)) == {0.0, 1.0} and m[:, :30].all() and not m[:, 30:].any()
    small = load_mask(tmp_path / "m.png", size=(20, 30))
    assert small.shape == (20, 30, 1) and set(np.unique(small)) == {0.0, 1.0}
    assert small[:, :15].all() and not small[:, 15:].any()
    rgba = np.zeros((40, 40, 4), np.uint8)  # transparent = moving
    assert not load_mask(_save(rgba, tmp_path / "t.png")).any()


def test_working_size():
    assert working_size(2000, 3000, 448) == (299, 448)
    assert working_size(100, 50, 448) == (100, 50)  # never enlarged
    image = np.random.default_rng(0).random((200, 300, 3), dtype=np.float32)
    small = resize_to_working_side(image, 150)
    assert small.shape == (100, 150, 3) and small.dtype == np.float32
    assert abs(small.mean() - image.mean()) < 1e-3
