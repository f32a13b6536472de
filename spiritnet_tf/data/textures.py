"""Photographic textures for the synthetic depth scenes, from a registry package.

The Debian package ``gimp-data`` (2.10.34-1+deb12u10; GPL-3+, the ``Files: *`` stanza of
its copyright file) ships GIMP patterns: small photographs of stone, wood, bark, leaves,
fabric, sky... ``configs/depth_textures.sh`` downloads it (``apt-get download``) and
``python -m spiritnet_tf.data.textures PATTERNS OUT`` converts `PATTERNS` (the
photographic ones: not the drawn "Legacy" patterns) to ``OUT/<name>.png`` with
``OUT/SOURCES.json``. `load_textures` reads such a folder for
`spiritnet_tf.data.synthetic.generate_depth_scene`.
"""

import json
import os
import struct

import numpy as np

__all__ = ["PATTERNS", "SOURCE", "read_gimp_pattern", "load_textures", "convert_patterns"]

SOURCE = {
    "package": "gimp-data",
    "version": "2.10.34-1+deb12u10",
    "registry": "Debian (apt-get download gimp-data=2.10.34-1+deb12u10)",
    "licence": "GPL-3+ (with GPL-2+, LGPL-3+, MIT, Expat, BSD-2-clause: the Files: * stanza "
               "of /usr/share/doc/gimp-data/copyright)",
    "path": "usr/share/gimp/2.0/patterns",
}

PATTERNS = (
    "Animal/leather", "Animal/leopard", "Fabric/burlap", "Paper/crinklepaper", "Paper/paper",
    "Plant/leaves", "Sky/sky", "Stone/Craters", "Stone/Moonfoot", "Stone/brick", "Stone/cracked",
    "Stone/granite1", "Stone/ground1", "Stone/marble1", "Stone/marble2", "Stone/pink_marble",
    "Stone/rock", "Stone/slate", "Stone/stone33", "Stone/terra", "Water/ice", "Water/rain",
    "Wood/bark", "Wood/burlwood", "Wood/corkboard", "Wood/parque1", "Wood/pine", "Wood/walnut",
    "Wood/wood1", "Wood/wood2", "Wood/wood5",
)


def read_gimp_pattern(path):
    """A GIMP pattern (``.pat``, format version 1) as uint8 RGB ``[H, W, 3]``."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24 or data[20:24] != b"GPAT":
        raise ValueError(f"{path} is not a GIMP pattern (no GPAT magic)")
    header, version, width, height, depth = struct.unpack(">5I", data[:20])
    if version != 1 or depth not in (1, 2, 3, 4) or len(data) < header + width * height * depth:
        raise ValueError(f"{path}: unsupported or truncated GIMP pattern")
    pixels = np.frombuffer(data, np.uint8, width * height * depth, header).reshape(height, width, depth)
    if depth in (1, 2):
        pixels = np.repeat(pixels[..., :1], 3, -1)
    return np.ascontiguousarray(pixels[..., :3])


def convert_patterns(patterns_dir, out):
    """Writes each of `PATTERNS` found under ``patterns_dir`` as ``out/<Group>_<name>.png``
    and ``out/SOURCES.json``; returns the names written."""
    from PIL import Image

    os.makedirs(out, exist_ok=True)
    written = []
    for name in PATTERNS:
        path = os.path.join(patterns_dir, name + ".pat")
        if not os.path.isfile(path):
            continue
        target = os.path.join(out, name.replace("/", "_") + ".png")
        Image.fromarray(read_gimp_pattern(path)).save(target)
        written.append(os.path.basename(target))
    with open(os.path.join(out, "SOURCES.json"), "w") as f:
        json.dump({"source": SOURCE, "textures": written}, f, indent=1)
    return written


def load_textures(folder, min_side=16):
    """The PNG/JPEG textures of ``folder`` as float32 RGB arrays in [0, 1], sorted by
    name. Raises FileNotFoundError for a missing folder, ValueError naming a file that
    cannot be read or is smaller than ``min_side``, or a folder without images."""
    from PIL import Image

    if not os.path.isdir(folder):
        raise FileNotFoundError(f"no texture folder {folder} (configs/depth_textures.sh builds one)")
    textures = []
    for name in sorted(os.listdir(folder)):
        if not name.lower().endswith((".png", ".jpg", ".jpeg")):
            continue
        path = os.path.join(folder, name)
        try:
            with Image.open(path) as im:
                image = np.asarray(im.convert("RGB"), np.float32) / 255.0
        except Exception as e:  # noqa: BLE001 - any decoding failure is the file's fault
            raise ValueError(f"cannot read the texture {path}: {e}") from None
        if min(image.shape[:2]) < min_side:
            raise ValueError(f"texture {path} is {image.shape[1]}x{image.shape[0]}, below {min_side} px")
        textures.append(image)
    if not textures:
        raise ValueError(f"{folder} holds no PNG or JPEG textures")
    return textures


if __name__ == "__main__":
    from spiritnet_tf.cli import folder_script

    folder_script(convert_patterns, "python -m spiritnet_tf.data.textures PATTERNS_DIR OUT", "texture")
