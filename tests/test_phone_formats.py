"""Motion Photo and Live Photo outputs (`spiritnet_tf.io.phone` through `AnimationWriter`),
parsed back independently: the XMP with an XML parser by namespace URI, the appended MP4
by its bytes and by decoding it, the Live Photo identifiers with exiftool."""

import io
import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from spiritnet_tf.io import phone
from spiritnet_tf.io.writers import (
    AnimationWriter,
    live_photo_video,
    output_extension,
    output_format,
    write_animation,
)
from spiritnet_tf.limits import MAX_JPEG_SIDE

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"


def _frames(count=5, height=48, width=64):
    """Frames that differ visibly: a gradient with a bright square moving right."""
    y, x = np.mgrid[0:height, 0:width]
    frames = []
    for t in range(count):
        frame = np.stack([x / width, y / height, np.full_like(x, 0.3, dtype=float)], -1)
        frame[10:26, 4 + 8 * t:20 + 8 * t] = 1.0
        frames.append((frame * 255).round().astype(np.uint8))
    return frames


def _xmp(data):
    """The XMP packet of a JPEG's APP1 segment, as an ElementTree root."""
    header = b"http://ns.adobe.com/xap/1.0/\0"
    start = data.index(header) + len(header)
    length = int.from_bytes(data[start - len(header) - 2:start - len(header)], "big")
    packet = data[start:start - len(header) - 2 + length]
    return ET.fromstring(packet[packet.index(b"<x:xmpmeta"):packet.index(b"</x:xmpmeta>") + 12])


def test_output_format_and_extension_of_phone_names(tmp_path):
    assert output_format("a/b.MP.jpg") == output_format("b.mp.jpeg") == "motion-photo"
    assert output_format("b.JPG") == output_format("b.jpeg") == "live-photo"
    assert output_extension("x/b.MP.jpg") == ".MP.jpg" and output_extension("b.JPG") == ".JPG"
    assert output_extension("b.gif") == ".gif" and output_extension("frames/") == ""
    assert live_photo_video("p/b.JPG") == os.path.join("p", "b.MOV")
    assert live_photo_video("b.jpg") == "b.mov"


def test_motion_photo_xmp_names_the_appended_mp4_and_the_mp4_holds_every_frame(tmp_path):
    frames = _frames()
    path = tmp_path / "walk.MP.jpg"
    assert write_animation(frames, path, fps=8) == len(frames)
    data = path.read_bytes()
    root = _xmp(data)
    camera, item = phone.CAMERA_NS, phone.ITEM_NS
    description = root.find(f".//{{{RDF}}}Description")
    assert description.get(f"{{{camera}}}MotionPhoto") == "1"
    assert description.get(f"{{{camera}}}MotionPhotoVersion") == "1"
    assert description.get(f"{{{camera}}}MotionPhotoPresentationTimestampUs") == "0"
    items = root.findall(f".//{{{phone.CONTAINER_NS}}}Item")
    assert [(i.get(f"{{{item}}}Mime"), i.get(f"{{{item}}}Semantic")) for i in items] == [
        ("image/jpeg", "Primary"), ("video/mp4", "MotionPhoto")]
    length = int(items[1].get(f"{{{item}}}Length"))
    video = data[-length:]
    assert video[4:8] == b"ftyp"
    # The JPEG part (everything before the video) decodes to the photo's size, as frame 0.
    still = np.asarray(Image.open(io.BytesIO(data[:-length])))
    assert still.shape == frames[0].shape
    assert np.abs(still.astype(float) - frames[0]).mean() < 3
    decoded = _decode_with_ffmpeg(video, tmp_path)
    assert len(decoded) == len(frames)
    for got, want in zip(decoded, frames):
        assert np.abs(got[:48, :64].astype(float) - want).mean() < 4
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o666 & ~_umask())


def _decode_with_ffmpeg(video, folder):
    """Every frame of an MP4 (bytes), decoded by the ffmpeg of imageio-ffmpeg."""
    import imageio_ffmpeg

    source = folder / "part.mp4"
    source.write_bytes(video)
    reader = imageio_ffmpeg.read_frames(str(source))
    meta = next(reader)
    width, height = meta["size"]
    return [np.frombuffer(raw, np.uint8).reshape(height, width, 3) for raw in reader]


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_live_photo_pair_shares_one_content_identifier(tmp_path):
    assert shutil.which("exiftool"), "exiftool missing: `make test` installs libimage-exiftool-perl"
    frames = _frames()
    path = tmp_path / "walk.JPG"
    write_animation(frames, path, fps=8)
    video = tmp_path / "walk.MOV"
    assert sorted(os.listdir(tmp_path)) == ["walk.JPG", "walk.MOV"]  # no partial file left
    run = subprocess.run(["exiftool", "-j", "-a", "-G1", "-ContentIdentifier", "-MediaGroupUUID",
                          "-ImageSize", str(path), str(video)],
                         capture_output=True, text=True, check=True)
    tags = json.loads(run.stdout)
    identifiers = [next(v for k, v in t.items() if k.endswith(("ContentIdentifier",
                                                               "MediaGroupUUID"))) for t in tags]
    assert identifiers[0] == identifiers[1] and len(identifiers[0]) == 36
    assert tags[0]["Composite:ImageSize"] == tags[1]["Composite:ImageSize"] == "64x48"
    still = np.asarray(Image.open(path))
    assert np.abs(still.astype(float) - frames[0]).mean() < 3
    assert len(_decode_with_ffmpeg(video.read_bytes(), tmp_path)) == len(frames)
    # A second pair gets its own identifier.
    write_animation(frames, tmp_path / "other.jpg")
    run = subprocess.run(["exiftool", "-s3", "-ContentIdentifier", str(tmp_path / "other.mov")],
                         capture_output=True, text=True, check=True)
    assert run.stdout.strip() and run.stdout.strip() != identifiers[0]


def test_live_photo_refuses_to_replace_either_file(tmp_path):
    (tmp_path / "walk.mov").write_bytes(b"the user's video")
    with pytest.raises(FileExistsError, match="walk.mov already exists"):
        write_animation(_frames(), tmp_path / "walk.jpg")
    assert (tmp_path / "walk.mov").read_bytes() == b"the user's video"
    assert sorted(os.listdir(tmp_path)) == ["walk.mov"]
    write_animation(_frames(), tmp_path / "walk.jpg", overwrite=True)
    assert (tmp_path / "walk.mov").read_bytes()[4:8] == b"ftyp"


def test_a_photo_too_wide_for_jpeg_fails_clearly_and_leaves_no_file(tmp_path):
    wide = np.zeros((700, MAX_JPEG_SIDE + 4465, 3), np.uint8)  # 70000 x 700: 49 MP
    for name in ("wide.MP.jpg", "wide.jpg"):
        with pytest.raises(ValueError, match=r"a JPEG side is at most 65,535 px"):
            with AnimationWriter(tmp_path / name) as writer:
                writer.append(wide)
    assert os.listdir(tmp_path) == []


def test_animate_cli_names_phone_outputs_per_photo(tmp_path):
    from spiritnet_tf.animate_cli import _outputs, add_parser
    import argparse

    photos = [str(tmp_path / "a.png"), str(tmp_path / "b.jpg")]
    out = str(tmp_path / "out")
    assert _outputs(photos, False, out, "motion-photo") == [
        os.path.join(out, "a.MP.jpg"), os.path.join(out, "b.MP.jpg")]
    assert _outputs(photos, False, out, "live-photo") == [
        os.path.join(out, "a.jpg"), os.path.join(out, "b.jpg")]
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["animate", "x.png", "-o", out, "--format", "live-photo"])
    assert args.format == "live-photo"
