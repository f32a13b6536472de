"""``spiritnet_tf.animate``: one photo in, a full-resolution animation out (DESIGN.md §2, §6, §8).

    anim = spiritnet_tf.animate("photo.jpg", num_frames=6, seed=0, weights="my.weights.h5")
    anim.frames   # uint8 [7, H, W, 3]: the input first, then 6 generated frames, full resolution
    anim.flows    # float32 [6, h, w, 2]: backward flows F_{t -> t-1} in pixels, working size
    anim.depth    # float32 [h, w, 1]: inverse depth z in (0, 1] (1 = nearest), working size
    anim.save("photo.gif")                 # streams the frames, one at a time, to the writer

How the full resolution is made (DESIGN §6). The photo is shrunk so that its long side
is ``working_side`` (h x w) and the model runs there, giving T frames ``M_t`` and T
backward flows ``F_t``. The flows are composed into flows back to the input,
``G_t(x) = F_t(x) + G_{t-1}(x + F_t(x))`` (``G_0 = 0``), so that ``M_t ~ I0(x + G_t(x))``
whatever the model's ``resample_from``. Full-resolution frame t is then

    sharp(I0, up(G_t)) + up(R_t)

where ``up`` is bilinear upsampling to H x W (flows also multiplied by W/w and H/h),
``sharp`` one Lanczos-4 backward warp of the *input* (samples falling outside the
picture copy the pixel itself, like the model's warp op, DESIGN §3.7) and ``R_t`` the
model's synthesis residual (what its frame synthesis added to its adaptively warped
image, DESIGN §6). Every full-resolution frame is thus one resampling of the
full-resolution photo (blur does not compound), and the motion is resampled with
Lanczos-4: a bilinear sub-pixel shift loses about half of an image's Laplacian variance
at a quarter pixel, bicubic about a sixth, Lanczos-4 less (docs/training.md). When the
photo is no larger than the working size, ``sharp`` is bilinear and ``R_t`` is taken as
``M_t - bilinear(I0, G_t)``, so the formula gives back the model's frames exactly.
Static-mask pixels are then reset to the input at full resolution.

Frames are computed one at a time when they are iterated (`Animation.iter_frames`),
so writing an animation holds only a few full-size arrays, never all frames
(``.frames`` does stack them all: use `Animation.save` or `iter_frames` for huge photos).

Loops (``loop=``, DESIGN §2): ``"none"`` writes the T+1 frames; ``"boomerang"`` the
order of `spiritnet_tf.io.apply_loop` (2T frames; the reversed half is recomputed, not
stored); ``"seamless"`` keeps T+1 frames and cross-fades two phase-shifted copies of
the motion, as Eulerian loops do: frame t = (1 - w) * A_t + w * B_t with L = T + 1 and
w = smoothstep(t / L) = 3s^2 - 2s^3, where A_t is frame t above and
B_t = sharp(I0, -up(G_{L-t})) is the input moved *backwards* by the L - t steps of motion
still to come (motion reversed by negating the composed flow). Frame 0 is the input; the
frame after the last would be B at L - t = 0, the input again, so the last frame flows
into the first one step of motion away, with no jump (smoothstep rather than linear
weights makes the cross-fade's share of each step more even, so the closing step is no
larger than the others). ``.frames`` of a seamless animation hold these cross-faded
frames; ``.flows`` stay the model's.
"""

import functools
import numbers
import os

import cv2
import numpy as np

from spiritnet_tf.config import DEFAULT_WEIGHTS, bundled_resample_from
from spiritnet_tf.io import images as _images
from spiritnet_tf.io import writers as _writers
from spiritnet_tf.io.weights import check_weights_file

__all__ = ["animate", "Animation", "load_model", "DEFAULT_WEIGHTS", "MAX_FRAMES", "check_outputs"]

MAX_FRAMES = 120  # DESIGN §8: at most this many generated frames per animation
DEFAULT_WORKING_SIDE = 448
DEFAULT_PRESET = "small"
_MAX_SIDE = 32767  # OpenCV's remap needs both sides below SHRT_MAX


# ----------------------------------------------------------------------------- weights


def load_model(weights=None, *, preset=DEFAULT_PRESET, resample_from=None):
    """The SpiritNet to animate with.

    Args:
      weights: None for the bundled default weights
        (``spiritnet_tf/weights/spiritnet_small.weights.h5``); a path to a ``.keras``
        model file (loaded with ``safe_mode=True``) or to a ``.weights.h5`` file saved
        from a ``preset`` model (``SpiritNet.from_preset(preset).save_weights(...)``); or
        a `spiritnet_tf.model.SpiritNet` instance, used as it is.
      preset: the preset whose architecture a ``.weights.h5`` file fits.
      resample_from: None (keep the model's) or ``"previous"`` / ``"input"``
        (DESIGN §3.9); a different mode gives a copy with the same weights.

    Loaded files are cached (by path, size and modification time), so animating many
    photos in one process loads the weights once.

    Raises:
      FileNotFoundError when the file (or the bundled default) is missing; ValueError
      for an unknown file type, a file that is not SpiritNet weights
      (`spiritnet_tf.io.WeightsFileError`) or weights that do not fit the preset.
    """
    from spiritnet_tf.model import SpiritNet

    if isinstance(weights, SpiritNet):
        return _with_resample(weights, resample_from)
    if weights is None:
        path = DEFAULT_WEIGHTS
        if resample_from is None:
            resample_from = bundled_resample_from()  # the mode their evaluation chose
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"the bundled default weights ({path}) are not in this installation "
                "(`make default-weights` trains them). Pass your own with "
                "weights=PATH (command line: --weights PATH), a .keras model or a "
                ".weights.h5 file of the 'small' preset (see `spiritnet train`)"
            )
    else:
        path = os.fspath(weights)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such weights file")
    check_weights_file(path)  # a corrupt or foreign file: "not a SpiritNet weights file (...)"
    stat = os.stat(path)
    return _load_cached(os.path.realpath(path), stat.st_size, stat.st_mtime_ns, preset, resample_from)


@functools.lru_cache(maxsize=2)
def _load_cached(path, size, mtime_ns, preset, resample_from):
    import keras

    from spiritnet_tf.model import SpiritNet

    try:
        if path.endswith(".keras"):
            model = keras.saving.load_model(path, safe_mode=True)
            if not isinstance(model, SpiritNet):
                raise ValueError(f"it holds a {type(model).__name__}, not a SpiritNet")
            return _with_resample(model, resample_from)
        overrides = {} if resample_from is None else {"resample_from": resample_from}
        return SpiritNet.from_preset(preset, weights=path, **overrides)
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: cannot load SpiritNet weights (preset {preset!r}): {e}") from None


def _with_resample(model, resample_from):
    if resample_from is None or resample_from == model.config.resample_from:
        return model
    return model.with_config(resample_from=resample_from)


# ----------------------------------------------------------------------------- warping


def _warp(image, flow, sharp=False):
    """Backward warp: ``out(x) = image(x + flow(x))``; [H,W,C] float32, flow [H,W,2].

    Bilinear, or Lanczos-4 with ``sharp=True`` (OpenCV's ``INTER_LANCZOS4``, the weights
    of `spiritnet_tf.ops.lanczos_warp`). Sample points outside [0, W-1] x [0, H-1] copy
    ``image(x)`` (the rule of the model's warp op, DESIGN §3.7).
    """
    height, width = flow.shape[:2]
    map_x = flow[..., 0] + np.arange(width, dtype=np.float32)[None, :]
    map_y = flow[..., 1] + np.arange(height, dtype=np.float32)[:, None]
    mode = cv2.INTER_LANCZOS4 if sharp else cv2.INTER_LINEAR
    out = cv2.remap(image, map_x, map_y, mode, borderMode=cv2.BORDER_REPLICATE)
    out = out.reshape(image.shape)
    outside = (map_x < 0) | (map_x > width - 1) | (map_y < 0) | (map_y > height - 1)
    out[outside] = image[outside]
    return out


def _resize(array, size):
    """Bilinear resize of [h, w, C] float32 to size (H, W) (half-pixel centres)."""
    if array.shape[:2] == tuple(size):
        return array
    out = cv2.resize(array, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    return out.reshape(size[0], size[1], array.shape[-1])


def compose_flows(flows):
    """Backward flows ``F_t`` [T, h, w, 2] -> flows ``G_t`` back to the input [T, h, w, 2].

    ``G_1 = F_1`` and ``G_t(x) = F_t(x) + G_{t-1}(x + F_t(x))`` (bilinear), so frame t
    is approximately ``I0(x + G_t(x))`` (DESIGN §3.9).
    """
    composed, previous = [], None
    for flow in np.asarray(flows, np.float32):
        previous = flow if previous is None else flow + _warp(previous, flow)
        composed.append(previous)
    return np.stack(composed) if composed else np.zeros_like(flows)


# ----------------------------------------------------------------------------- result


class Animation:
    """The result of `animate`: frames at the photo's resolution, flows and depth at the working size.

    Attributes:
      frames: uint8 ndarray [T+1, H, W, 3], the input first, at the input's
        resolution (computed and stacked on first access; the files `save` writes hold
        exactly these values, before any lossy codec). uint8 because that is what is
        written and because T+1 full-resolution float frames of a large photo would
        not fit in memory; ``frames / 255`` gives DESIGN §2's float images.
      flows: float32 [T, h, w, 2], the model's backward flows ``F_t`` (frame t back to
        frame t-1) in pixels of the working size h x w (multiply by W/w, H/h for pixels
        of the full frames).
      depth: float32 [h, w, 1], inverse depth z in [1e-3, 1] (1 = nearest) used for the
        first flow (the depth net's estimate or the map you passed).
      working_frames: float32 [T+1, h, w, 3] in [0, 1]: the input at the working size,
        then the model's frames (no loop applied).
      image: float32 [H, W, 3] in [0, 1], the photo as loaded.
      num_frames: T. size: (H, W). working_size: (h, w). loop: the loop mode.

    Full-resolution frame t (photo larger than the working size) = the photo warped
    (Lanczos-4) by the upsampled flow composed back to the input + the upsampled
    synthesis ``residuals`` (float32 [T, h, w, 3], the model's ``return_residuals``;
    DESIGN §6). At or below the working size, or without ``residuals``, the residual is
    taken against the bilinear warp of the working-size input, which gives back the
    model's frames exactly at the working size.

    Methods: `frame` (one frame, computed now), `iter_frames` (all T+1, streamed),
    `frame_order` (indices as written for the loop mode), `save`.
    """

    def __init__(self, image, working_frames, flows, depth, *, loop="none", mask=None,
                 residuals=None):
        if loop not in _writers.LOOP_MODES:
            raise ValueError(f"unknown loop mode {loop!r}; choose one of {', '.join(_writers.LOOP_MODES)}")
        self.image = image
        self.working_frames = working_frames
        self.flows = flows
        self.depth = depth
        self.loop = loop
        self.num_frames = len(flows)
        self.size = image.shape[:2]
        self.working_size = working_frames.shape[1:3]
        self._upscaled = tuple(self.size) != tuple(self.working_size)  # Lanczos-4 motion then
        self._mask = None if mask is None else mask[..., 0] > 0.5  # [H, W] bool, full size
        self._composed = compose_flows(flows)
        small = working_frames[0]
        if self._upscaled and residuals is not None:  # DESIGN §6: the synthesis residual
            self._residuals = np.asarray(residuals, np.float32)
        else:  # against the bilinear warp: the model's frames exactly at the working size
            self._residuals = np.stack(
                [m - _warp(small, g) for m, g in zip(working_frames[1:], self._composed)]
            ) if self.num_frames else working_frames[1:]
        self._frames = None

    def _full_flow(self, t):
        """``up(G_t)`` [H, W, 2] in full-resolution pixels (``G_0 = 0``)."""
        height, width = self.size
        scale = np.array([width / self.working_size[1], height / self.working_size[0]], np.float32)
        return _resize(self._composed[t - 1], self.size) * scale

    def frame(self, t):
        """Frame t (0 = the input, ..., T) as uint8 [H, W, 3], computed now."""
        if not 0 <= t <= self.num_frames:
            raise IndexError(f"frame {t} out of range 0..{self.num_frames}")
        if t == 0:
            return _writers.to_uint8(self.image)
        out = _warp(self.image, self._full_flow(t), sharp=self._upscaled)
        out += _resize(self._residuals[t - 1], self.size)
        if self.loop == "seamless":
            period = self.num_frames + 1
            s = t / period
            weight = np.float32(3 * s * s - 2 * s**3)  # smoothstep
            out *= 1 - weight
            out += weight * _warp(self.image, -self._full_flow(period - t), sharp=self._upscaled)
        if self._mask is not None:
            out[self._mask] = self.image[self._mask]
        return _writers.to_uint8(out)

    def iter_frames(self):
        """Yields the T+1 frames (uint8 [H, W, 3], input first) one at a time."""
        for t in range(self.num_frames + 1):
            yield self.frame(t) if self._frames is None else self._frames[t]

    @property
    def frames(self):
        if self._frames is None:
            self._frames = np.stack(list(self.iter_frames()))
        return self._frames

    def frame_order(self):
        """Indices of the frames in the order written: `spiritnet_tf.io.apply_loop` of 0..T."""
        return _writers.apply_loop(range(self.num_frames + 1), self.loop, close_loop=list)

    def save(self, path, *, fps=_writers.DEFAULT_FPS, overwrite=False, save_flows=False,
             save_depth=False, progress=False):
        """Writes the animation (``.gif``, ``.mp4``, ``.webp`` or a folder of PNGs).

        The frames are written in `frame_order` (T+1 frames with loop "none" or
        "seamless", 2T with "boomerang"), each computed just before it is written.
        Side outputs, beside ``path`` with its extension removed (``BASE``), see
        `output_paths`: ``save_flows`` writes ``BASE_flows.npy`` (float32 [T, h, w, 2])
        and ``BASE_flows<ext>`` (the flows coloured with `spiritnet_tf.io.flow_to_rgb`,
        same format as ``path``); ``save_depth`` writes ``BASE_depth.npy`` (z [h, w, 1])
        and ``BASE_depth.png`` (`spiritnet_tf.io.depth_to_rgb`). No existing output is
        replaced unless ``overwrite``; all are checked before anything is written.
        ``progress``: show a tqdm progress bar over the frames.

        Returns the list of paths written, the animation first.
        """
        paths = check_outputs(path, overwrite=overwrite, save_flows=save_flows, save_depth=save_depth)
        order = self.frame_order()
        frames = (self.frame(t) if self._frames is None else self._frames[t] for t in order)
        if progress:
            from tqdm import tqdm

            frames = tqdm(frames, total=len(order), unit="frame",
                          desc=os.path.basename(os.path.normpath(os.fspath(path))))
        _writers.write_animation(frames, path, fps=fps, overwrite=overwrite)
        if save_flows:
            _save_npy(paths["flows_npy"], self.flows, overwrite)
            limit = float(np.abs(self.flows).max()) if self.flows.size else 0.0
            pictures = (_writers.flow_to_rgb(f, max_magnitude=limit or 1.0) for f in self.flows)
            _writers.write_animation(pictures, paths["flows"], fps=fps, overwrite=overwrite)
        if save_depth:
            _save_npy(paths["depth_npy"], self.depth, overwrite)
            _writers.write_image(_writers.depth_to_rgb(self.depth), paths["depth"], overwrite=overwrite)
        return list(paths.values())


def output_paths(path, *, save_flows=False, save_depth=False):
    """{"animation": path, ...side outputs} for `Animation.save` (see there)."""
    path = os.fspath(path)
    fmt = _writers.output_format(path)  # ValueError for an unknown extension
    base = os.path.normpath(path)
    extension = "" if fmt == "folder" else fmt
    if extension:
        base = base[: -len(extension)]
    paths = {"animation": path}
    if save_flows:
        paths["flows"] = base + "_flows" + extension
        paths["flows_npy"] = base + "_flows.npy"
    if save_depth:
        paths["depth"] = base + "_depth.png"
        paths["depth_npy"] = base + "_depth.npy"
    return paths


def check_outputs(path, *, overwrite=False, save_flows=False, save_depth=False):
    """Checks every output of `Animation.save` before any work; returns `output_paths`.

    Raises ValueError for an unknown extension, FileExistsError naming an existing
    output when ``overwrite`` is False (and the writer's errors for a file standing
    where a folder should be, or the other way round).
    """
    paths = output_paths(path, save_flows=save_flows, save_depth=save_depth)
    for key, target in paths.items():
        if key in ("animation", "flows"):
            _writers.AnimationWriter(target, overwrite=overwrite)  # checks only; writes nothing
        elif os.path.lexists(target) and not overwrite:
            raise FileExistsError(f"{target} already exists; pass overwrite=True (--overwrite) to replace it")
    return paths


def _save_npy(path, array, overwrite):
    """np.save to a temporary file renamed over ``path`` (never half-written)."""
    if os.path.lexists(path) and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True (--overwrite) to replace it")
    temp = _writers.temp_file_beside(path, suffix=".npy")
    try:
        with open(temp, "wb") as f:
            np.save(f, np.asarray(array))
        with _writers.signals_held():
            os.replace(temp, path)
    finally:
        if os.path.lexists(temp):
            os.remove(temp)


# ----------------------------------------------------------------------------- animate


def _check_number(name, value, minimum=None, integer=False):
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite {'integer' if integer else 'number'}, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")
    return int(value) if integer else float(value)


def animate(image, num_frames=6, seed=0, *, weights=None, direction=None, magnitude=1.0,
            mask=None, depth=None, inverse_depth=None, working_side=DEFAULT_WORKING_SIDE,
            loop="none", preset=DEFAULT_PRESET, resample_from=None,
            max_pixels=_images.DEFAULT_MAX_PIXELS):
    """Animates one photo; returns an `Animation` (frames at the photo's resolution).

    Args:
      image: a file path, encoded image bytes, a PIL image or an array [H,W,(C)] (uint8,
        uint16 or float in [0, 1]); read by `spiritnet_tf.io.load_image` (grayscale ->
        RGB, alpha composited on white, 16-bit scaled, EXIF orientation applied; too
        small, too large, unreadable -> `spiritnet_tf.io.ImageInputError`).
      num_frames: T generated frames, 1..`MAX_FRAMES` (the result holds T+1, input first).
      seed: int seed of the random first flow (DAFR): same seed, same animation.
      weights: see `load_model` (None = the bundled default weights).
      direction: direction of motion in degrees (DESIGN §2: 0 = content moving right,
        90 = moving down); None draws it from the seed.
      magnitude: scale of the motion (multiplies DAFR's largest speed f0); >= 0.
      mask: static region (path, bytes or array; white / >= 0.5 = static), resampled to
        the photo: those pixels equal the input in every frame.
      depth / inverse_depth: a depth map (larger = farther) or a disparity-like map
        (larger = nearer), ``.npy`` or image file or array, of any size (resampled);
        converted to inverse depth z (`spiritnet_tf.io.load_depth_map`) and used
        instead of the depth net's estimate for the first frame. At most one.
      working_side: long side of the size the model runs at (the photo is never
        enlarged); the short side of the working size must stay >= 32.
      loop: "none", "boomerang" or "seamless" (see the module docstring).
      preset, resample_from: see `load_model`.
      max_pixels: refuse photos with more pixels (default 50 MP, DESIGN §8).

    Raises:
      ImageInputError / ValueError with a message naming the problem; FileNotFoundError
      for missing weights.
    """
    import tensorflow as tf

    from spiritnet_tf.model import MULTIPLE

    num_frames = _check_number("num_frames", num_frames, 1, integer=True)
    if num_frames > MAX_FRAMES:
        raise ValueError(f"num_frames must be at most {MAX_FRAMES}, got {num_frames}")
    seed = _check_number("seed", seed, integer=True)
    magnitude = _check_number("magnitude", magnitude, 0.0)
    if direction is not None:
        direction = _check_number("direction", direction)
    working_side = _check_number("working_side", working_side, _images.DEFAULT_MIN_SIDE, integer=True)
    if loop not in _writers.LOOP_MODES:
        raise ValueError(f"unknown loop mode {loop!r}; choose one of {', '.join(_writers.LOOP_MODES)}")
    if depth is not None and inverse_depth is not None:
        raise ValueError("pass either depth or inverse_depth, not both")

    full = _images.load_image(image, max_pixels=max_pixels)
    height, width = full.shape[:2]
    if max(height, width) >= _MAX_SIDE:
        raise ValueError(
            f"this {width}x{height} photo has a side of {_MAX_SIDE} px or more; the "
            "full-resolution warp (OpenCV remap) needs both sides below that: crop or shrink it"
        )
    small_size = _images.working_size(height, width, working_side)
    if min(small_size) < _images.DEFAULT_MIN_SIDE:
        raise ValueError(
            f"the working size {small_size[1]}x{small_size[0]} of this {width}x{height} photo "
            f"has a side below {_images.DEFAULT_MIN_SIDE} px; raise working_side (--working-side)"
        )
    small = _images.resize_to_working_side(full, working_side)
    model = load_model(weights, preset=preset, resample_from=resample_from)

    inputs = {"image": small[None]}
    if depth is not None or inverse_depth is not None:
        z = _images.load_depth_map(
            depth if depth is not None else inverse_depth,
            kind="depth" if depth is not None else "inverse",
            size=small_size,
            max_pixels=max_pixels,
        )
    else:  # the depth net's estimate, as the model would make it (reflect-padded input)
        ph, pw = (-small_size[0]) % MULTIPLE, (-small_size[1]) % MULTIPLE
        padded = tf.pad(small[None], [[0, 0], [0, ph], [0, pw], [0, 0]], mode="REFLECT")
        z = model.cell.estimate_depth(padded).numpy()[0, : small_size[0], : small_size[1]]
    inputs["depth"] = z[None]
    full_mask = None
    if mask is not None:
        inputs["mask"] = _images.load_mask(mask, size=small_size, max_pixels=max_pixels)[None]
        full_mask = _images.load_mask(mask, size=(height, width), max_pixels=max_pixels)

    out = model(inputs, num_frames=num_frames, seed=seed, direction=direction, magnitude=magnitude,
                return_residuals=True)
    frames = np.asarray(out["frames"][0], np.float32)
    flows = np.asarray(out["flows"][0], np.float32)
    working_frames = np.concatenate([small[None], frames])
    return Animation(full, working_frames, flows, np.asarray(z, np.float32), loop=loop, mask=full_mask,
                     residuals=np.asarray(out["residuals"][0], np.float32))
