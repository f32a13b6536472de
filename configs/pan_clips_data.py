"""Steady camera pans over still pictures, as frame folders for the "videos" source: motion
that carries on by construction (docs/training.md, "Fiftieth and fifty-first attempts").

Each picture gives one clip: a window of ``--size`` (H x W) sliding over it at a constant
velocity (speed drawn from ``--speeds``, direction mostly horizontal, as cameras pan),
resampled bilinearly (`cv2.warpAffine`), ``--frames`` frames written as PNGs into
``OUT/<picture name>/``, with OUT/SOURCES.json recording the pictures, each clip's
velocity and the seed. The teacher flows are computed later by the videos source, as
for real footage, so their noise is the same kind.

    python configs/pan_clips_data.py PICTURES OUT [--frames 24] [--size 160x224]
        [--speeds 1,4] [--seed 0]
"""

import argparse
import glob
import json
import os

import numpy as np


def pan_clip(picture, size, velocity, frames, start):
    """``frames`` uint8 frames [H, W, 3]: the window of ``size`` whose top-left corner is at
    ``start + t * velocity`` (x, y in pixels) in frame t, sampled bilinearly from ``picture``."""
    import cv2

    height, width = size
    clip = []
    for t in range(frames):
        x, y = np.asarray(start, float) + t * np.asarray(velocity, float)
        shift = np.float32([[1, 0, -x], [0, 1, -y]])
        clip.append(cv2.warpAffine(picture, shift, (width, height), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REFLECT))
    return clip


def draw_pan(rng, picture_shape, size, frames, speeds):
    """(velocity (vx, vy), start (x, y)) of a pan that stays inside the picture: the speed
    uniform in ``speeds`` (px per frame, reduced when the picture is too small for it), the
    direction within 30 degrees of horizontal (either way) two times in three, else any."""
    room = np.array([picture_shape[1] - size[1], picture_shape[0] - size[0]], float)
    if (room < 0).any():
        raise ValueError(f"a picture of {picture_shape[1]}x{picture_shape[0]} is smaller than "
                         f"the {size[1]}x{size[0]} window")
    angle = rng.uniform(-30, 30) + rng.choice([0, 180]) if rng.random() < 2 / 3 else rng.uniform(0, 360)
    direction = np.array([np.cos(np.radians(angle)), np.sin(np.radians(angle))])
    travel = np.abs(direction) * (frames - 1)
    limit = min((room[i] / travel[i] for i in range(2) if travel[i] > 1e-9), default=np.inf)
    speed = min(rng.uniform(*speeds), limit)
    velocity = direction * speed
    span = np.abs(velocity) * (frames - 1)
    start = [rng.uniform(0, room[i] - span[i]) + (span[i] if velocity[i] < 0 else 0) for i in range(2)]
    return velocity, np.array(start)


def main(argv=None):
    from PIL import Image
    from tqdm.auto import tqdm

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pictures", help="folder of .png/.jpg pictures")
    parser.add_argument("out")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", default="160x224", help="H x W of the window")
    parser.add_argument("--speeds", default="1,4", help="lowest,highest speed in px per frame")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    speeds = tuple(float(v) for v in args.speeds.split(","))
    pictures = sorted(p for ext in ("png", "jpg", "jpeg") for p in glob.glob(
        os.path.join(args.pictures, f"*.{ext}")))
    if not pictures:
        raise SystemExit(f"no .png/.jpg pictures in {args.pictures}")
    rng = np.random.default_rng(args.seed)
    clips = {}
    for path in tqdm(pictures, desc="pans", unit="clip"):
        picture = np.asarray(Image.open(path).convert("RGB"))
        velocity, start = draw_pan(rng, picture.shape, size, args.frames, speeds)
        name = os.path.splitext(os.path.basename(path))[0]
        folder = os.path.join(args.out, name)
        os.makedirs(folder, exist_ok=True)
        for t, frame in enumerate(pan_clip(picture, size, velocity, args.frames, start)):
            Image.fromarray(frame).save(os.path.join(folder, f"{t:03d}.png"))
        clips[name] = {"picture": os.path.relpath(path), "velocity_px_per_frame": velocity.round(3).tolist()}
    picture_sources = None
    if os.path.exists(os.path.join(args.pictures, "SOURCES.json")):
        with open(os.path.join(args.pictures, "SOURCES.json")) as f:
            picture_sources = json.load(f)
    with open(os.path.join(args.out, "SOURCES.json"), "w") as f:
        json.dump({"pictures": os.path.relpath(args.pictures), "pictures_sources": picture_sources,
                   "frames": args.frames, "size": list(size), "speeds": list(speeds),
                   "seed": args.seed, "clips": clips}, f, indent=1)
    print(f"{len(clips)} pan clips in {args.out}")


if __name__ == "__main__":
    main()
