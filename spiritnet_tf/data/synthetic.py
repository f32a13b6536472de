"""Synthetic parallax scenes with exact backward flow and inverse depth (docs/design.md §4).

A scene is a stack of flat, fronto-parallel layers: a background plane and a few
textured foreground shapes, each at its own depth. The camera pans, so every
layer moves with a speed proportional to its inverse depth (parallax); each layer
also accelerates and rotates a little about its own centre, so constant velocity
is not the whole story.

Frames are *rendered* by compositing the layers, far to near, at their positions
at time k: each layer's texture is sampled (bicubic) at the inverse of the
layer's rigid transform, and its hard mask decides what it covers. The flows are
computed analytically from the same transforms — never used to render — so
warping one frame with the reported flow and comparing with the next is a real test.

Flow follows docs/design.md §2: ``flows[k]`` is F_{k+2->k+1} (0-based: entry 0 is
F_{2->1}), backward, in pixels, and exact for the layer visible at each pixel of
the later frame. ``depth`` is z = (1/D) / max over the frame's visible layers, so
z ∈ (0, 1] and the nearest visible layer has z = 1.
"""

import dataclasses

import numpy as np

from spiritnet_tf.limits import MIN_INVERSE_DEPTH, MIN_SIDE

__all__ = [
    "SyntheticConfig", "generate_septuplet", "synthetic_septuplets", "synthetic_dataset",
    "write_synthetic_records",
]


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Scene parameters. Speeds are fractions of the frame width per frame.

    Attributes:
      num_frames: frames per sample (7 for septuplets).
      min_layers, max_layers: foreground layers per scene (plus the background).
      far_depth: (low, high) depth range of the background plane.
      near_depth: (low, high) depth range of the foreground layers.
      max_speed: image speed of a layer at the nearest possible depth (z = 1).
      max_acceleration: largest acceleration, same units per frame.
      max_rotation: largest rotation speed of a foreground layer, degrees per frame
        (the background rotates at most a quarter of it).
      shape_size: (low, high) size of a foreground shape, fraction of min(H, W).
      finest_texture: smallest texture cell in pixels (sets the finest detail).
    """

    num_frames: int = 7
    min_layers: int = 2
    max_layers: int = 4
    far_depth: tuple = (6.0, 12.0)
    near_depth: tuple = (1.5, 5.0)
    max_speed: float = 0.025
    max_acceleration: float = 0.002
    max_rotation: float = 1.5
    shape_size: tuple = (0.2, 0.5)
    finest_texture: int = 4


def _texture(rng, height, width, finest):
    """Smooth multi-octave colour noise in [0, 1], float32 [height, width, 3].

    Built coarse to fine: upsample x2 (bicubic) and add fresh noise at each octave,
    with amplitude ∝ cell^0.3 (cell = octave's feature size in pixels; the finest is
    ``finest``), then a last bicubic upsampling to full size.
    """
    import cv2

    levels = max(1, int(np.ceil(np.log2(max(height, width) / finest))))
    h, w = -(-height // (finest << (levels - 1))) + 2, -(-width // (finest << (levels - 1))) + 2
    out = rng.standard_normal((h, w, 3)).astype(np.float32) * float(finest << (levels - 1)) ** 0.3
    for level in range(levels - 2, -1, -1):
        h, w = 2 * h, 2 * w
        out = cv2.resize(out, (w, h), interpolation=cv2.INTER_CUBIC)
        out += rng.standard_normal((h, w, 3)).astype(np.float32) * float(finest << level) ** 0.3
    out = cv2.resize(out, (w * finest, h * finest), interpolation=cv2.INTER_CUBIC)
    out = out[finest:finest + height, finest:finest + width]
    out -= out.mean(axis=(0, 1))
    out /= 3.0 * out.std() + 1e-6
    base = rng.uniform(0.25, 0.75, size=3).astype(np.float32)
    return np.clip(base + rng.uniform(0.6, 1.0) * out, 0.0, 1.0)


def _shape_mask(rng, height, width, size):
    """A random filled ellipse or polygon; float32 [H, W] in {0, 1} and its centre (x, y)."""
    import cv2

    mask = np.zeros((height, width), np.uint8)
    centre = np.array([rng.uniform(0.15, 0.85) * width, rng.uniform(0.15, 0.85) * height])
    radius = size * min(height, width) / 2
    if rng.random() < 0.5:
        axes = (int(radius), int(radius * rng.uniform(0.5, 1.0)))
        cv2.ellipse(mask, (int(centre[0]), int(centre[1])), axes, rng.uniform(0, 180),
                    0, 360, 1, -1)
    else:
        n = rng.integers(3, 8)
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radii = radius * rng.uniform(0.5, 1.0, n)
        pts = centre + np.stack([np.cos(angles), np.sin(angles)], 1) * radii[:, None]
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    return mask.astype(np.float32), centre


def _affine(theta, centre, shift):
    """2x3 matrix mapping layer coordinates u to image coordinates: R(θ)(u − c) + c + t."""
    c, s = np.cos(theta), np.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    return np.concatenate([rot, (centre - rot @ centre + shift)[:, None]], axis=1)


def _invert(m):
    rot_inv = m[:, :2].T
    return np.concatenate([rot_inv, (-rot_inv @ m[:, 2])[:, None]], axis=1)


def _apply(m, xs, ys):
    return m[0, 0] * xs + m[0, 1] * ys + m[0, 2], m[1, 0] * xs + m[1, 1] * ys + m[1, 2]


def generate_septuplet(seed, height=256, width=448, config=SyntheticConfig()):
    """Renders one synthetic sample.

    Args:
      seed: int or sequence of ints for ``numpy.random.default_rng``; same seed, same sample.
      height, width: frame size in pixels (at least 32 each).
      config: :class:`SyntheticConfig`.
    Returns:
      dict with ``frames`` uint8 [N, H, W, 3], ``flows`` float32 [N-1, H, W, 2]
      (backward, pixels; entry 0 is F_{2->1}, entry k is F_{k+2->k+1}), ``depth``
      float32 [N, H, W, 1] (inverse depth z, §2) and ``layers`` int8 [N, H, W]
      (index of the visible layer, 0 = background, larger = nearer), N = config.num_frames.
    """
    import cv2

    if height < MIN_SIDE or width < MIN_SIDE:
        raise ValueError(f"synthetic frames must be at least {MIN_SIDE}x{MIN_SIDE}, got {height}x{width}")
    rng = np.random.default_rng(seed)
    n = config.num_frames
    num_fg = int(rng.integers(config.min_layers, config.max_layers + 1))
    depths = np.concatenate([
        [rng.uniform(*config.far_depth)],
        np.sort(rng.uniform(*config.near_depth, num_fg))[::-1],  # far to near
    ])
    inv = 1.0 / depths
    inv_rel = inv / (1.0 / config.near_depth[0])  # 1 at the nearest possible depth

    pan_angle = rng.uniform(0, 2 * np.pi)
    pan = rng.uniform(0.3, 1.0) * config.max_speed * width * np.array(
        [np.cos(pan_angle), np.sin(pan_angle)])
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)

    layers = []
    for i, rel in enumerate(inv_rel):
        velocity = pan * rel + rng.normal(0, 0.15, 2) * np.linalg.norm(pan) * rel
        accel_angle = rng.uniform(0, 2 * np.pi)
        accel = rng.uniform(0, config.max_acceleration) * width * rel * np.array(
            [np.cos(accel_angle), np.sin(accel_angle)])
        spin = np.deg2rad(rng.uniform(-1, 1) * config.max_rotation) * (0.25 if i == 0 else 1.0)
        if i == 0:
            mask, centre = np.ones((height, width), np.float32), np.array([width / 2, height / 2])
        else:
            mask, centre = _shape_mask(rng, height, width, rng.uniform(*config.shape_size))
        texture = _texture(rng, height, width, config.finest_texture)
        transforms = [
            _affine(spin * k, centre, velocity * k + 0.5 * accel * k * k) for k in range(n)
        ]
        layers.append((texture, mask, transforms))

    frames = np.zeros((n, height, width, 3), np.float32)
    visible = np.zeros((n, height, width), np.int8)
    size = (width, height)
    inverse_flags = cv2.WARP_INVERSE_MAP  # the matrix maps frame pixels to layer coordinates
    for k in range(n):
        for i, (texture, mask, transforms) in enumerate(layers):
            to_layer = _invert(transforms[k])
            colour = cv2.warpAffine(texture, to_layer, size, flags=cv2.INTER_CUBIC | inverse_flags,
                                    borderMode=cv2.BORDER_REFLECT_101)
            if i == 0:
                frames[k] = colour
                continue
            cover = cv2.warpAffine(mask, to_layer, size, flags=cv2.INTER_LINEAR | inverse_flags,
                                   borderMode=cv2.BORDER_CONSTANT) > 0.5
            frames[k][cover] = colour[cover]
            visible[k][cover] = i

    flows = np.zeros((n - 1, height, width, 2), np.float32)
    for k in range(n - 1):
        for i, (_, _, transforms) in enumerate(layers):
            sel = visible[k + 1] == i
            # x in frame k+1 -> layer coordinates -> position in frame k.
            step = transforms[k] @ np.vstack([_invert(transforms[k + 1]), [0, 0, 1]])
            x, y = xs[sel], ys[sel]
            px, py = _apply(step, x, y)
            flows[k][sel] = np.stack([px - x, py - y], axis=-1)

    inv_map = inv[visible.astype(np.int64)]
    depth = inv_map / inv_map.reshape(n, -1).max(axis=1)[:, None, None]
    return {
        "frames": np.round(np.clip(frames, 0, 1) * 255).astype(np.uint8),
        "flows": flows,
        "depth": np.maximum(depth, MIN_INVERSE_DEPTH).astype(np.float32)[..., None],
        "layers": visible,
    }


def synthetic_septuplets(count, height=256, width=448, seed=0, config=SyntheticConfig()):
    """Yields ``count`` septuplet dicts (``id``, ``frames``, ``flows``, ``depth``).

    Sample i uses the seed ``[seed, i]``, so any sample can be regenerated alone.
    """
    for i in range(count):
        sample = generate_septuplet([seed, i], height, width, config)
        sample.pop("layers")
        sample["id"] = f"synthetic/{seed}/{i}"
        yield sample


def synthetic_dataset(count, height=256, width=448, seed=0, config=SyntheticConfig()):
    """A tf.data.Dataset of ``count`` synthetic septuplets rendered on the fly (no files).

    Elements: ``id`` string, ``frames`` uint8 [7, H, W, 3], ``flows`` float32
    [6, H, W, 2], ``depth`` float32 [7, H, W, 1]; the format of
    :func:`spiritnet_tf.data.records.read_septuplets` with depth. Element i is
    rendered from the seed ``[seed, i]`` (same as :func:`synthetic_septuplets`),
    several at a time in parallel; the order is kept.
    """
    import tensorflow as tf

    n = config.num_frames

    def render(index):
        sample = generate_septuplet([seed, int(index)], height, width, config)
        return sample["frames"], sample["flows"], sample["depth"]

    def element(index):
        frames, flows, depth = tf.numpy_function(
            render, [index], [tf.uint8, tf.float32, tf.float32], stateful=False)
        return {
            "id": tf.strings.format("synthetic/{}/{}", (seed, index)),
            "frames": tf.ensure_shape(frames, [n, height, width, 3]),
            "flows": tf.ensure_shape(flows, [n - 1, height, width, 2]),
            "depth": tf.ensure_shape(depth, [n, height, width, 1]),
        }

    return tf.data.Dataset.range(count).map(element, num_parallel_calls=tf.data.AUTOTUNE,
                                            deterministic=True)


def write_synthetic_records(out_dir, count, height=256, width=448, seed=0, shard_size=256,
                            config=SyntheticConfig(), progress=True):
    """Renders ``count`` samples into TFRecord shards under ``out_dir``; returns their paths.

    Shards are named ``synthetic-<seed>-<HxW>-<shard>-of-<n>.tfrecord`` (format:
    :mod:`spiritnet_tf.data.records`, with depth).
    """
    import os

    from tqdm.auto import tqdm

    from spiritnet_tf.data.records import write_septuplets

    if count < 1 or shard_size < 1:
        raise ValueError(f"count and shard_size must be >= 1, got {count}, {shard_size}")
    os.makedirs(out_dir, exist_ok=True)
    num_shards = -(-count // shard_size)
    samples = synthetic_septuplets(count, height, width, seed, config)
    bar = tqdm(total=count, desc="synthetic", unit="sample", disable=not progress)
    paths = []
    for shard in range(num_shards):
        path = os.path.join(
            out_dir, f"synthetic-{seed}-{height}x{width}-{shard:05d}-of-{num_shards:05d}.tfrecord")
        n = min(shard_size, count - shard * shard_size)

        def take(n=n):
            for _ in range(n):
                yield next(samples)
                bar.update(1)

        write_septuplets(path + ".partial", take())
        os.replace(path + ".partial", path)
        paths.append(path)
    bar.close()
    return paths
