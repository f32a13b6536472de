"""``spiritnet_tf.animate``: one photo in, a full-resolution animation out (docs/design.md §2, §6, §8).

    anim = spiritnet_tf.animate("photo.jpg", num_frames=6, seed=0, weights="my.weights.h5")
    anim.frames   # uint8 [7, H, W, 3]: the input first, then 6 generated frames, full resolution
    anim.flows    # float32 [6, h, w, 2]: backward flows F_{t -> t-1} in pixels, working size
    anim.depth    # float32 [h, w, 1]: inverse depth z in (0, 1] (1 = nearest), working size
    anim.save("photo.gif")                 # streams the frames, one at a time, to the writer

How the full resolution is made: the photo is shrunk so that its long side is
``working_side`` (h x w) and the model runs there, giving T frames, T backward flows and
its synthesis residuals; `spiritnet_tf.fullres` (the one implementation, shared with the
SavedModel) turns them into frames at the photo's size: one warp of the full-size photo
by the upsampled flow composed back to the input (Lanczos-4 above the working size) plus
the upsampled residual, all under the ``edges`` rule (default "zoom": one centred crop
for the whole animation, so that no pixel shows content from outside the photo).
Static-mask pixels then show frame 0.

Frames are computed one at a time when they are iterated (`Animation.iter_frames`),
so writing an animation holds only a few full-size arrays, never all frames
(``.frames`` does stack them all: use `Animation.save` or `iter_frames` for huge photos).

Loops (``loop=``, docs/design.md §2): ``"none"`` writes the T+1 frames; ``"boomerang"`` the
order of `spiritnet_tf.io.apply_loop` (2T frames; the reversed half is recomputed, not
stored); ``"seamless"`` keeps T+1 frames and cross-fades two phase-shifted copies of
the motion, as Eulerian loops do: frame t = (1 - w) * A_t + w * B_t with L = T + 1 and
w = smoothstep(t / L) = 3s^2 - 2s^3, where A_t is frame t above and
B_t = warp(I0, -up(G_{L-t})) is the input moved *backwards* by the L - t steps of motion
still to come (motion reversed by negating the composed flow). Frame 0 is the input; the
frame after the last would be B at L - t = 0, the input again, so the last frame flows
into the first one step of motion away, with no jump (smoothstep rather than linear
weights makes the cross-fade's share of each step more even, so the closing step is no
larger than the others). ``.frames`` of a seamless animation hold these cross-faded
frames; ``.flows`` stay the model's.
"""

import numbers
import os

import cv2
import numpy as np

from spiritnet_tf.config import DEFAULT_EDGES, DEFAULT_MAX_ZOOM, DEFAULT_WEIGHTS, check_edges
from spiritnet_tf.io import images as _images
from spiritnet_tf.io import weights as _weights
from spiritnet_tf.io import writers as _writers
from spiritnet_tf.limits import MAX_ANIMATION_FRAMES as MAX_FRAMES  # public name kept
from spiritnet_tf.limits import MAX_PIXELS, MAX_REMAP_SIDE, MIN_SIDE, TRIM_AFTER_PIXELS
from spiritnet_tf.memory import release_freed_memory

__all__ = ["animate", "Animation", "load_model", "DEFAULT_WEIGHTS", "MAX_FRAMES", "check_outputs"]

DEFAULT_WORKING_SIDE = 448
DEFAULT_PRESET = _weights.DEFAULT_PRESET


# ----------------------------------------------------------------------------- weights


def load_model(weights=None, *, preset=DEFAULT_PRESET, resample_from=None, members=None):
    """The SpiritNet to animate with.

    Args:
      weights: None for the bundled default weights
        (``spiritnet_tf/weights/spiritnet_small.weights.h5``); a path to a ``.keras``
        model file (loaded with ``safe_mode=True``), to a ``.weights.h5`` file saved
        from a ``preset`` model (``SpiritNet.from_preset(preset).save_weights(...)``) or
        to a run directory (its ``model.keras``); or a `spiritnet_tf.model.SpiritNet`
        instance, used as it is.
      preset: the preset whose architecture a ``.weights.h5`` file fits.
      resample_from: None (keep the model's) or ``"previous"`` / ``"input"``
        (docs/design.md §3.9); a different mode gives a copy with the same weights.
      members: None (all of the model's) or how many of an ensemble's members to run,
        the first ones: the bundled weights are an ensemble of six, each member costing
        about a sixth of the time; fewer are faster but not what their gate measured.

    The rules (and the cache: a file is loaded once per process) are
    `spiritnet_tf.io.weights.load_model`'s, the owner of every loading rule.

    Raises:
      FileNotFoundError when the file (or the bundled default) is missing; ValueError
      for an unknown file type, a file that is not SpiritNet weights
      (`spiritnet_tf.io.WeightsFileError`) or weights that do not fit the preset.
    """
    return _weights.load_model(weights, preset=preset, resample_from=resample_from,
                               members=members)


# ----------------------------------------------------------------------------- warping


def opencv_warp(image, flow, sharp=False, first_row=0):
    """`spiritnet_tf.fullres.frame`'s warp on the host: OpenCV ``remap`` of [B, H, W, C]
    by backward flows [B, n, W, 2] for the output rows ``first_row .. first_row + n - 1``
    (``out(x) = image(x + flow(x))``), bilinear or, with ``sharp``, Lanczos-4
    (``INTER_LANCZOS4``, whose weights `spiritnet_tf.ops.lanczos_warp` reproduces in
    TensorFlow). Sample points outside [0, W-1] x [0, H-1] copy ``image(x)`` (the rule of
    the model's warp op). Much faster than the TensorFlow twin on a CPU.
    """
    image, flow = np.asarray(image, np.float32), np.asarray(flow, np.float32)
    height, width = image.shape[1:3]
    rows = flow.shape[1]
    band = image[:, first_row:first_row + rows]
    out = np.empty(band.shape, np.float32)
    grid_x = np.arange(width, dtype=np.float32)[None, :]
    grid_y = np.arange(first_row, first_row + rows, dtype=np.float32)[:, None]
    mode = cv2.INTER_LANCZOS4 if sharp else cv2.INTER_LINEAR
    for b in range(image.shape[0]):
        map_x, map_y = flow[b, ..., 0] + grid_x, flow[b, ..., 1] + grid_y
        warped = cv2.remap(image[b], map_x, map_y, mode, borderMode=cv2.BORDER_REPLICATE)
        out[b] = warped.reshape(out.shape[1:])
        outside = (map_x < 0) | (map_x > width - 1) | (map_y < 0) | (map_y > height - 1)
        out[b][outside] = band[b][outside]
    return out


# ----------------------------------------------------------------------------- result

# Output pixels per band of a full-resolution frame (`Animation.frame` makes large frames
# band by band: its temporary arrays stay about this many pixels, not the photo's).
BAND_PIXELS = 2_000_000
# Photos of at least this many pixels have the TensorFlow part of each frame (the sample
# flow and the resampled residual, `spiritnet_tf.fullres.frame_inputs`) run as one traced
# graph (`fullres.frame_inputs_traced`). Its trace, about 0.35 s once per process, pays
# off on large photos only (7 frames, one model, 2 cores: 600x400 0.52-0.53 s traced
# against 0.47-0.58 s eager; 1800x1200 2.00-2.26 against 2.13-2.41 s; the command line
# on a 4000x3000 photo 25.3-25.7 against 26.5-28.5 s, the same peak RSS).
TRACE_FRAME_PIXELS = 1_000_000


class Animation:
    """The result of `animate`: frames at the photo's resolution, flows and depth at the working size.

    Attributes:
      frames: uint8 ndarray [T+1, H, W, 3], frame 0 first (the photo, zoomed like the
        other frames when ``edges`` is "zoom"), at the input's resolution (computed and
        stacked on first access; the files `save` writes hold exactly these values,
        before any lossy codec). uint8 because that is what is written and because T+1
        full-resolution float frames of a large photo would not fit in memory;
        ``frames / 255`` gives float images in [0, 1].
      flows: float32 [T, h, w, 2], the model's backward flows ``F_t`` (frame t back to
        frame t-1) in pixels of the working size h x w (multiply by W/w, H/h for pixels
        of the full frames); not zoomed and not scaled by ``motion_scale``.
      depth: float32 [h, w, 1], inverse depth z in [1e-3, 1] (1 = nearest) used for the
        first flow (the depth net's estimate or the map you passed).
      working_frames: float32 [T+1, h, w, 3] in [0, 1]: the input at the working size,
        then the model's frames (no loop, no zoom applied).
      image: float32 [H, W, 3] in [0, 1], the photo as loaded.
      residuals: the model's synthesis residuals as given (None if not given).
      edges: "zoom" or "extend" (`spiritnet_tf.fullres`).
      warp_outside: the model's rule for samples outside the picture
        (`spiritnet_tf.config.SpiritNetConfig.warp_outside`), which the full-size
        frames follow.
      zoom: the centred zoom s >= 1 of every frame (1 with "extend").
      crop: (top, left, height, width) in the photo's pixels (pixel i spans [i, i + 1)):
        the part of the photo the frames show.
      motion_scale: 1, or less when ``max_zoom`` could not keep every sample inside the
        photo and the motion was scaled down to fit.
      num_frames: T. size: (H, W). working_size: (h, w). loop: the loop mode.

    Frame t is `spiritnet_tf.fullres.frame` (the formula shared with the SavedModel's
    ``serving_default``) with the photo warped by OpenCV. ``residuals`` (float32
    [T, h, w, 3], the model's ``return_residuals``) are its synthesis residuals; without
    them, or at the working size with the full motion, the residual is taken against the
    bilinear warp of the working-size input, which gives back the model's frames exactly.
    Static-mask pixels show frame 0 in every frame.

    Methods: `frame` (one frame, computed now), `iter_frames` (all T+1, streamed),
    `frame_order` (indices as written for the loop mode), `save`.
    """

    def __init__(self, image, working_frames, flows, depth, *, loop="none", mask=None,
                 residuals=None, edges=DEFAULT_EDGES, max_zoom=DEFAULT_MAX_ZOOM,
                 warp_outside="copy"):
        if loop not in _writers.LOOP_MODES:
            raise ValueError(f"unknown loop mode {loop!r}; choose one of {', '.join(_writers.LOOP_MODES)}")
        import tensorflow as tf

        from spiritnet_tf import fullres
        from spiritnet_tf.ops.flow import compose_flows

        edges, max_zoom = check_edges(edges, max_zoom)
        self.image = image
        self.residuals = residuals  # as given (the model's synthesis residuals), for copies
        self.working_frames = working_frames
        self.flows = flows
        self.depth = depth
        self.loop = loop
        self.edges = edges
        self.warp_outside = warp_outside
        self.num_frames = len(flows)
        self.size = image.shape[:2]
        self.working_size = working_frames.shape[1:3]
        self._upscaled = tuple(self.size) != tuple(self.working_size)  # Lanczos-4 motion then
        self._photo = np.asarray(image, np.float32)[None]  # a view: OpenCV warps it
        self._composed = compose_flows(np.asarray(flows, np.float32)[None])  # [1, T, h, w, 2]
        one = tf.ones([1])
        if edges == "zoom" and self.num_frames:
            zoom, scale = fullres.fit_zoom(self._composed, self.size, max_zoom,
                                           reverse=loop == "seamless")
        else:
            zoom, scale = one, one
        self._zoom, self._scale = zoom, scale
        self.zoom = float(zoom[0])
        self.motion_scale = float(scale[0])
        self.crop = tuple(float(v) for v in fullres.crop_box(zoom, self.size)[0])
        if residuals is not None and (self._upscaled or self.motion_scale < 1):
            self._residuals = tf.constant(np.asarray(residuals, np.float32)[None])
        else:  # against the bilinear warp: the model's frames exactly at the working size
            self._residuals = fullres.model_residuals(
                tf.constant(working_frames[:1]), tf.constant(working_frames[None, 1:]),
                self._composed, clamp=warp_outside == "clamp")
        self._mask = None
        if mask is not None:  # [H, W] bool at the output: the static pixels, zoomed
            self._mask = fullres.resample(mask[None], self.size, zoom).numpy()[0, ..., 0] > 0.5
        self._first = None  # frame 0 (float), kept when the mask needs it
        self._frames = None
        self._input_chunks = {}  # sign -> (first frame, flows, residuals): `_small_frame_inputs`

    def _warped(self, t, sign=1.0):
        """The photo warped by ``sign`` times the composed flow of frame t (t = 0: none)."""
        from spiritnet_tf import fullres

        height, width = self.size
        composed = residual = inputs = None  # frame 0: no flow, no residual
        if height * width >= TRACE_FRAME_PIXELS:
            inputs = fullres.frame_inputs_traced
            if t:
                composed = sign * self._composed[:, t - 1]
                residual = None if sign < 0 else self._residuals[:, t - 1]
        elif t:  # the chunk's inputs (composed and residual are not needed then)
            flow, resampled = self._small_frame_inputs(t, sign)
            def inputs(composed, residual, size, zoom, scale, rows, clamp):  # the band's rows
                return (flow[:, rows[0]:rows[1]],
                        None if resampled is None else resampled[:, rows[0]:rows[1]])
        out = np.empty((height, width, 3), np.float32)
        band = max(1, BAND_PIXELS // width)
        for start in range(0, height, band):  # bounded memory for large photos
            rows = (start, min(height, start + band))
            out[rows[0]:rows[1]] = fullres.frame(
                self._photo, composed, residual, self._zoom, self._scale, sharp=self._upscaled,
                warp=opencv_warp, rows=rows, clamp=self.warp_outside == "clamp",
                inputs=inputs)[0]
        return out

    def _small_frame_inputs(self, t, sign):
        """`fullres.frame_inputs` of frame t >= 1 (``sign`` as `_warped`'s) of a photo below
        `TRACE_FRAME_PIXELS`, made for a chunk of consecutive frames at once (about
        `BAND_PIXELS` output pixels; one chunk kept per sign, so a boomerang's way back and
        a seamless loop's reverse frames reuse it). A small frame's inputs are a few
        hundred eager operations on small arrays, whose dispatch is most of their time:
        one call for the example's 6 frames instead of six (the same values)."""
        import tensorflow as tf

        from spiritnet_tf import fullres

        per_chunk = max(1, BAND_PIXELS // (self.size[0] * self.size[1]))
        first = (t - 1) // per_chunk * per_chunk  # the chunk's first frame, 0-based
        chunk = self._input_chunks.get(sign)
        if chunk is None or chunk[0] != first:
            stop = min(self.num_frames, first + per_chunk)
            count = stop - first
            flows, residuals = fullres.frame_inputs(
                sign * self._composed[0, first:stop],
                None if sign < 0 else self._residuals[0, first:stop], self.size,
                tf.repeat(self._zoom, count), tf.repeat(self._scale, count),
                clamp=self.warp_outside == "clamp")
            chunk = self._input_chunks[sign] = (first, flows, residuals)
        _, flows, residuals = chunk
        k = t - 1 - first
        return flows[k:k + 1], None if residuals is None else residuals[k:k + 1]

    def frame(self, t):
        """Frame t (0 = the input, ..., T) as uint8 [H, W, 3], computed now."""
        if not 0 <= t <= self.num_frames:
            raise IndexError(f"frame {t} out of range 0..{self.num_frames}")
        if t == 0 and self.zoom == 1.0:
            return _writers.to_uint8(self.image)
        out = self._warped(t)
        if t and self.loop == "seamless":
            period = self.num_frames + 1
            s = t / period
            weight = np.float32(3 * s * s - 2 * s**3)  # smoothstep
            out *= 1 - weight
            out += weight * self._warped(period - t, sign=-1.0)
        if self._mask is not None and t:
            if self._first is None:
                self._first = self.image if self.zoom == 1.0 else self._warped(0)
            out[self._mask] = self._first[self._mask]
        frame = _writers.to_uint8(out)
        del out
        if self.size[0] * self.size[1] >= TRIM_AFTER_PIXELS:
            release_freed_memory()  # the bands' temporaries, before the next frame's
        return frame

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
        """Writes the animation (``.gif``, ``.mp4``, ``.webp``, a Motion Photo ``.MP.jpg``,
        a Live Photo ``.jpg`` + ``.mov`` or a folder of PNGs; `spiritnet_tf.io.writers`).

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
    extension = _writers.output_extension(path)  # ValueError for an unknown extension
    base = os.path.normpath(path)
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
            loop="none", preset=DEFAULT_PRESET, resample_from=None, members=None,
            max_pixels=MAX_PIXELS, edges=DEFAULT_EDGES, max_zoom=DEFAULT_MAX_ZOOM,
            progress=False):
    """Animates one photo; returns an `Animation` (frames at the photo's resolution).

    Args:
      image: a file path, encoded image bytes, a PIL image or an array [H,W,(C)] (uint8,
        uint16 or float in [0, 1]); read by `spiritnet_tf.io.load_image` (grayscale ->
        RGB, alpha composited on white, 16-bit scaled, EXIF orientation applied; too
        small, too large, unreadable -> `spiritnet_tf.io.ImageInputError`).
      num_frames: T generated frames, 1..`spiritnet_tf.limits.MAX_ANIMATION_FRAMES` (the
        result holds T+1, input first).
      seed: int seed of the random first flow (DAFR): same seed, same animation.
      weights: see `load_model` (None = the bundled default weights).
      direction: direction of motion in degrees (docs/design.md §2: 0 = content moving right,
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
      preset, resample_from, members: see `load_model`.
      max_pixels: refuse photos with more pixels (default 50 MP, docs/design.md §8).
      edges: "zoom" (default): every frame shows the same centred crop, the smallest (up
        to ``max_zoom``, default 1.15) that keeps every pixel of every frame inside the
        photo; if that is not enough the motion is scaled down to fit (the result's
        ``motion_scale`` < 1). "extend": no crop; content from outside the photo shows as
        repeated border pixels. See `spiritnet_tf.fullres`.
      progress: show a tqdm progress bar over the model's steps (one per generated
        frame; the frames at the photo's resolution are made later, as they are saved).

    Raises:
      ImageInputError / ValueError with a message naming the problem; FileNotFoundError
      for missing weights.
    """
    num_frames = _check_number("num_frames", num_frames, 1, integer=True)
    if num_frames > MAX_FRAMES:
        raise ValueError(f"num_frames must be at most {MAX_FRAMES}, got {num_frames}")
    seed = _check_number("seed", seed, integer=True)
    magnitude = _check_number("magnitude", magnitude, 0.0)
    if direction is not None:
        direction = _check_number("direction", direction)
    working_side = _check_number("working_side", working_side, MIN_SIDE, integer=True)
    if loop not in _writers.LOOP_MODES:
        raise ValueError(f"unknown loop mode {loop!r}; choose one of {', '.join(_writers.LOOP_MODES)}")
    edges, max_zoom = check_edges(edges, max_zoom)
    if depth is not None and inverse_depth is not None:
        raise ValueError("pass either depth or inverse_depth, not both")

    full = _images.load_image(image, max_pixels=max_pixels)
    height, width = full.shape[:2]
    if max(height, width) >= MAX_REMAP_SIDE:
        raise ValueError(
            f"this {width}x{height} photo has a side of {MAX_REMAP_SIDE} px or more; the "
            "full-resolution warp (OpenCV remap) needs both sides below that: crop or shrink it"
        )
    small_size = _images.working_size(height, width, working_side)
    if min(small_size) < MIN_SIDE:
        raise ValueError(
            f"the working size {small_size[1]}x{small_size[0]} of this {width}x{height} photo "
            f"has a side below {MIN_SIDE} px; raise working_side (--working-side)"
        )
    small = _images.resize_to_working_side(full, working_side)
    model = load_model(weights, preset=preset, resample_from=resample_from, members=members)

    inputs = {"image": small[None]}
    if depth is not None or inverse_depth is not None:
        z = _images.load_depth_map(
            depth if depth is not None else inverse_depth,
            kind="depth" if depth is not None else "inverse",
            size=small_size,
            max_pixels=max_pixels,
        )
    else:  # the depth net's estimate, as the model makes it for frame 0
        z = model.estimate_depth(small[None], trace="auto").numpy()[0]
    inputs["depth"] = z[None]
    full_mask = None
    if mask is not None:
        inputs["mask"] = _images.load_mask(mask, size=small_size, max_pixels=max_pixels)[None]
        full_mask = _images.load_mask(mask, size=(height, width), max_pixels=max_pixels)

    bar = None
    if progress:
        from tqdm import tqdm

        named = isinstance(image, (str, os.PathLike))  # a file: its name, as the save bar
        bar = tqdm(total=num_frames, unit="frame",
                   desc=f"{os.path.basename(image)}: model" if named else "model")
    try:
        out = model.infer(inputs, num_frames=num_frames, seed=seed, direction=direction,
                          magnitude=magnitude, return_residuals=True,
                          progress=None if bar is None else lambda t, total: bar.update(1))
    finally:
        if bar is not None:
            bar.close()
    frames = np.asarray(out["frames"][0], np.float32)
    flows = np.asarray(out["flows"][0], np.float32)
    working_frames = np.concatenate([small[None], frames])
    residuals = np.asarray(out["residuals"][0], np.float32)
    del out
    release_freed_memory()  # the run's tensors (about 300 MB at 448 px): before the frames
    return Animation(full, working_frames, flows, np.asarray(z, np.float32), loop=loop, mask=full_mask,
                     residuals=residuals, edges=edges,
                     max_zoom=max_zoom, warp_outside=model.config.warp_outside)
