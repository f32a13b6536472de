"""Baseline predictors of docs/design.md §5, with the model's output contract (§3.9).

Every predictor has one signature::

    predict(image, flow0, num_frames, *, teacher_flows=None, flow_before=None)
        -> {"frames": [B, T, H, W, 3], "flows": [B, T, H, W, 2]}

``image`` [B, H, W, 3] float in [0, 1] is the first frame I_0; ``flow0`` [B, H, W, 2]
is the initial backward flow (the teacher's F_{1->0} in prediction mode, the DAFR draw
in generation mode); ``num_frames`` = T generated frames (the input is not repeated);
``teacher_flows`` [B, >=T, H, W, 2] are the teacher's backward flows F_{t->t-1}, used
only by the oracle; ``flow_before`` [B, H, W, 2], the flow before flow0 (prediction
mode with history), is read by models with ``flow_history`` and by no baseline.
Constant velocity makes frame I_t from I_{t-1} (I_0 = the input) and flow F_t:
I_t(x) = I_{t-1}(x + F_t(x)), bilinearly; the oracle composes the teacher's flows back
to the input and warps the input once per frame (fewer resamplings, so it stays an upper
bound for models that resample the input).

To evaluate the model with the same code, wrap it into this signature, e.g.
``lambda image, flow0, T, teacher_flows=None: model({"image": image, "flow0": flow0},
num_frames=T)``.
"""

import tensorflow as tf

from spiritnet_tf.evaluation.metrics import bilinear_warp

__all__ = ["copy_frame", "constant_velocity", "oracle", "warp_sequence", "BASELINES"]


def _check(image, flow0, num_frames):
    image = tf.convert_to_tensor(image, tf.float32)
    flow0 = tf.convert_to_tensor(flow0, tf.float32)
    if image.shape.rank != 4 or image.shape[-1] != 3:
        raise ValueError(f"image must be [B, H, W, 3], got shape {image.shape}")
    if flow0.shape.rank != 4 or flow0.shape[-1] != 2:
        raise ValueError(f"flow0 must be [B, H, W, 2], got shape {flow0.shape}")
    if not isinstance(num_frames, int) or num_frames < 1:
        raise ValueError(f"num_frames must be a positive int, got {num_frames!r}")
    return image, flow0


def warp_sequence(image, flows):
    """Warps the previous frame with each flow in turn: [B,H,W,3], [B,T,H,W,2] -> [B,T,H,W,3]."""
    frames, frame = [], image
    for t in range(flows.shape[1]):
        frame = bilinear_warp(frame, flows[:, t])
        frames.append(frame)
    return tf.stack(frames, axis=1)


def copy_frame(image, flow0, num_frames, *, teacher_flows=None, flow_before=None):
    """Every frame is the input and every flow is zero (the frozen picture)."""
    image, flow0 = _check(image, flow0, num_frames)
    frames = tf.repeat(image[:, None], num_frames, axis=1)
    return {"frames": frames, "flows": tf.zeros_like(frames[..., :2])}


def constant_velocity(image, flow0, num_frames, *, teacher_flows=None, flow_before=None):
    """Re-applies flow0 unchanged every step: bilinear warp of the previous frame, no DAFI."""
    image, flow0 = _check(image, flow0, num_frames)
    flows = tf.repeat(flow0[:, None], num_frames, axis=1)
    return {"frames": warp_sequence(image, flows), "flows": flows}


def oracle(image, flow0, num_frames, *, teacher_flows=None, flow_before=None):
    """The teacher's flows, composed back to the input: one bilinear warp of the input per step.

    ``G_t = F_t + G_{t-1}(x + F_t(x))`` (``G_0 = 0``), frame t = input warped by ``G_t``.
    Resampling the input once (not the previous frame again) keeps the oracle an upper
    bound for models that resample the input (``resample_from="input"``).
    """
    image, flow0 = _check(image, flow0, num_frames)
    if teacher_flows is None:
        raise ValueError("the oracle baseline needs teacher_flows [B, T, H, W, 2]")
    teacher_flows = tf.convert_to_tensor(teacher_flows, tf.float32)
    if teacher_flows.shape.rank != 5 or teacher_flows.shape[1] < num_frames:
        raise ValueError(
            f"teacher_flows must be [B, >={num_frames}, H, W, 2], got shape {teacher_flows.shape}"
        )
    flows = teacher_flows[:, :num_frames]
    frames, composed = [], tf.zeros_like(flow0)
    for t in range(num_frames):
        composed = flows[:, t] + bilinear_warp(composed, flows[:, t])
        frames.append(bilinear_warp(image, composed))
    return {"frames": tf.stack(frames, axis=1), "flows": flows}


BASELINES = {
    "copy-frame": copy_frame,
    "constant-velocity": constant_velocity,
    "oracle": oracle,
}
