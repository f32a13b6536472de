"""Pseudo-depth training samples mined from footage whose camera moves (plane + parallax).

The depth net's pre-training (`spiritnet_tf.training.depth`) learns from the synthetic
cue scenes; this adds real(istic) images with relative inverse depth measured from
parallax, the same measurement as the evaluation scenes
(`spiritnet_tf.evaluation.depth_scenes.parallax_inverse_depth`: DIS flow both ways, a
RANSAC homography, the residual along its principal direction).

`mine_footage` reads a video once, takes the pair of frames ``(i, i + gap)`` every
``every`` frames (both resized so that the long side is ``side``), and keeps the pairs
whose parallax is usable:

* at least ``min_valid`` of the pixels pass the flow's forward-backward check (a cut
  between the two frames, fast motion or motion blur fail it);
* the camera moved: the median flow is at least ``min_flow_px`` (with a still camera
  the "parallax" is the characters' own motion, not depth);
* the parallax spreads over at least ``min_spread_px`` (5th to 95th percentile): a
  camera that only pans has none;
* the frame is outside every ``exclude`` range (the evaluation's shots: split by scene).

The geometry does not fix the sign of the parallax (which side of the fitted plane is
near). A pair is kept only when two independent guesses agree on it: the row index
("lower is nearer") and, when ``reference`` is given, a depth net's prediction (a
callable image -> inverse depth), each with a Spearman correlation of at least
``min_sign_rho`` in absolute value (without ``reference``: the row index alone, at twice
that). The sign decides only the direction of the order; the shape of the depth (which
pixels group together, where the edges are) is the parallax's own.

Each kept pair is written as ``OUT/<prefix>_<frame>/image.png`` and ``inverse_depth.npy``
(float32, NaN = no truth): the format of the evaluation scenes
(`spiritnet_tf.evaluation.depth.load_depth_scenes` reads it), and ``OUT/SOURCES.json``
records the video, its source and licence, the options and every pair's figures.
"""

import json
import os

import numpy as np

__all__ = ["mine_footage", "sign_of_parallax"]


def _resize(frame, side):
    import cv2

    h, w = frame.shape[:2]
    scale = side / max(h, w)
    if scale >= 1:
        return frame
    return cv2.resize(frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)


def sign_of_parallax(gamma, reference=None, *, min_rho=0.1):
    """+1 or -1: the sign that makes ``gamma`` (parallax, NaN = invalid) larger where
    things are near, by agreement of the row index and ``reference`` (an inverse depth of
    the same size, or None); 0 when they disagree or either is weaker than ``min_rho``
    (the row index alone: ``2 * min_rho``). Returns ``(sign, rho_row, rho_reference)``."""
    from spiritnet_tf.evaluation.depth import spearman

    valid = np.isfinite(gamma)
    rows = np.broadcast_to(np.arange(gamma.shape[0], dtype=np.float32)[:, None], gamma.shape)
    rho_row = spearman(rows, gamma, valid)
    if reference is None:
        return (int(np.sign(rho_row)) if abs(rho_row) >= 2 * min_rho else 0), rho_row, None
    rho_ref = spearman(np.asarray(reference, np.float32), gamma, valid)
    agree = np.sign(rho_row) == np.sign(rho_ref) and min(abs(rho_row), abs(rho_ref)) >= min_rho
    return (int(np.sign(rho_row)) if agree else 0), rho_row, rho_ref


def mine_footage(video, out, *, prefix, source, every=48, gap=4, side=448, min_valid=0.6,
                 min_flow_px=1.0, min_spread_px=1.0, min_sign_rho=0.1, exclude=(), reference=None,
                 limit=None, progress=True):
    """Mines ``video`` for pseudo-depth pairs into ``out`` (module docstring); returns the
    list of records of the kept pairs. ``source``: a dict recorded in SOURCES.json (package,
    version, licence). ``exclude``: (first, last) frame ranges never used. ``limit``: stop
    after this many frames of the video. Existing sample folders are left alone."""
    import imageio.v3 as iio
    from tqdm.auto import tqdm

    from spiritnet_tf.evaluation.depth_scenes import parallax_inverse_depth

    if not os.path.isfile(video):
        raise FileNotFoundError(f"no video {video}")
    if every <= gap:
        raise ValueError(f"every ({every}) must exceed gap ({gap}): pairs would overlap")
    os.makedirs(out, exist_ok=True)
    kept, tried, pending = [], 0, {}
    frames = iio.imiter(video)
    bar = tqdm(desc=f"mining {os.path.basename(video)}", unit="frame", disable=not progress)
    for index, frame in enumerate(frames):
        bar.update(1)
        if limit is not None and index >= limit:
            break
        first = index - gap
        if index % every == 0 and not any(a <= index + gap and index <= b for a, b in exclude):
            pending[index] = _resize(frame, side)
        if first not in pending:
            continue
        image, second = pending.pop(first), _resize(frame, side)
        tried += 1
        try:
            gamma, info = parallax_inverse_depth(image, second)
        except ValueError:  # too few consistent vectors: a cut or a blank frame
            continue
        if (info["valid_fraction"] < min_valid or info["median_flow_px"] < min_flow_px
                or info["parallax_spread_px"] < min_spread_px):
            continue
        ref = None if reference is None else reference(image)
        sign, rho_row, rho_ref = sign_of_parallax(gamma, ref, min_rho=min_sign_rho)
        if sign == 0:
            continue
        name = f"{prefix}_{first:06d}"
        folder = os.path.join(out, name)
        if not os.path.isdir(folder):
            os.makedirs(folder)
            iio.imwrite(os.path.join(folder, "image.png"), image)
            np.save(os.path.join(folder, "inverse_depth.npy"), (sign * gamma).astype(np.float32))
        kept.append({"name": name, "frames": [first, first + gap], "sign": sign,
                     "rho_row": round(float(rho_row), 3),
                     "rho_reference": None if rho_ref is None else round(float(rho_ref), 3),
                     **{k: round(v, 3) for k, v in info.items()}})
        bar.set_postfix(kept=len(kept), tried=tried)
    bar.close()
    record = {"video": os.path.basename(video), "source": source,
              "options": {"every": every, "gap": gap, "side": side, "min_valid": min_valid,
                          "min_flow_px": min_flow_px, "min_spread_px": min_spread_px, "min_sign_rho": min_sign_rho,
                          "exclude": [list(r) for r in exclude],
                          "reference": reference is not None},
              "pairs_tried": tried, "samples": kept}
    with open(os.path.join(out, "SOURCES.json"), "w") as f:
        json.dump(record, f, indent=1)
    return kept

