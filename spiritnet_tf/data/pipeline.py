"""tf.data pipeline: septuplets -> (inputs, targets) in the model's training format."""

import tensorflow as tf

__all__ = ["training_pipeline", "to_prediction_mode", "random_crop_flip", "flip_septuplet"]


def flip_septuplet(sample, horizontal, vertical):
    """Flips every frame, flow and depth map of a septuplet dict together.

    A horizontal flip mirrors W and negates dx; a vertical flip mirrors H and
    negates dy (docs/design.md §4), so backward flows stay correct. ``horizontal`` and
    ``vertical`` are Python or scalar-tensor booleans. Other keys pass through.
    """
    out = dict(sample)
    sign = tf.stack([
        tf.where(horizontal, -1.0, 1.0),
        tf.where(vertical, -1.0, 1.0),
    ])
    for key in ("frames", "flows", "depth"):
        if key not in sample:
            continue
        x = sample[key]
        x = tf.cond(tf.convert_to_tensor(horizontal), lambda x=x: tf.reverse(x, [2]), lambda x=x: x)
        x = tf.cond(tf.convert_to_tensor(vertical), lambda x=x: tf.reverse(x, [1]), lambda x=x: x)
        out[key] = x * tf.cast(sign, x.dtype) if key == "flows" else x
    return out


def random_crop_flip(sample, seed, crop_size=None, flip=True):
    """Random crop (same window for all frames) and random flips of one septuplet.

    ``seed`` is a stateless seed (int tensor [2]); ``crop_size`` (H, W) or None.
    Flows are not changed by cropping (they are displacements); flips correct their sign.
    With a crop, the outputs have static H and W (sources may have unknown sizes).
    """
    seeds = tf.random.experimental.stateless_split(seed, 3)
    out = dict(sample)
    if crop_size is not None:
        ch, cw = crop_size
        shape = tf.shape(sample["frames"])
        h, w = shape[1], shape[2]
        check = tf.debugging.assert_greater_equal(
            tf.stack([h, w]), tf.constant([ch, cw]),
            message=f"septuplet is smaller than the crop size {ch}x{cw}",
        )
        # The crop offsets depend on the check: otherwise the random op may run first and
        # fail with TensorFlow's own "Need minval < maxval" (seen in a full-suite run).
        with tf.control_dependencies([check]):
            h, w = tf.identity(h), tf.identity(w)
        y = tf.random.stateless_uniform([], seeds[0], 0, h - ch + 1, tf.int32)
        x = tf.random.stateless_uniform([], seeds[2], 0, w - cw + 1, tf.int32)
        for key in ("frames", "flows", "depth"):
            if key in sample:
                crop = sample[key][:, y:y + ch, x:x + cw]
                out[key] = tf.ensure_shape(crop, [sample[key].shape[0], ch, cw,
                                                  sample[key].shape[-1]])
    if flip:
        coins = tf.random.stateless_uniform([2], seeds[1]) < 0.5
        out = flip_septuplet(out, coins[0], coins[1])
    return out


def to_prediction_mode(sample, history=False):
    """Septuplet dict -> (inputs, targets) for training in prediction mode (docs/design.md §4).

    state0 = (im2, F_{2->1}); targets are im3..im7 and F_{3->2}..F_{7->6}. With
    ``history`` (a model with ``flow_history``) everything starts one frame later so that
    the flow before flow0 is known: state0 = (im3, F_{3->2}), ``flow_before`` = F_{2->1},
    targets im4..im7 and F_{4->3}..F_{7->6}.
    Works on one septuplet (no batch axis); see :func:`training_pipeline` for the contract.
    """
    first = 2 if history else 1  # index of state0's frame
    frames = tf.image.convert_image_dtype(sample["frames"], tf.float32)  # uint8 -> [0, 1]
    flows = tf.cast(sample["flows"], tf.float32)
    inputs = {"image": frames[first], "flow0": flows[first - 1]}
    if history:
        inputs["flow_before"] = flows[first - 2]
    targets = {"frames": frames[first + 1:], "flows": flows[first:]}
    if "depth" in sample:
        depth = tf.cast(sample["depth"], tf.float32)
        inputs["depth"] = depth[first]
        targets["depth"] = depth[first + 1:]
    return inputs, targets


def training_pipeline(septuplets, batch_size, crop_size=(256, 448), flip=True, shuffle=256,
                      repeat=True, seed=0, deterministic=False, drop_remainder=True,
                      history=False):
    """Builds the training input pipeline in the model's format.

    Args:
      septuplets: tf.data.Dataset of septuplet dicts: ``frames`` uint8 [7, H, W, 3]
        (im1..im7), ``flows`` float [6, H, W, 2] (F_{k+1->k}, backward, pixels),
        optional ``depth`` float32 [7, H, W, 1] (z, docs/design.md §2); other keys are
        ignored. As made by :func:`spiritnet_tf.data.load_vimeo`,
        :func:`~spiritnet_tf.data.records.read_septuplets` or
        :func:`~spiritnet_tf.data.synthetic.synthetic_dataset`.
      batch_size: samples per batch B.
      crop_size: (H, W) of the random crop, or None for no crop (all samples
        must then have one size to be batched).
      flip: random horizontal and vertical flips (flow signs corrected).
      shuffle: shuffle buffer size (0 or None: no shuffling).
      repeat: repeat forever (training) or one pass (evaluation).
      seed: seeds the shuffle and all augmentation (stateless random ops keyed by
        the element's position), so a run is reproducible.
      deterministic: keep element order fixed despite parallel maps (slower);
        with it, the same seed gives the same batches every time.
      drop_remainder: drop a last partial batch.
      history: start one frame later and add ``inputs["flow_before"]`` = F_{2->1}
        (:func:`to_prediction_mode`): 4 targets, im4..im7.

    Returns:
      tf.data.Dataset of ``(inputs, targets)``, prediction mode (state0 = (im2, F_{2->1})):

      * ``inputs["image"]``: float32 [B, H, W, 3] in [0, 1], frame im2.
      * ``inputs["flow0"]``: float32 [B, H, W, 2], F_{2->1}.
      * ``inputs["depth"]``: float32 [B, H, W, 1], z of im2 — only when the source has depth.
      * ``targets["frames"]``: float32 [B, 5, H, W, 3] in [0, 1], im3..im7.
      * ``targets["flows"]``: float32 [B, 5, H, W, 2], F_{3->2}..F_{7->6}.
      * ``targets["depth"]``: float32 [B, 5, H, W, 1], z of im3..im7 — only with depth.

      Flows are backward (F_{t+1}(x) points from x in frame t+1 to where that
      content was in frame t), in pixels, channels (dx, dy).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    keys = [k for k in ("frames", "flows", "depth") if k in septuplets.element_spec]
    if "frames" not in keys or "flows" not in keys:
        raise ValueError(
            f"septuplets need 'frames' and 'flows', got {sorted(septuplets.element_spec)}"
        )
    ds = septuplets.map(lambda s: {k: s[k] for k in keys})
    if shuffle:
        ds = ds.shuffle(shuffle, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.enumerate()

    def augment(index, sample):
        element_seed = tf.stack([tf.cast(seed, tf.int64), index])
        sample = random_crop_flip(sample, element_seed, crop_size, flip)
        return to_prediction_mode(sample, history)

    ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=deterministic)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    options = tf.data.Options()
    options.deterministic = deterministic
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)
