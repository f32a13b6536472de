"""Training clips of real motion for the default weights, cut from Big Buck Bunny
(moviepy 2.1.2's copy of the film, see configs/bbb_film.sh): one clip per shot with a
moving camera or moving content.

    python configs/motion_footage_data.py VIDEO OUT [--min-length 48] [--min-motion 0.5]

The film is read twice. First as small grey pictures: `spiritnet_tf.data.videos.find_shots`
cuts it into shots (split again at the cross-dissolves of DISSOLVES); a shot is kept when
it is at least --min-length frames long, lies outside the film's left-out ranges (the
titles, the end credits and frames 1100-1530, the depth evaluation's shot; the same ranges
as configs/depth_footage_data.py) and its median DIS flow between frames two apart, at
224x126, is at least --min-motion px (measured at four places in the shot). Then the kept
shots are written as OUT/bbb_<first>-<last>.mp4 (398x224, H.264 crf 12) with
OUT/SOURCES.json (source, licence, every shot and its motion). A rerun with the same
options and every clip present does nothing; other options are refused.
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from depth_footage_data import EXCLUDE, SOURCE  # noqa: E402  one owner of the film's facts

# Cross-dissolves inside shots that find_shots keeps whole (a dissolve changes every frame
# a little, like motion); found by eye on the contact sheet of the kept shots (film
# frames, inclusive). A shot is split there: teacher flow across a blend is meaningless.
DISSOLVES = ((8525, 8537), (11181, 11195))
CLIP_SIZE = (398, 224)  # W, H: the film's 16:9 at the training crops' 224 px
MOTION_SIZE = (224, 126)


def split_at(shots, ranges):
    """The shots with the frames of ``ranges`` removed (a shot across one becomes two)."""
    for a, b in ranges:
        pieces = []
        for first, last in shots:
            if last < a or first > b:
                pieces.append((first, last))
                continue
            pieces += [p for p in ((first, a - 1), (b + 1, last)) if p[0] <= p[1]]
        shots = pieces
    return shots


def clip_path(out, first, last):
    return os.path.join(out, f"bbb_{first:05d}-{last:05d}.mp4")


def shot_motion(frames, first, last, gap=2, places=4):
    """Median DIS flow magnitude (px at MOTION_SIZE) between frames ``gap`` apart, the
    median over ``places`` pairs spread over the shot."""
    from spiritnet_tf.evaluation.depth_scenes import consistent_flow

    starts = np.linspace(first, last - gap, places).round().astype(int)
    medians = []
    for i in starts:
        forward, _, valid = consistent_flow(frames[i], frames[i + gap])
        magnitude = np.linalg.norm(forward, axis=-1)
        medians.append(float(np.median(magnitude[valid])) if valid.mean() > 0.2 else 0.0)
    return float(np.median(medians))


def main():
    import cv2
    import imageio_ffmpeg
    from tqdm.auto import tqdm

    from spiritnet_tf.data.videos import find_shots, read_frames

    parser = argparse.ArgumentParser()
    parser.add_argument("video")
    parser.add_argument("out")
    parser.add_argument("--min-length", type=int, default=48)
    parser.add_argument("--min-motion", type=float, default=0.5)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    record = os.path.join(args.out, "SOURCES.json")
    options = {"min_length": args.min_length, "min_motion": args.min_motion,
               "dissolves": [list(r) for r in DISSOLVES]}
    if os.path.isfile(record):
        with open(record) as f:
            done = json.load(f)
        if done.get("options") != options:
            raise SystemExit(f"{args.out} holds clips cut with other options; choose "
                             f"another folder or empty it")
        kept = [r for r in done["shots"] if r["kept"]]
        if all(os.path.isfile(clip_path(args.out, r["first"], r["last"])) for r in kept):
            print(f"{len(kept)} clips already in {args.out}")
            return

    thumbs, small = [], []
    for frame in tqdm(read_frames(args.video), desc="reading the film", unit="frame"):
        small.append(cv2.resize(frame, MOTION_SIZE, interpolation=cv2.INTER_AREA))
        thumbs.append(cv2.cvtColor(cv2.resize(small[-1], (64, 36), interpolation=cv2.INTER_AREA),
                                   cv2.COLOR_RGB2GRAY))
    shots = split_at(find_shots(np.stack(thumbs)), DISSOLVES)
    shots = [(a, b) for a, b in shots if b - a + 1 >= args.min_length]
    kept, rows = [], []
    for first, last in tqdm(shots, desc="measuring shots", unit="shot"):
        left_out = any(first <= b and last >= a for a, b in EXCLUDE)
        motion = None if left_out else shot_motion(small, first, last)
        keep = not left_out and motion >= args.min_motion
        rows.append({"first": first, "last": last, "motion_px": motion, "left_out": left_out,
                     "kept": keep})
        if keep:
            kept.append((first, last))
    del small

    writers, names = {}, {}
    for first, last in kept:
        names[first] = clip_path(args.out, first, last)
    ends = dict(kept)
    for i, frame in enumerate(tqdm(read_frames(args.video), desc="writing clips", unit="frame",
                                   total=len(thumbs))):
        if i in names and not os.path.isfile(names[i]):
            writers[i] = imageio_ffmpeg.write_frames(
                names[i] + ".partial.mp4", CLIP_SIZE, fps=24, codec="libx264",
                output_params=["-crf", "12"], macro_block_size=2)
            writers[i].send(None)
        for first, writer in list(writers.items()):
            writer.send(np.ascontiguousarray(cv2.resize(frame, CLIP_SIZE, interpolation=cv2.INTER_AREA)))
            if i == ends[first]:
                writer.close()
                os.replace(names[first] + ".partial.mp4", names[first])
                del writers[first]
    with open(record, "w") as f:
        json.dump({"source": SOURCE, "options": options, "left_out": EXCLUDE,
                   "shots": rows}, f, indent=1)
    total = sum(b - a + 1 for a, b in kept)
    print(f"{len(shots)} shots, {len(kept)} kept ({total} frames) in {args.out}")


if __name__ == "__main__":
    main()
