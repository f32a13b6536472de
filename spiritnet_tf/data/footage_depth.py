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

The parallax alone does not fix the sign (which side of the fitted plane is near).
``sign="occlusion"`` (the default) takes it from occlusion, `occlusion_sign`: near surfaces
cover far ones. A pixel of frame ``i`` that fails the forward-backward check is followed
with the motion it had from frame ``i - gap`` (constant velocity; the two frames of the
pair alone do not fix it) to where it lands in ``i + gap``; the backward flow there leads
to the pixel that covers it, whose parallax should be the larger; votes over all such
pixels (textured, moving steadily, differing by at least half a pixel) decide +1 / -1 when
there are enough of them and they mostly agree, else the pair is dropped. So a pair needs
an occluding edge across the motion: a plain ground plane, or a character tracked against
a blank sky, is dropped. ``sign="agreement"`` (the earlier rule, `sign_of_parallax`) keeps a
pair when two guesses agree: the row index ("lower is nearer") and, when ``reference`` is
given, a depth net's prediction (a callable image -> inverse depth), each with a Spearman
correlation of at least ``min_sign_rho`` in absolute value (without ``reference``: the row
index alone, at twice that). Both rules' figures are recorded whichever decides (the row
and reference correlations only for pairs the occlusion rule kept). The sign decides only
the direction of the order; the shape of the depth (which pixels group together, where the
edges are) is the parallax's own.

Each kept pair is written as ``OUT/<prefix>_<frame>/image.png`` and ``inverse_depth.npy``
(float32, NaN = no truth): the format of the evaluation scenes
(`spiritnet_tf.evaluation.depth.load_depth_scenes` reads it), and ``OUT/SOURCES.json``
records the video, its source and licence, the options, how many pairs were tried and
why the others were dropped, and every kept pair's figures.
"""

import json
import os

import numpy as np

__all__ = ["mine_footage", "occlusion_sign", "sign_of_parallax"]


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


def occlusion_sign(first, second, previous=None, *, parallax=None, min_votes=100, min_share=0.7,
                   min_diff=0.5, min_texture=3.0, steady_px=2.0, radius=6, max_pixels=20000, seed=0):
    """The sign that makes the parallax of ``first`` (towards ``second``) larger where things
    are near, from occlusion: near surfaces cover far ones.

    A pixel q of ``first`` that fails the forward-backward check (and is not leaving the
    frame) is a surface about to be covered. Given its motion v, it lands on q' = q + v in
    ``second``, where the occluder now is; the backward flow at q' leads to the occluder's
    pixel q'' in ``first``. The vote is gamma(q'') - gamma(far), gamma(far) the median
    parallax of the valid pixels within ``radius`` of q that move like q (the covered
    surface); a vote counts when it is at least ``min_diff`` px. q's motion v: with
    ``previous`` (the frame as far before ``first`` as ``second`` is after it) the motion
    q had from ``previous`` to ``first`` (constant velocity; q is still visible there), which
    the geometry fixes; without it, the forward flow at q, which the two frames alone do
    not fix (DIS fills it from q's appearance), so the rule is weaker.

    Guards: q must be textured (mean gradient of ``first`` around it at least
    ``min_texture`` grey levels per pixel: a blank sky fails the check without any
    occlusion); with ``previous``, the covered surface and the occluder must each move now
    as they moved before, within ``steady_px`` + 25 % (about constant velocity: a waving arm or a
    walking leg often does not); ``steady_px=None`` leaves this out.

    ``parallax``: the ``(gamma, info, flows)`` of
    ``parallax_inverse_depth(first, second, return_flows=True)`` if already computed.
    Returns ``(sign, figures)``: +1 / -1 when at least ``min_votes`` votes count and at least
    ``min_share`` of them agree, else 0; ``figures``: ``occluded`` (pixels followed),
    ``votes``, ``share`` (of votes for +1), ``median_diff`` (px) and ``frames`` (2 or 3)."""
    import cv2

    from spiritnet_tf.evaluation.depth_scenes import _gray, consistent_flow, parallax_inverse_depth

    if parallax is None:
        parallax = parallax_inverse_depth(first, second, return_flows=True)
    gamma, _, flows = parallax
    fwd, bwd, valid = flows["forward"], flows["backward"], flows["valid"]
    h, w = gamma.shape
    if previous is not None:
        back, _, moves = consistent_flow(first, previous)
        motion = -back  # constant velocity: the motion first -> second
    else:
        motion, moves = fwd, np.ones_like(valid)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    # the covered candidates: failing the check, not leaving the frame, with a motion
    land_x, land_y = xs + fwd[..., 0], ys + fwd[..., 1]
    inside = (land_x >= 0) & (land_x <= w - 1) & (land_y >= 0) & (land_y <= h - 1)
    grey = _gray(first).astype(np.float32)
    grad = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)) / 4
    textured = cv2.blur(grad, (7, 7)) >= min_texture
    steady = np.ones_like(valid) if steady_px is None else np.linalg.norm(fwd - motion, axis=-1) < steady_px + 0.25 * np.linalg.norm(motion, axis=-1)
    qy, qx = np.nonzero(~valid & inside & moves & textured)
    if len(qy) > max_pixels:
        pick = np.random.default_rng(seed).choice(len(qy), max_pixels, replace=False)
        qy, qx = qy[pick], qx[pick]
    figures = {"frames": 3 if previous is not None else 2, "occluded": int(len(qy)), "votes": 0,
               "share": None, "median_diff": None}
    if len(qy) == 0:
        return 0, figures
    v = motion[qy, qx]
    px, py = qx + v[:, 0], qy + v[:, 1]  # q'
    ok = (px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1)
    b = cv2.remap(bwd, px.astype(np.float32)[:, None], py.astype(np.float32)[:, None],
                  cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[:, 0]
    ox, oy = np.rint(px + b[:, 0]).astype(int), np.rint(py + b[:, 1]).astype(int)  # q''
    ok &= (ox >= 0) & (ox < w) & (oy >= 0) & (oy < h)
    ox, oy = np.clip(ox, 0, w - 1), np.clip(oy, 0, h - 1)
    tol = 1.0 + 0.1 * np.linalg.norm(v, axis=-1)
    occluder = gamma[oy, ox]
    # the occluder is valid, moved differently from q (another surface)
    ok &= valid[oy, ox] & np.isfinite(occluder) & moves[oy, ox] & steady[oy, ox]
    ok &= np.linalg.norm(motion[oy, ox] - v, axis=-1) > tol
    # the covered surface: valid neighbours of q that move like q
    r = np.arange(-radius, radius + 1, 2)
    dy, dx = [a.ravel() for a in np.meshgrid(r, r, indexing="ij")]
    ny = np.clip(qy[:, None] + dy[None], 0, h - 1)
    nx = np.clip(qx[:, None] + dx[None], 0, w - 1)
    same = (valid[ny, nx] & moves[ny, nx] & steady[ny, nx] & np.isfinite(gamma[ny, nx])
            & (np.linalg.norm(motion[ny, nx] - v[:, None], axis=-1) < tol[:, None]))
    ok &= same.sum(1) >= 3
    far = np.nanmedian(np.where(same, gamma[ny, nx], np.nan)[ok], axis=1) if ok.any() else []
    diff = occluder[ok] - far
    diff = diff[np.abs(diff) >= min_diff]
    figures["votes"] = int(len(diff))
    if len(diff) == 0:
        return 0, figures
    share = float(np.mean(diff > 0))
    figures["share"], figures["median_diff"] = round(share, 3), round(float(np.median(diff)), 3)
    if len(diff) < min_votes:
        return 0, figures
    sign = 1 if share >= min_share else -1 if share <= 1 - min_share else 0
    return sign, figures


def mine_footage(video, out, *, prefix, source, every=48, gap=4, side=448, min_valid=0.6,
                 min_flow_px=1.0, min_spread_px=1.0, sign="occlusion", min_sign_rho=0.1, exclude=(),
                 reference=None, occlusion=None, limit=None, progress=True):
    """Mines ``video`` for pseudo-depth pairs into ``out`` (module docstring); returns the
    list of records of the kept pairs. ``source``: a dict recorded in SOURCES.json (package,
    version, licence). ``sign``: ``"occlusion"`` (`occlusion_sign` on the frames
    ``i - gap, i, i + gap``; undecided pairs are dropped) or ``"agreement"`` (`sign_of_parallax`:
    the row index and ``reference`` agree). Both rules' figures are recorded whichever decides.
    ``occlusion``: keyword options for `occlusion_sign`. ``exclude``: (first, last) frame
    ranges never used. ``limit``: stop after this many frames of the video. Existing sample
    folders are left alone (a rerun resumes), but ``out`` mined before with other options
    raises ValueError."""
    import imageio.v3 as iio
    from tqdm.auto import tqdm

    from spiritnet_tf.evaluation.depth_scenes import parallax_inverse_depth

    if sign not in ("occlusion", "agreement"):
        raise ValueError(f"sign must be 'occlusion' or 'agreement', not {sign!r}")
    if not os.path.isfile(video):
        raise FileNotFoundError(f"no video {video}")
    if every <= gap:
        raise ValueError(f"every ({every}) must exceed gap ({gap}): pairs would overlap")
    occ = sign == "occlusion"
    before = gap if occ else 0  # the occlusion sign also needs the frame i - gap
    options = {"every": every, "gap": gap, "side": side, "min_valid": min_valid,
               "min_flow_px": min_flow_px, "min_spread_px": min_spread_px, "sign": sign,
               "min_sign_rho": min_sign_rho, "occlusion": occlusion or {},
               "exclude": [list(r) for r in exclude], "reference": reference is not None}
    # Sample folders already there are kept (a rerun resumes); samples of other options
    # (another sign rule above all) would be mixed in silently, since every folder counts.
    sources = os.path.join(out, "SOURCES.json")
    if os.path.isfile(sources):
        with open(sources) as f:
            earlier = json.load(f).get("options", {})
        changed = sorted(k for k in options if earlier.get(k) != options[k])
        if changed:
            raise ValueError(f"{out} holds samples mined with other options ({', '.join(changed)}: "
                             f"{', '.join(f'{k}={earlier.get(k)!r}' for k in changed)}); "
                             "mine into a new folder or remove it first")
    os.makedirs(out, exist_ok=True)
    kept, tried, pending, previous = [], 0, {}, {}
    dropped = {"flow": 0, "filters": 0, "sign": 0}

    def usable(start):
        return start >= before and not any(a <= start + gap and start - before <= b for a, b in exclude)

    frames = iio.imiter(video)
    bar = tqdm(desc=f"mining {os.path.basename(video)}", unit="frame", disable=not progress)
    for index, frame in enumerate(frames):
        bar.update(1)
        if limit is not None and index >= limit:
            break
        first = index - gap
        if occ and (index + gap) % every == 0 and usable(index + gap):
            previous[index + gap] = _resize(frame, side)
        if index % every == 0 and usable(index) and (not occ or index in previous):
            pending[index] = _resize(frame, side)
        if first not in pending:
            continue
        image, second = pending.pop(first), _resize(frame, side)
        before_frame = previous.pop(first, None)
        tried += 1
        try:
            parallax = parallax_inverse_depth(image, second, return_flows=True)
        except ValueError:  # too few consistent vectors: a cut or a blank frame
            dropped["flow"] += 1
            continue
        gamma, info, _ = parallax
        if (info["valid_fraction"] < min_valid or info["median_flow_px"] < min_flow_px
                or info["parallax_spread_px"] < min_spread_px):
            dropped["filters"] += 1
            continue
        figures = None
        if occ:
            chosen, figures = occlusion_sign(image, second, before_frame, parallax=parallax,
                                             **(occlusion or {}))
            if chosen == 0:
                dropped["sign"] += 1
                continue
        ref = None if reference is None else reference(image)
        agreement, rho_row, rho_ref = sign_of_parallax(gamma, ref, min_rho=min_sign_rho)
        if not occ:
            chosen = agreement
            if chosen == 0:
                dropped["sign"] += 1
                continue
        name = f"{prefix}_{first:06d}"
        folder = os.path.join(out, name)
        if not os.path.isdir(folder):
            os.makedirs(folder)
            iio.imwrite(os.path.join(folder, "image.png"), image)
            np.save(os.path.join(folder, "inverse_depth.npy"), (chosen * gamma).astype(np.float32))
        kept.append({"name": name, "frames": [first, first + gap], "sign": chosen, "sign_rule": sign,
                     "occlusion": figures, "agreement_sign": agreement,
                     "rho_row": round(float(rho_row), 3),
                     "rho_reference": None if rho_ref is None else round(float(rho_ref), 3),
                     **{k: round(v, 3) for k, v in info.items()}})
        bar.set_postfix(kept=len(kept), tried=tried)
    bar.close()
    record = {"video": os.path.basename(video), "source": source, "options": options,
              "pairs_tried": tried, "dropped": dropped, "samples": kept}
    with open(os.path.join(out, "SOURCES.json"), "w") as f:
        json.dump(record, f, indent=1)
    return kept
