"""Figures of a generated animation's motion: does it follow depth, is it more than a pan,
does it show content from outside the photo, how large is it.

For an `spiritnet_tf.Animation` (flows F_t and inverse depth z at the working size):

* ``spearman_f1_z`` / ``spearman_flast_z``: Spearman rank correlation of the speed |F_1|
  (first step) and |F_T| (last step) with z over the pixels: near content should move
  more (1 = speed ranks exactly like nearness).
* ``p90_p10_f1``: 90th over 10th percentile of |F_1|: 1 for a uniform pan.
* ``median_motion_px``: median over the pixels of |G_T| * motion_scale, the displacement
  from the first to the last frame (composed flow) in working-size pixels.
* ``outside_share``: the share of the last frame's pixels whose content is not in the
  photo, found by OpenCV DIS optical flow from the last output frame to the photo
  resized to the output size: pixels whose match lies outside it (an estimate: DIS also
  errs near the borders, more so when the frame is zoomed).
* ``sample_outside_share``: the same share counted exactly, from the positions the
  last frame samples the photo at (`spiritnet_tf.fullres.sample_flow`).

`loop_steps` gives the steps of a loop as it is played (frame t-1 to frame t, then the
closing step from the last frame back to the first): mean absolute difference of grey
levels (0-255, the luma of `spiritnet_tf.evaluation.metrics`); `closing_step_ratio` is
the closing step over the mean of the other steps (1 = the loop closes like any step).

Used by scripts/motion_figures.py (docs/training.md), the quality gate
(`spiritnet_tf.evaluation.gate`) and the tests.
"""

import numpy as np

from spiritnet_tf.evaluation.depth import spearman  # the one rank correlation (re-exported)

__all__ = ["spearman", "outside_share", "motion_figures", "loop_steps", "closing_step_ratio"]


def outside_share(frame, photo, teacher=None):
    """Share of ``frame``'s pixels (uint8 [H, W, 3]) whose content DIS finds outside
    ``photo`` (uint8 [H', W', 3], resized to H x W with area averaging)."""
    import cv2

    from spiritnet_tf.data.teachers import get_teacher

    frame, photo = np.asarray(frame), np.asarray(photo)
    height, width = frame.shape[:2]
    if photo.shape[:2] != (height, width):
        photo = cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA)
    flow = get_teacher(teacher or "dis").backward_flow(photo, frame)  # frame(x) ~ photo(x + f)
    x = flow[..., 0] + np.arange(width, dtype=np.float32)[None, :]
    y = flow[..., 1] + np.arange(height, dtype=np.float32)[:, None]
    outside = (x < 0) | (x > width - 1) | (y < 0) | (y > height - 1)
    return float(outside.mean())


def motion_figures(anim, measure_outside=True):
    """The module docstring's figures of one `spiritnet_tf.Animation`, as a dict."""
    from spiritnet_tf.ops.flow import compose_flows

    flows = np.asarray(anim.flows, np.float32)
    z = np.asarray(anim.depth, np.float32)[..., 0]
    speed_first = np.linalg.norm(flows[0], axis=-1)
    speed_last = np.linalg.norm(flows[-1], axis=-1)
    composed = compose_flows(flows[None]).numpy()[0, -1]
    p10, p90 = np.percentile(speed_first, [10, 90])
    figures = {
        "spearman_f1_z": spearman(speed_first, z),
        "spearman_flast_z": spearman(speed_last, z),
        "p90_p10_f1": float(p90 / p10) if p10 > 0 else float("inf"),
        "median_motion_px": float(np.median(np.linalg.norm(composed, axis=-1)) * anim.motion_scale),
        "zoom": anim.zoom,
        "motion_scale": anim.motion_scale,
    }
    import tensorflow as tf

    from spiritnet_tf import fullres

    height, width = anim.size
    flow = fullres.sample_flow(tf.constant(composed[None]), anim.size, tf.constant([anim.zoom]),
                               tf.constant([anim.motion_scale])).numpy()[0]
    x = flow[..., 0] + np.arange(width, dtype=np.float32)[None, :]
    y = flow[..., 1] + np.arange(height, dtype=np.float32)[:, None]
    figures["sample_outside_share"] = float(((x < 0) | (x > width - 1) | (y < 0) | (y > height - 1)).mean())
    if measure_outside:
        image = np.round(np.clip(anim.image, 0, 1) * 255).astype(np.uint8)
        figures["outside_share"] = outside_share(anim.frame(anim.num_frames), image)
    return figures


def loop_steps(frames):
    """(steps, closing) of frames (uint8 [N, H, W, 3], in the order played, N >= 2):
    steps[t - 1] = mean |grey(frame t) - grey(frame t-1)| for t = 1..N-1, closing =
    mean |grey(frame 0) - grey(frame N-1)|, grey levels 0-255."""
    from spiritnet_tf.evaluation.metrics import _LUMA

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) < 2:
        raise ValueError(f"loop_steps needs frames [N >= 2, H, W, 3], got shape {frames.shape}")
    grey = frames.astype(np.float32) @ np.asarray(_LUMA, np.float32)
    steps = np.abs(np.diff(grey, axis=0)).mean(axis=(1, 2))
    closing = float(np.abs(grey[0] - grey[-1]).mean())
    return [float(s) for s in steps], closing


def closing_step_ratio(frames):
    """`loop_steps`' closing step over the mean step (0 when nothing moves at all, inf when
    only the closing step moves)."""
    steps, closing = loop_steps(frames)
    mean = float(np.mean(steps))
    if mean > 0:
        return closing / mean
    return 0.0 if closing == 0 else float("inf")
