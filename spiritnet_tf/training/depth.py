"""Depth pre-training: the depth net alone on synthetic scenes, before the full model.

Trained end to end from scratch with the rest of SpiritNet, the small preset's depth
net did not learn depth (docs/training.md: its inverse depth collapsed, or did not
generalise to photos). Trained alone on the synthetic scenes (which carry true depth)
it does: with `spiritnet_tf.losses.relative_depth` on the net's relative inverse depth
(``loss: "relative"``, the default, for the "percentile" depth mapping) or with the
scale-invariant loss on its raw log depth (``loss: "scale_invariant_log"``, how the
bundled weights' depth net was trained, for the "max" mapping). A config's
``depth_pretraining`` block runs this stage first; the full model then starts from
these weights, normally with ``model.pretrained_depth: true`` (batch norm frozen,
the paper's tiny depth learning rate), the same set-up as converted MegaDepth weights
given by ``depth_weights``.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from spiritnet_tf.config import CheckedConfig, ConfigError, above, at_least, checked, one_of, optional, rule

__all__ = ["DepthPretraining", "pretrain_depth", "DEPTH_LOSSES"]

DEPTH_LOSSES = ("relative", "scale_invariant_log")
DEPTH_SCENES = ("cues", "layers", "mixed")
_SIDE = rule("a multiple of 32 (>= 32)", lambda v: v >= 32 and v % 32 == 0)  # scene sides


@dataclasses.dataclass
class DepthPretraining(CheckedConfig):
    """Options of the depth pre-training stage (a config's ``depth_pretraining`` block).

    Attributes:
      steps: optimizer steps.
      batch_size: images per step (single frames of the septuplets).
      learning_rate, clipnorm: Adam rate and global gradient-norm clip.
      count, height, width, seed: the synthetic scenes (every frame of each is a sample).
      flip, color_jitter: random horizontal flips; random brightness, contrast and
        saturation (the scenes' colours are otherwise a narrow family).
      scenes: "cues" (`spiritnet_tf.data.synthetic.generate_depth_scene`: ground plane,
        horizon, haze, defocus, objects on the ground), "layers" (the flat parallax layers
        of the septuplet generator, how the bundled weights' depth net was trained) or
        "mixed" (alternating).
      textures: folder of photographic textures for "cues" (`configs/depth_textures.sh`
        builds data/textures; relative to the config file like other paths), or None for
        procedural textures only.
      loss: "relative" (`spiritnet_tf.losses.relative_depth` on ``-output``; pair with
        the model's ``depth_mapping: "percentile"``) or "scale_invariant_log"
        (`spiritnet_tf.losses.scale_invariant_log_depth`; pair with "max").
      footage: folder of pseudo-depth samples from footage (the depth-scene format:
        ``<sample>/image.png`` and ``inverse_depth.npy``, NaN = no truth;
        `spiritnet_tf.data.footage_depth`, ``configs/depth_footage_data.sh``), mixed into
        the scenes at ``footage_fraction`` of the samples; relative to the config file
        like ``textures``. Needs ``loss: "relative"`` (the samples' depth is relative).
      footage_fraction: the share of footage samples when ``footage`` is given.
      edge_weight: weight of `spiritnet_tf.losses.edge_following` (the prediction's
        squared correlation with the photo's gradient magnitude, on the pixels with truth
        and on the ``photos``) added to the "relative" loss; 0 (the default) leaves it out.
      photos: folder of real photos without depth (`PHOTO_EXTENSIONS`; `photo_sample`), mixed in
        at ``photos_fraction`` of the samples: only the edge term sees them (their target
        is -1, which the depth loss ignores), so that the net learns not to follow real
        photos' edges, not only the training scenes'. Needs ``edge_weight`` > 0; relative
        to the config file like ``textures``.
      photos_fraction: the share of those photos when ``photos`` is given.
    """

    steps: int = checked(500, at_least(1, integer=True))
    batch_size: int = checked(16, at_least(1, integer=True))
    learning_rate: float = checked(1e-3, above(0))
    clipnorm: float = checked(1.0, optional(above(0)))
    count: int = checked(128, at_least(1, integer=True))
    height: int = checked(128, _SIDE)
    width: int = checked(160, _SIDE)
    seed: int = 7
    flip: bool = True
    color_jitter: bool = True
    loss: str = checked("relative", one_of(DEPTH_LOSSES))
    scenes: str = checked("cues", one_of(DEPTH_SCENES))
    textures: str = None
    footage: str = None
    footage_fraction: float = checked(0.5, rule("in (0, 1]", lambda v: 0 < v <= 1))
    edge_weight: float = checked(0.0, at_least(0))
    photos: str = None
    photos_fraction: float = checked(0.25, rule("in (0, 1)", lambda v: 0 < v < 1))

    def validate(self, where=None):
        super().validate(where)
        where = where or type(self).__name__
        if self.footage and self.loss != "relative":
            raise ConfigError(f"{where}.footage needs loss \"relative\" (footage depth is known "
                              f"up to a scale and a shift), got {self.loss!r}", where=where)
        if self.edge_weight and self.loss != "relative":
            raise ConfigError(f"{where}.edge_weight needs loss \"relative\", got {self.loss!r}",
                              where=where)
        if self.photos and not self.edge_weight:
            raise ConfigError(f"{where}.photos needs edge_weight > 0 (only the edge term "
                              "learns from photos without depth)", where=where)
        if self.footage and self.photos and self.footage_fraction + self.photos_fraction >= 1:
            raise ConfigError(f"{where}: footage_fraction + photos_fraction must stay below 1 "
                              f"(the scenes take the rest), got {self.footage_fraction} + "
                              f"{self.photos_fraction}", where=where)
        return self


def _cue_scenes(options):
    """(image, depth) pairs of `generate_depth_scene`, ``options.count`` of them, rendered
    on the fly from the seeds ``[seed, i]``."""
    from spiritnet_tf.data.synthetic import generate_depth_scene
    from spiritnet_tf.data.textures import load_textures

    textures = load_textures(options.textures) if options.textures else None
    h, w = options.height, options.width

    def render(index):
        scene = generate_depth_scene([options.seed, int(index)], h, w, textures=textures)
        return scene["image"], scene["depth"]

    def element(index):
        image, depth = tf.numpy_function(render, [index], [tf.uint8, tf.float32], stateful=False)
        return (tf.image.convert_image_dtype(tf.ensure_shape(image, [h, w, 3]), tf.float32),
                tf.ensure_shape(depth, [h, w, 1]))

    return tf.data.Dataset.range(options.count).map(element, num_parallel_calls=tf.data.AUTOTUNE)


def _random_crop(shape, height, width, rng):
    """The (rows, columns) slices of a random crop of an image of ``shape`` with the aspect
    ratio of ``height x width`` and 60-100 % of the largest such crop's side."""
    h, w = shape[:2]
    side = min(h / height, w / width) * rng.uniform(0.6, 1.0)
    ch, cw = max(1, int(round(height * side))), max(1, int(round(width * side)))
    y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    return slice(y, y + ch), slice(x, x + cw)


def photo_sample(image, height, width, rng):
    """A random crop of a real photo without depth (`_random_crop`, as `footage_sample`)
    resized to ``height x width``: (image [h, w, 3] float32, target [h, w, 1] of -1, the
    mark of "no truth, but count it in the edge term", `spiritnet_tf.losses.edge_following`)."""
    import cv2

    crop = image[_random_crop(image.shape, height, width, rng)].astype(np.float32)
    crop = cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA)
    return crop, np.full((height, width, 1), -1.0, np.float32)


def _photo_samples(options):
    """(image, target) pairs cut from the photos of ``options.photos`` (`photo_sample`),
    drawn forever from the seed ``[seed, 2]``."""
    import glob
    import os

    from spiritnet_tf.io.images import PHOTO_EXTENSIONS, load_image

    paths = sorted(p for p in glob.glob(os.path.join(options.photos, "*"))
                   if p.lower().endswith(PHOTO_EXTENSIONS))
    if not paths:
        raise FileNotFoundError(f"depth pre-training photos: no photo file "
                                f"({', '.join(PHOTO_EXTENSIONS)}) in {options.photos}")
    photos = [load_image(p) for p in paths]
    h, w = options.height, options.width

    def draw(rng):
        while True:
            yield photo_sample(photos[rng.integers(len(photos))], h, w, rng)

    return tf.data.Dataset.from_generator(
        lambda: draw(np.random.default_rng([options.seed, 2])),
        output_signature=(tf.TensorSpec([h, w, 3], tf.float32), tf.TensorSpec([h, w, 1], tf.float32)))


def footage_sample(image, truth, height, width, rng):
    """A random crop of a footage sample resized to ``height x width``: the crop has the
    output's aspect ratio and 60-100 % of the largest such crop's side, at a random place.
    ``image`` [H, W, 3] float in [0, 1], ``truth`` [H, W] relative inverse depth (NaN = no
    truth). Returns (image [h, w, 3] float32, target [h, w, 1] float32): the truth shifted
    to be positive where valid and 0 where not (`spiritnet_tf.losses` ignores pixels
    <= 0), resized with nearest neighbours so that no invalid pixel leaks into a valid one."""
    import cv2

    window = _random_crop(truth.shape, height, width, rng)
    crop, depth = image[window], truth[window]
    valid = np.isfinite(depth)
    target = np.zeros_like(depth, np.float32)
    if valid.any():
        target[valid] = depth[valid] - depth[valid].min() + 0.01
    crop = cv2.resize(crop.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)
    target = cv2.resize(target, (width, height), interpolation=cv2.INTER_NEAREST)
    return crop, target[..., None]


def _footage_samples(options):
    """(image, target) pairs cut from the footage samples (`footage_sample`), drawn
    forever from the seed ``[seed, 1]``."""
    from spiritnet_tf.evaluation.depth import load_depth_scenes

    samples = load_depth_scenes(options.footage)
    h, w = options.height, options.width

    def draw(rng):
        while True:
            scene = samples[rng.integers(len(samples))]
            yield footage_sample(scene.image, scene.truth, h, w, rng)

    return tf.data.Dataset.from_generator(
        lambda: draw(np.random.default_rng([options.seed, 1])),
        output_signature=(tf.TensorSpec([h, w, 3], tf.float32), tf.TensorSpec([h, w, 1], tf.float32)))


def _layer_frames(options):
    """Every frame of the flat-layer septuplets as (image, depth) pairs."""
    from spiritnet_tf.data import synthetic_dataset

    scenes = synthetic_dataset(options.count, options.height, options.width, seed=options.seed)

    def frames(scene):
        images = tf.image.convert_image_dtype(scene["frames"], tf.float32)
        return tf.data.Dataset.from_tensor_slices((images, scene["depth"]))

    return scenes.flat_map(frames)


def _depth_frames(options):
    """Single (image, depth) pairs of the synthetic scenes, shuffled, augmented, batched."""
    sources = {"layers": [_layer_frames], "cues": [_cue_scenes],
               "mixed": [_layer_frames, _cue_scenes]}[options.scenes]
    parts = [make(options).cache().repeat() for make in sources]  # rendered once each
    pairs = parts[0] if len(parts) == 1 else tf.data.Dataset.sample_from_datasets(
        parts, seed=options.seed)
    extra = [(options.footage, options.footage_fraction, _footage_samples),
             (options.photos, options.photos_fraction, _photo_samples)]
    extra = [(share, make(options)) for given, share, make in extra if given]
    if extra:
        shares = [1.0 - sum(share for share, _ in extra)] + [share for share, _ in extra]
        pairs = tf.data.Dataset.sample_from_datasets(
            [pairs] + [data for _, data in extra], weights=shares, seed=options.seed)

    def augment(image, depth):
        if options.flip:
            flip = tf.random.uniform([]) < 0.5
            image = tf.where(flip, image[:, ::-1], image)
            depth = tf.where(flip, depth[:, ::-1], depth)
        if options.color_jitter:
            image = tf.image.random_brightness(image, 0.15)
            image = tf.image.random_contrast(image, 0.7, 1.3)
            image = tf.image.random_saturation(image, 0.6, 1.4)
        return tf.clip_by_value(image, 0.0, 1.0), depth

    return (pairs.shuffle(512, seed=options.seed)
            .map(augment, num_parallel_calls=tf.data.AUTOTUNE)
            .batch(options.batch_size, drop_remainder=True).prefetch(2))


def pretrain_depth(depth_net, options=None, progress=True, optimizer=None):
    """Trains ``depth_net`` (a `spiritnet_tf.depth.MegaDepth`) alone; returns the losses.

    The loss is ``options.loss`` (see `DepthPretraining`; batch norm in training mode).
    ``optimizer``: an optimizer to continue with (its state carries over between calls,
    e.g. chunks of a resumable run); default a new Adam at ``options.learning_rate``.
    Returns the list of per-step losses.
    """
    from tqdm.auto import tqdm

    from spiritnet_tf import losses
    from spiritnet_tf.optimizers import Adam

    options = options or DepthPretraining()
    if not depth_net.built:  # a net trained before (or loaded) is trained further
        depth_net.build((None, None, None, 3))
    if optimizer is None:
        optimizer = Adam(options.learning_rate, global_clipnorm=options.clipnorm)
    variables = depth_net.trainable_variables
    if not optimizer.built:
        # Its slot variables made here, eagerly: made inside the traced step they cost a
        # second trace and a conditional initialiser each (tracing the step of the tests'
        # tiny depth net: 20.0 s before, 5.8 s after; 2 cores, 2026-12-05).
        optimizer.build(variables)

    @tf.function(autograph=False)
    def step(images, depth):
        with tf.GradientTape() as tape:
            output = depth_net(images, training=True)
            if options.loss == "relative":
                loss = losses.relative_depth(-output, depth)
                if options.edge_weight:
                    loss += options.edge_weight * losses.edge_following(-output, images, depth)
            else:
                loss = losses.scale_invariant_log_depth(None, depth, predicted_log_depth=output)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    history = []
    bar = tqdm(_depth_frames(options).take(options.steps), total=options.steps,
               desc="depth pre-training", unit="step", disable=not progress)
    for images, depth in bar:
        history.append(float(step(images, depth)))
        if len(history) % 10 == 0:
            bar.set_postfix(loss=f"{sum(history[-10:]) / 10:.3f}")
    return history
