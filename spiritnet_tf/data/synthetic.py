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

from spiritnet_tf.config import (CheckedConfig, ConfigError, above, at_least, between, checked,
                                 ordered_pair, rule)
from spiritnet_tf.limits import MIN_INVERSE_DEPTH, MIN_SIDE

__all__ = [
    "SyntheticConfig", "generate_septuplet", "synthetic_septuplets", "synthetic_dataset",
    "write_synthetic_records", "DepthSceneConfig", "generate_depth_scene", "apply_haze",
    "apply_defocus", "adjust_surface",
]


@dataclasses.dataclass(frozen=True)
class SyntheticConfig(CheckedConfig):
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

    num_frames: int = checked(7, at_least(2, integer=True))
    min_layers: int = checked(2, at_least(0, integer=True))
    max_layers: int = checked(4, at_least(0, integer=True))
    far_depth: tuple = checked((6.0, 12.0), ordered_pair(0, strict=True))
    near_depth: tuple = checked((1.5, 5.0), ordered_pair(0, strict=True))
    max_speed: float = checked(0.025, at_least(0))
    max_acceleration: float = checked(0.002, at_least(0))
    max_rotation: float = checked(1.5, at_least(0))
    shape_size: tuple = checked((0.2, 0.5), ordered_pair(0))
    finest_texture: int = checked(4, at_least(1, integer=True))

    def validate(self, where=None):
        super().validate(where)
        if self.max_layers < self.min_layers:
            raise ConfigError.bad_value(where or type(self).__name__, "max_layers",
                                        f">= min_layers ({self.min_layers})", self.max_layers)
        return self


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


# ----------------------------------------------------------------------------- depth cues
# Single photos with the monocular depth cues of real photos, for the depth net: a
# textured ground plane in perspective up to a horizon, a far backdrop and sky,
# atmospheric perspective, defocus blur, and objects standing on the ground.


@dataclasses.dataclass(frozen=True)
class DepthSceneConfig(CheckedConfig):
    """Parameters of `generate_depth_scene` (distances in metres).

    Attributes:
      horizon: (low, high) row of the horizon, fraction of the height from the top.
      camera_height: (low, high) height of the camera above the ground.
      focal: focal length as a fraction of the width (1.0: about 53 degrees wide).
      backdrop_depth: (low, high) distance of the far backdrop (hills, a tree line);
        the ground ends there. The sky is ``sky_factor`` times farther.
      objects: (low, high) number of objects standing on the ground.
      object_height, object_width: (low, high) real size of an object.
      haze: (low, high) fraction of the backdrop's light lost to haze (transmission
        ``exp(-beta * Z)``); 0 turns atmospheric perspective off.
      haze_fraction: probability that a scene has haze at all (clear days and indoor
        scenes have none, so faded contrast is not always a sign of distance).
      defocus: (low, high) largest blur sigma in pixels (at the inverse-depth distance
        from the focus plane of the nearest pixel); 0 turns defocus off.
      photo_fraction: probability that a surface takes a photographic texture (when
        textures are given) rather than a procedural one.
      texture_metres: (low, high) size of one texture tile on the ground.
      wall_fraction: probability that the backdrop is a near wall (a facade, a hedge, the
        far side of a room) at ``wall_depth`` instead of a far ridge: its top is a stepped
        skyline high in the picture, or above it.
      wall_depth: (low, high) distance of such a wall.
      procedural_saturation: (low, high) colour saturation kept by a procedural texture
        (1: the raw colour noise; real surfaces are mostly muted).
      surface_gain: (low, high) brightness gain of each surface (backdrop, ground, every
        object), drawn log-uniformly: a white post before a dark wall is as likely as a
        dark one, so brightness alone does not tell depth.
      surface_contrast: (low, high) factor on each surface's texture contrast around its
        mean: near surfaces may be smooth (paint, a car body), so a lack of texture alone
        does not tell depth either.
    """

    horizon: tuple = checked((0.25, 0.55), ordered_pair(0))
    camera_height: tuple = checked((1.2, 2.0), ordered_pair(0, strict=True))
    focal: float = checked(1.0, above(0))
    backdrop_depth: tuple = checked((60.0, 200.0), ordered_pair(0, strict=True))
    sky_factor: float = checked(20.0, at_least(1))
    objects: tuple = checked((1, 5), ordered_pair(0))
    object_height: tuple = checked((0.6, 4.0), ordered_pair(0))
    object_width: tuple = checked((0.3, 2.0), ordered_pair(0))
    haze: tuple = checked((0.2, 0.7), rule("a (low, high) pair with 0 <= low <= high < 1",
                                           lambda v: ordered_pair(0).ok(v) and v[1] < 1))
    defocus: tuple = checked((0.0, 2.5), ordered_pair(0))
    photo_fraction: float = checked(0.5, between(0, 1))
    texture_metres: tuple = checked((0.5, 3.0), ordered_pair(0, strict=True))
    wall_fraction: float = checked(0.4, between(0, 1))
    wall_depth: tuple = checked((3.0, 30.0), ordered_pair(0, strict=True))
    procedural_saturation: tuple = checked((0.1, 0.8), ordered_pair(0))
    haze_fraction: float = checked(0.5, between(0, 1))
    surface_gain: tuple = checked((0.6, 1.6), ordered_pair(0, strict=True))
    surface_contrast: tuple = checked((0.3, 1.2), ordered_pair(0))


def adjust_surface(tile, gain, contrast):
    """A surface's look: ``clip((mean + contrast * (tile - mean)) * gain, 0, 1)`` with the
    tile's mean colour ``mean``: ``contrast`` scales its texture, ``gain`` its brightness."""
    mean = tile.mean(axis=(0, 1), keepdims=True)
    return np.clip((mean + contrast * (tile - mean)) * gain, 0, 1).astype(np.float32)


def _surface_texture(rng, textures, config, size=128):
    """A texture tile float32 [h, w, 3]: a photographic one (random crop, flip, tint) or
    procedural noise, then `adjust_surface` with a gain and contrast drawn from the config."""
    if textures and rng.random() < config.photo_fraction:
        t = textures[int(rng.integers(len(textures)))]
        if rng.random() < 0.5:
            t = t[:, ::-1]
        tint = rng.uniform(0.8, 1.2, 3).astype(np.float32)
        t = np.clip(np.ascontiguousarray(t) * tint, 0, 1).astype(np.float32)
    else:
        t = _texture(rng, size, size, int(rng.integers(2, 9)))
        grey = t.mean(-1, keepdims=True)
        t = np.clip(grey + rng.uniform(*config.procedural_saturation) * (t - grey), 0, 1)
    gain = np.exp(rng.uniform(*np.log(config.surface_gain)))
    return adjust_surface(t, gain, rng.uniform(*config.surface_contrast))


def _sample_tiled(texture, u, v):
    """Samples a tiling ``texture`` at texel coordinates (u, v) (any real values), with
    mip-mapping by the local footprint so that far, minified texture does not alias."""
    import cv2

    dv = np.abs(np.gradient(v, axis=0)) + np.abs(np.gradient(v, axis=1))
    du = np.abs(np.gradient(u, axis=0)) + np.abs(np.gradient(u, axis=1))
    level = np.log2(np.maximum(np.maximum(du, dv), 1.0))
    out = np.zeros(u.shape + (3,), np.float32)
    weight_total = np.zeros(u.shape, np.float32)
    current = texture.astype(np.float32)
    for lv in range(6):
        scale = 2.0 ** lv
        mapped = cv2.remap(current, (u / scale % current.shape[1]).astype(np.float32),
                           (v / scale % current.shape[0]).astype(np.float32),
                           cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
        weight = np.clip(1.0 - np.abs(level - lv), 0.0, 1.0)
        if lv == 5:
            weight = np.where(level >= 5, 1.0, weight)
        out += mapped * weight[..., None]
        weight_total += weight
        if min(current.shape[:2]) < 4:
            break
        padded = np.pad(current, ((3, 3), (3, 3), (0, 0)), mode="wrap")  # the tile repeats
        blurred = cv2.GaussianBlur(padded, (0, 0), 1.0)[3:-3, 3:-3]
        current = cv2.resize(blurred, (max(2, current.shape[1] // 2), max(2, current.shape[0] // 2)),
                             interpolation=cv2.INTER_AREA)
    return out / np.maximum(weight_total, 1e-6)[..., None]


def apply_haze(image, distance, beta, airlight):
    """Atmospheric perspective: ``I * t + A * (1 - t)`` with transmission
    ``t = exp(-beta * distance)``: contrast and saturation fade with distance towards
    the air light ``A`` (RGB). ``image`` [H, W, 3], ``distance`` [H, W] in metres."""
    t = np.exp(-beta * np.asarray(distance, np.float32))[..., None]
    return image * t + np.asarray(airlight, np.float32) * (1.0 - t)


def apply_defocus(image, inverse_depth, focus, strength, levels=6):
    """Defocus blur growing away from the focus plane: the Gaussian sigma at a pixel is
    ``strength * |z - focus| / max |z - focus|`` pixels (z = ``inverse_depth`` [H, W]),
    quantised to ``levels`` blur levels blended linearly. ``strength`` 0 returns the image."""
    import cv2

    if strength <= 0:
        return image
    gap = np.abs(np.asarray(inverse_depth, np.float32) - focus)
    sigma = strength * gap / max(float(gap.max()), 1e-6)
    steps = np.linspace(0.0, strength, levels)
    position = np.clip(sigma / (steps[1] - steps[0]), 0, levels - 1)
    out = np.zeros_like(image)
    for i, s in enumerate(steps):
        weight = np.clip(1.0 - np.abs(position - i), 0.0, 1.0)[..., None]
        if not weight.any():
            continue
        blurred = image if s == 0 else cv2.GaussianBlur(image, (0, 0), float(s))
        out += blurred * weight
    return out


def generate_depth_scene(seed, height=128, width=160, config=DepthSceneConfig(), textures=None):
    """Renders one photo-like scene with true depth.

    The camera looks horizontally from ``camera_height`` above a ground plane; a ground
    pixel at row y below the horizon row ``y_h`` is at distance ``Z = f * h / (y - y_h)``
    (f = ``config.focal * width`` pixels), so its inverse depth grows linearly down the
    picture and its texture (tiled in ground coordinates, metres) shrinks towards the
    horizon. The ground ends at the backdrop distance, where a backdrop band (a ridge
    line) stands before the sky. Objects stand on the ground: one whose base is at row
    ``y_b`` is at ``Z = f * h / (y_b - y_h)`` and is ``f * H / Z`` pixels tall for its
    real height H. Every surface has its own brightness and texture contrast
    (`adjust_surface`), so that neither tells depth by itself. Haze (`apply_haze`, in a
    share ``haze_fraction`` of the scenes) and defocus (`apply_defocus`, focus on a random
    pixel's depth) are applied last.

    Args:
      seed: int or sequence of ints; same seed, same scene.
      height, width: at least 32 each.
      config: `DepthSceneConfig`.
      textures: optional list of float32 RGB tiles (`spiritnet_tf.data.textures.load_textures`).

    Returns: dict with ``image`` uint8 [H, W, 3], ``depth`` float32 [H, W, 1] (inverse
    depth z = (1/Z) / max, in [1e-3, 1], as the other synthetic data), ``distance``
    float32 [H, W] (Z in metres), ``horizon`` (row), ``focal`` (pixels),
    ``camera_height``, ``backdrop_distance``, ``wall`` (whether the backdrop is a near
    wall) and ``objects``: a list of dicts (``distance``, ``height_m``,
    ``height_px``, ``bottom`` row, ``mask`` bool [H, W] of its visible pixels,
    ``occluded``: whether a nearer object hides part of it).
    """
    import cv2

    if height < 32 or width < 32:
        raise ValueError(f"depth scenes must be at least 32x32, got {height}x{width}")
    rng = np.random.default_rng(seed)
    f = config.focal * width
    cam = rng.uniform(*config.camera_height)
    y_h = rng.uniform(*config.horizon) * height
    wall = rng.random() < config.wall_fraction
    z_far = rng.uniform(*config.backdrop_depth)  # the far ridge; haze is set by it
    z_back = rng.uniform(*config.wall_depth) if wall else z_far
    z_sky = z_far * config.sky_factor
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    cx = width / 2.0

    # Sky: a vertical gradient with a little noise.
    top = rng.uniform(0.35, 0.8, 3).astype(np.float32)
    low = np.clip(top + rng.uniform(0.05, 0.3), 0, 1)
    mix = np.clip(ys / max(y_h, 1.0), 0, 1)[..., None]
    image = (top * (1 - mix) + low * mix).astype(np.float32)
    image += 0.03 * (_texture(rng, height, width, 16) - 0.5)
    distance = np.full((height, width), z_sky, np.float32)

    # Backdrop at the backdrop distance: a ridge line above the horizon, or a wall whose
    # stepped top (roofs, a hedge) is high in the picture or above it.
    if wall:
        steps = rng.uniform(-0.3, 0.6 * y_h / height, int(rng.integers(1, 6))) * height
        ridge = steps[np.minimum((xs[0] / width * len(steps)).astype(int), len(steps) - 1)]
    else:
        ridge = y_h - (0.02 + 0.15 * rng.random()) * height * np.abs(
            cv2.resize(rng.standard_normal((1, 6)).astype(np.float32), (width, 1),
                       interpolation=cv2.INTER_CUBIC)[0])
    backdrop = ys >= ridge[None, :]
    tile = _surface_texture(rng, textures, config)
    colour = _sample_tiled(tile, xs * rng.uniform(0.5, 2.0), ys * rng.uniform(0.5, 2.0))
    image[backdrop] = colour[backdrop]
    distance[backdrop] = z_back

    # Ground plane, in perspective, up to the backdrop distance.
    below = ys > y_h + 1e-3
    z_ground = np.where(below, f * cam / np.maximum(ys - y_h, 1e-3), np.inf)
    ground = below & (z_ground < z_back)
    tile = _surface_texture(rng, textures, config)
    metres = rng.uniform(*config.texture_metres)
    texel = tile.shape[0] / metres  # texels per metre
    gx = (xs - cx) * np.minimum(z_ground, z_back) / f
    gz = np.minimum(z_ground, z_back)
    colour = _sample_tiled(tile, gx * texel + rng.uniform(0, 1000), gz * texel + rng.uniform(0, 1000))
    image[ground] = colour[ground]
    distance[ground] = z_ground[ground]

    # Objects standing on the ground, painted far to near.
    count = int(rng.integers(config.objects[0], config.objects[1] + 1))
    objects = []
    bottom_min = y_h + f * cam / z_back + 1.0
    if bottom_min >= height * 1.15:  # a wall so near that no ground shows before it
        count = 0
    specs = []
    for _ in range(count):
        bottom = rng.uniform(bottom_min, height * 1.15)
        specs.append((f * cam / (bottom - y_h), bottom))
    for z_obj, bottom in sorted(specs, reverse=True):
        h_m = rng.uniform(*config.object_height)
        w_m = rng.uniform(*config.object_width)
        h_px, w_px = f * h_m / z_obj, f * w_m / z_obj
        x0 = rng.uniform(-0.3, 1.3) * width
        mask = np.zeros((height, width), np.uint8)
        if rng.random() < 0.5:  # a box (a post, a wall, a building)
            cv2.rectangle(mask, (int(round(x0 - w_px / 2)), int(round(bottom - h_px))),
                          (int(round(x0 + w_px / 2)) - 1, int(round(bottom)) - 1), 1, -1)
        else:  # a rounded shape (a tree crown, a rock, a person) resting on its base
            cv2.ellipse(mask, (int(round(x0)), int(round(bottom - h_px / 2))),
                        (max(1, int(round(w_px / 2))), max(1, int(round(h_px / 2)))), 0, 0, 360, 1, -1)
        mask = mask.astype(bool)
        tile = _surface_texture(rng, textures, config)
        per_metre = tile.shape[0] / rng.uniform(0.3, 1.5)
        colour = _sample_tiled(tile, (xs - x0) * z_obj / f * per_metre, ys * z_obj / f * per_metre)
        image[mask] = colour[mask]
        distance[mask] = z_obj
        objects.append({"distance": float(z_obj), "height_m": float(h_m), "height_px": float(h_px),
                        "bottom": float(bottom), "mask": mask})
    for obj in objects:  # what nearer objects left visible
        visible = obj["mask"] & (distance == obj["distance"])
        obj["occluded"] = bool((visible != obj["mask"]).any())
        obj["mask"] = visible

    # Atmospheric perspective (in a share of the scenes), then defocus.
    hazy = rng.random() < config.haze_fraction
    beta = -np.log(1.0 - rng.uniform(*config.haze)) / z_far if config.haze[1] > 0 and hazy else 0.0
    airlight = np.clip(low + rng.uniform(-0.05, 0.1), 0, 1)
    image = apply_haze(np.clip(image, 0, 1), np.minimum(distance, z_far * 2), beta, airlight)
    inv = 1.0 / distance
    z = inv / inv.max()
    focus = float(z.flat[int(rng.integers(z.size))])
    image = apply_defocus(image.astype(np.float32), z, focus, rng.uniform(*config.defocus))
    return {
        "image": np.round(np.clip(image, 0, 1) * 255).astype(np.uint8),
        "depth": np.maximum(z, 1e-3).astype(np.float32)[..., None],
        "distance": distance,
        "horizon": float(y_h),
        "focal": float(f),
        "camera_height": float(cam),
        "backdrop_distance": float(z_back),
        "wall": bool(wall),
        "objects": objects,
    }
