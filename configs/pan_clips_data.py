"""Camera moves over still pictures, as frame folders for the "videos" source: steady pans,
motion that carries on by construction (docs/training.md, "Fiftieth and fifty-first
attempts"), or hand-held shake, motion that turns back (``--motion shake``), or pans whose
velocity changes steadily (``--motion ramp``; "Seventy-eighth to eighty-ninth
attempts").

Each picture gives one clip: a window of ``--size`` (H x W) moving over it, resampled
bilinearly (`cv2.warpAffine`), ``--frames`` frames written as PNGs into
``OUT/<picture name>/``, with OUT/SOURCES.json recording the pictures, each clip's motion
and the seed. A pan moves at a constant velocity (speed drawn from ``--speeds``, direction
mostly horizontal, as cameras pan); a shake follows a sum of three sines per axis (periods
4-16 frames, peak speed drawn from ``--speeds``) on a slow drift; a ramp's speed goes
linearly between two draws and its direction turns by up to 45 degrees. The teacher flows are
computed later by the videos source, as for real footage, so their noise is the same kind.

    python configs/pan_clips_data.py PICTURES OUT [--frames 24] [--size 160x224]
        [--speeds 1,4] [--motion pan|shake|ramp] [--seed 0]
"""

import argparse
import glob
import json
import os

import numpy as np


def pan_clip(picture, size, corners):
    """One uint8 frame [H, W, 3] per row of ``corners`` ([frames, 2], x, y in pixels): the
    window of ``size`` whose top-left corner is there, sampled bilinearly from ``picture``.
    A pan's corners are ``start + t * velocity``."""
    import cv2

    height, width = size
    clip = []
    for x, y in np.asarray(corners, float):
        shift = np.float32([[1, 0, -x], [0, 1, -y]])
        clip.append(cv2.warpAffine(picture, shift, (width, height), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REFLECT))
    return clip


def _room(picture_shape, size):
    """(x, y) room a window of ``size`` (H, W) has to move in a picture of ``picture_shape``."""
    room = np.array([picture_shape[1] - size[1], picture_shape[0] - size[0]], float)
    if (room < 0).any():
        raise ValueError(f"a picture of {picture_shape[1]}x{picture_shape[0]} is smaller than "
                         f"the {size[1]}x{size[0]} window")
    return room


def _pan_angle(rng):
    """A pan's direction in degrees: within 30 of horizontal (either way) two times in three,
    else any."""
    return rng.uniform(-30, 30) + rng.choice([0, 180]) if rng.random() < 2 / 3 else rng.uniform(0, 360)


def _place(rng, path, room):
    """``path`` ([frames, 2] corners) shrunk where it spans more than ``room`` and moved to a
    random place inside it."""
    path = path - path.min(axis=0)
    path = path * np.minimum(1.0, room / np.maximum(path.max(axis=0), 1e-9))
    return path + rng.uniform(0, 1, 2) * (room - path.max(axis=0))


def draw_pan(rng, picture_shape, size, frames, speeds):
    """(velocity (vx, vy), start (x, y)) of a pan that stays inside the picture: the speed
    uniform in ``speeds`` (px per frame, reduced when the picture is too small for it), the
    direction within 30 degrees of horizontal (either way) two times in three, else any."""
    room = _room(picture_shape, size)
    angle = _pan_angle(rng)
    direction = np.array([np.cos(np.radians(angle)), np.sin(np.radians(angle))])
    travel = np.abs(direction) * (frames - 1)
    limit = min((room[i] / travel[i] for i in range(2) if travel[i] > 1e-9), default=np.inf)
    speed = min(rng.uniform(*speeds), limit)
    velocity = direction * speed
    span = np.abs(velocity) * (frames - 1)
    start = [rng.uniform(0, room[i] - span[i]) + (span[i] if velocity[i] < 0 else 0) for i in range(2)]
    return velocity, np.array(start)


def draw_shake(rng, picture_shape, size, frames, speeds):
    """Top-left corners [frames, 2] (x, y) of a hand-held camera's window inside the picture:
    per axis a sum of three sines (periods uniform in 4-16 frames, random phases, the peak
    speed of the sum uniform in ``speeds`` px per frame) plus a drift of at most 0.5 px per
    frame, shrunk where the picture leaves too little room and placed at random inside it."""
    room = _room(picture_shape, size)
    t = np.arange(frames, dtype=float)[:, None]
    periods = rng.uniform(4, 16, (3, 2))
    weights = rng.dirichlet(np.ones(3), 2).T
    path = rng.uniform(-0.5, 0.5, 2) * t
    for k in range(3):
        path = path + weights[k] * periods[k] / (2 * np.pi) * np.sin(
            2 * np.pi * t / periods[k] + rng.uniform(0, 2 * np.pi, 2))
    peak = np.abs(np.diff(path, axis=0)).max(axis=0)
    return _place(rng, path * rng.uniform(*speeds) / max(peak.max(), 1e-9), room)


def draw_ramp(rng, picture_shape, size, frames, speeds):
    """Top-left corners [frames, 2] (x, y) of a pan whose velocity changes steadily: the speed
    going linearly from one draw in ``speeds`` to another, the direction (as a pan's) turning
    by up to 45 degrees either way over the clip; shrunk and placed as a shake."""
    room = _room(picture_shape, size)
    t = np.linspace(0, 1, frames - 1)
    speed = np.interp(t, [0, 1], rng.uniform(*speeds, 2))
    angle = np.radians(_pan_angle(rng) + rng.uniform(-45, 45) * t)
    steps = speed[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return _place(rng, np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)]), room)


def main(argv=None):
    from PIL import Image
    from tqdm.auto import tqdm

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pictures", help="folder of .png/.jpg pictures")
    parser.add_argument("out")
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--size", default="160x224", help="H x W of the window")
    parser.add_argument("--speeds", default="1,4", help="lowest,highest speed in px per frame")
    parser.add_argument("--motion", choices=("pan", "shake", "ramp"), default="pan")
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
    for path in tqdm(pictures, desc=args.motion, unit="clip"):
        picture = np.asarray(Image.open(path).convert("RGB"))
        if args.motion == "pan":
            velocity, start = draw_pan(rng, picture.shape, size, args.frames, speeds)
            corners = start + np.arange(args.frames)[:, None] * velocity
            motion = {"velocity_px_per_frame": velocity.round(3).tolist()}
        else:
            draw = draw_shake if args.motion == "shake" else draw_ramp
            corners = draw(rng, picture.shape, size, args.frames, speeds)
            motion = {"corners_px": corners.round(3).tolist()}
        name = os.path.splitext(os.path.basename(path))[0]
        folder = os.path.join(args.out, name)
        os.makedirs(folder, exist_ok=True)
        for t, frame in enumerate(pan_clip(picture, size, corners)):
            Image.fromarray(frame).save(os.path.join(folder, f"{t:03d}.png"))
        clips[name] = {"picture": os.path.relpath(path), **motion}
    picture_sources = None
    if os.path.exists(os.path.join(args.pictures, "SOURCES.json")):
        with open(os.path.join(args.pictures, "SOURCES.json")) as f:
            picture_sources = json.load(f)
    with open(os.path.join(args.out, "SOURCES.json"), "w") as f:
        json.dump({"pictures": os.path.relpath(args.pictures), "pictures_sources": picture_sources,
                   "frames": args.frames, "size": list(size), "speeds": list(speeds),
                   "motion": args.motion, "seed": args.seed, "clips": clips}, f, indent=1)
    print(f"{len(clips)} {args.motion} clips in {args.out}")


if __name__ == "__main__":
    main()
