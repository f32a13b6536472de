"""Real pictures without depth for the depth net's edge penalty (`DepthPretraining.photos`):
frames of the film Big Buck Bunny (moviepy 2.1.2's copy, configs/bbb_film.sh), one every
``--every`` frames outside the left-out ranges of the depth footage (`EXCLUDE`: titles,
end credits and the depth evaluation's shot), without near-flat ones (fades, black
frames: grey-level standard deviation below ``--min-contrast``), written as 448-px-wide
PNGs with a SOURCES.json.

    python configs/depth_photos_data.py VIDEO OUT [--every N] [--min-contrast G]
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from depth_footage_data import EXCLUDE, SOURCE  # noqa: E402 (one owner of both)

WIDTH = 448


def main():
    import cv2
    from PIL import Image
    from tqdm.auto import tqdm

    from spiritnet_tf.data.videos import read_frames

    parser = argparse.ArgumentParser()
    parser.add_argument("video")
    parser.add_argument("out")
    parser.add_argument("--every", type=int, default=120)
    parser.add_argument("--min-contrast", type=float, default=20.0)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    kept, flat = [], 0
    for i, frame in enumerate(tqdm(read_frames(args.video), desc="reading the film", unit="frame")):
        if i % args.every or any(a <= i <= b for a, b in EXCLUDE):
            continue
        height = round(frame.shape[0] * WIDTH / frame.shape[1])
        small = cv2.resize(frame, (WIDTH, height), interpolation=cv2.INTER_AREA)
        if cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).std() < args.min_contrast:
            flat += 1
            continue
        Image.fromarray(small).save(os.path.join(args.out, f"bbb_{i:06d}.png"))
        kept.append(i)
    with open(os.path.join(args.out, "SOURCES.json"), "w") as f:
        json.dump({"source": SOURCE, "every": args.every, "min_contrast": args.min_contrast,
                   "left_out": EXCLUDE, "flat_dropped": flat, "frames": kept}, f, indent=1)
    print(f"{len(kept)} frames kept ({flat} near-flat dropped) in {args.out}")


if __name__ == "__main__":
    main()
