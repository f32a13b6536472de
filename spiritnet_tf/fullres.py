"""Full-resolution frames and the ``edges`` rule: one implementation for `animate` and the SavedModel.

The model runs at a working size h x w and returns T frames ``M_t``, T backward flows
``F_t`` and its synthesis residuals ``R_t``. The flows are composed back to the input
(`spiritnet_tf.ops.flow.compose_flows`: ``G_t``), and output frame t at the photo's size
H x W is

    frame_t(y) = warp(I0, Z_t)(y) + R_t(x(y))        (frame 0: warp(I0, Z_0))
    Z_t(y) = x(y) - y + m * up(G_t)(x(y))

* ``x(y) = c + (y - c) / s`` is the centred zoom by ``s >= 1`` (c the centre of the
  picture): the output shows the centred crop of 1/s of each side, at the output size;
  ``s = 1`` (edges "extend") is no crop.
* ``up`` is bilinear resampling from the working grid (half-pixel centres, edges clamped,
  as `tf.image.resize`), flows also multiplied by W/w, H/h; ``m`` is the motion scale
  (1 unless the zoom alone cannot keep the samples inside, see `fit_zoom`).
* ``warp`` is one backward warp of the full-size input photo: Lanczos-4 when the photo is
  larger than the working size (sharper than bilinear or bicubic sub-pixel shifts), else
  bilinear. Samples outside the picture copy the pixel itself (the warp op's rule), or,
  for a model with ``warp_outside="clamp"`` (``clamp=True`` here), are moved to the
  nearest point of the photo (the nearest edge pixel, as the model renders them).
* ``R_t``: the model's synthesis residual when the photo is larger than the working size
  or the motion was scaled down; otherwise ``M_t - bilinear(I0, G_t)`` at the working size,
  so that without zoom the formula gives back the model's frames exactly.

Edges (`EDGES`): "extend" (s = 1, m = 1) shows whatever the warp finds near the border,
content from outside the photo included (the copy rule then repeats border pixels);
"zoom" (the default) picks, once per animation, the smallest ``s`` in [1, max_zoom] for
which every sample of every frame lies inside the photo, and if ``max_zoom`` is not
enough, keeps ``s = max_zoom`` and the largest ``m < 1`` that fits (`fit_zoom`).
TFLite and ONNX files always return "extend" frames; a host applies the crop with
`crop_box` and `fit_zoom`.
"""

import tensorflow as tf

from spiritnet_tf.config import DEFAULT_EDGES, DEFAULT_MAX_ZOOM, EDGES
from spiritnet_tf.ops.flow import bilinear_warp, clamp_to_frame, compose_flows
from spiritnet_tf.ops.warp import lanczos_warp

__all__ = ["EDGES", "DEFAULT_EDGES", "DEFAULT_MAX_ZOOM", "fit_zoom", "crop_box", "resample",
           "sample_flow", "frame", "frame_inputs", "frame_inputs_traced", "frames",
           "model_residuals"]

MARGIN = 1e-3  # px: every zoomed sample stays this far inside the photo's outermost pixel centres
_SEARCH_STEPS = 14  # bisection steps of fit_zoom (2^-14 of the interval)
# Halvings answered per call of `_FitCheck` (`_bisect`): the zoom's questions are cheap
# (127 candidates, two calls); the motion scale's (`_FitCheck.motion`, at max_zoom) test
# the points that can leave the photo per candidate: 3 a call (7 calls) measured faster
# than 127 (0.27-0.28 against 0.33-0.38 s for the whole fit_zoom of the example's flows).
_ZOOM_LEVELS, _MOTION_LEVELS = 7, 2


def _positions(n_out, n_in, zoom):
    """Output pixels 0..n_out-1 of one axis under a centred ``zoom`` [B]: their source
    position ``x`` [B, n_out] in output pixels, and ``u``, the same on the grid of
    ``n_in`` samples (half-pixel centres)."""
    n_out_f = tf.cast(n_out, tf.float32)
    centre = (n_out_f - 1.0) / 2.0
    x = centre + (tf.range(n_out_f)[None, :] - centre) / zoom[:, None]
    return x, _to_grid(x, n_out_f, n_in)


def _to_grid(x, n_out, n_in):
    return (x + 0.5) * tf.cast(n_in, tf.float32) / tf.cast(n_out, tf.float32) - 0.5


def _lerp(field, u, axis):
    """Linear interpolation of ``field`` [B, h, w, C] along ``axis`` (1 or 2) at positions
    ``u`` [B, n] (clamped to the grid): [B, n, w, C] or [B, h, n, C]."""
    size = tf.shape(field)[axis]
    u = tf.clip_by_value(u, 0.0, tf.cast(size - 1, tf.float32))
    lower = tf.cast(tf.floor(u), tf.int32)
    upper = tf.minimum(lower + 1, size - 1)
    weight = u - tf.floor(u)
    weight = weight[:, :, None, None] if axis == 1 else weight[:, None, :, None]
    a = tf.gather(field, lower, axis=axis, batch_dims=1)
    b = tf.gather(field, upper, axis=axis, batch_dims=1)
    return a + (b - a) * weight


def resample(field, size, zoom=None, rows=None):
    """Bilinear resampling of ``field`` [B, h, w, C] to ``size`` (H, W) under a centred
    ``zoom`` [B] (None: 1): output y takes the field at ``x(y)`` (module docstring).
    Without zoom this equals ``tf.image.resize(field, size, "bilinear")``. ``rows``
    ``(start, stop)``: only those output rows (a band of the same result)."""
    field = tf.convert_to_tensor(field, tf.float32)
    if zoom is None:
        zoom = tf.ones(tf.shape(field)[:1])
    _, uy = _positions(size[0], tf.shape(field)[1], zoom)
    _, ux = _positions(size[1], tf.shape(field)[2], zoom)
    if rows is not None:
        uy = uy[:, rows[0]:rows[1]]
    return _lerp(_lerp(field, uy, 1), ux, 2)


def sample_flow(composed, size, zoom, motion_scale, rows=None, clamp=False):
    """``Z_t`` [B, H, W, 2]: backward flow of output frame t into the photo, in its pixels.

    ``composed``: ``G_t`` [B, h, w, 2] in working-size pixels, or None for frame 0;
    ``size``: (H, W) of the photo; ``zoom``, ``motion_scale``: [B] (`fit_zoom`);
    ``rows`` ``(start, stop)``: only those output rows, [B, stop - start, W, 2];
    ``clamp``: every sample point moved to the nearest point of the photo (the model's
    ``warp_outside="clamp"``).
    """
    height, width = size[0], size[1]
    xs, _ = _positions(width, width, zoom)
    ys, _ = _positions(height, height, zoom)
    dx = xs - tf.range(tf.cast(width, tf.float32))[None]  # [B, W]
    dy = ys - tf.range(tf.cast(height, tf.float32))[None]  # [B, H]
    if rows is not None:
        dy = dy[:, rows[0]:rows[1]]
    zeros = tf.zeros(tf.stack([tf.shape(zoom)[0], tf.shape(dy)[1], width]))
    out = tf.stack([zeros + dx[:, None, :], zeros + dy[:, :, None]], axis=-1)
    if composed is not None:
        shape = tf.shape(composed)
        scale = tf.stack([tf.cast(width, tf.float32) / tf.cast(shape[2], tf.float32),
                          tf.cast(height, tf.float32) / tf.cast(shape[1], tf.float32)])
        out += motion_scale[:, None, None, None] * resample(composed, size, zoom, rows) * scale
    if clamp:
        out = clamp_to_frame(out, size, 0 if rows is None else rows[0])
    return out


def _fits(composed, size, zoom, motion_scale):
    """[B] bool: every sample of every frame of ``composed`` [B, N, h, w, 2] stays inside.

    Checked on the working grid's sample positions and the photo's borders, each clamped
    into the zoomed crop: ``x + m up(G)(x)`` is bilinear between them, so its extremes over
    the crop are at these points (module docstring of `fit_zoom`).
    """
    shape = tf.shape(composed)
    batch, steps, h, w = shape[0], shape[1], shape[2], shape[3]
    limits = []
    points = []
    for n_out, n_in in ((size[0], h), (size[1], w)):
        n_out_f = tf.cast(n_out, tf.float32)
        centres = (tf.range(tf.cast(n_in, tf.float32)) + 0.5) * n_out_f / tf.cast(n_in, tf.float32) - 0.5
        x = tf.concat([[0.0], centres, [n_out_f - 1.0]], 0)[None]  # [1, n_in + 2]
        centre = (n_out_f - 1.0) / 2.0
        half = centre / zoom[:, None]
        x = tf.clip_by_value(x, centre - half, centre + half)  # [B, n_in + 2]
        points.append(x)
        limits.append(n_out_f - 1.0)
    (ys, xs) = points
    flat = tf.reshape(composed, tf.concat([[-1], shape[2:]], 0))  # [B*N, h, w, 2]
    repeat = lambda p: tf.repeat(p, steps, axis=0)  # noqa: E731  [B*N, n]
    uy = _to_grid(repeat(ys), size[0], h)
    ux = _to_grid(repeat(xs), size[1], w)
    values = _lerp(_lerp(flat, uy, 1), ux, 2)  # [B*N, ny, nx, 2] working px
    scale = tf.stack([tf.cast(size[1], tf.float32) / tf.cast(w, tf.float32),
                      tf.cast(size[0], tf.float32) / tf.cast(h, tf.float32)])
    m = repeat(motion_scale[:, None])[:, :, None, None]  # [B*N, 1, 1, 1]
    px = repeat(xs)[:, None, :] + m[..., 0] * values[..., 0] * scale[0]
    py = repeat(ys)[:, :, None] + m[..., 0] * values[..., 1] * scale[1]
    inside = ((px >= MARGIN) & (px <= limits[1] - MARGIN)
              & (py >= MARGIN) & (py <= limits[0] - MARGIN))
    inside = tf.reduce_all(inside, axis=[1, 2])
    return tf.reduce_all(tf.reshape(inside, tf.stack([batch, steps])), axis=1)


class _FitCheck:
    """`_fits` for many zooms and motion scales of the same flows, with the same answers.

    `_fits` resamples every frame at all its sample points for each (zoom, m): the
    bisections of `fit_zoom` ask about 30 times. The points are the unzoomed ones clamped
    into the crop, and clamping leaves a point inside the crop unchanged, so the values
    there are those at the unclamped points, resampled once here (``_values``). A zoom
    only adds the points clamped onto the crop's edges: the first and last row (every
    row clamped to an edge equals them) and the first and last column, resampled per
    question from the rows or the four columns of the field they need, with `_lerp`'s
    operations in its order, so every value and every comparison is `_fits`'s own.
    """

    def __init__(self, composed, size):
        self.size = size
        shape = tf.shape(composed)
        self.batch, self.steps, self.h, self.w = shape[0], shape[1], shape[2], shape[3]
        self.flat = tf.reshape(composed, tf.concat([[-1], shape[2:]], 0))  # [B*N, h, w, 2]
        self.points, self.centres, self.limits = [], [], []
        for n_out, n_in in ((size[0], self.h), (size[1], self.w)):
            n_out_f = tf.cast(n_out, tf.float32)
            centres = (tf.range(tf.cast(n_in, tf.float32)) + 0.5) * n_out_f / tf.cast(n_in, tf.float32) - 0.5
            self.points.append(tf.concat([[0.0], centres, [n_out_f - 1.0]], 0)[None])  # [1, n_in + 2]
            self.centres.append((n_out_f - 1.0) / 2.0)
            self.limits.append(n_out_f - 1.0)
        self.scale = tf.stack([tf.cast(size[1], tf.float32) / tf.cast(self.w, tf.float32),
                               tf.cast(size[0], tf.float32) / tf.cast(self.h, tf.float32)])
        ones = tf.ones(tf.stack([self.batch, 1]))
        uy = _to_grid(self._repeat(ones * self.points[0]), size[0], self.h)
        ux = _to_grid(self._repeat(ones * self.points[1]), size[1], self.w)
        self._values = _lerp(_lerp(self.flat, uy, 1), ux, 2)  # [B*N, ny, nx, 2] unclamped
        # With the full motion (m = 1) whether each unclamped point is outside does not
        # depend on the zoom either: kept once, as 1.0 (outside) / 0.0.
        raw = [self._repeat(ones * p) for p in self.points]
        self._outside_full = self._outside(raw[1][:, None, :], raw[0][:, :, None], self._values, 1.0)
        # For 0 <= m <= 1 a point's x + m u lies between x (m = 0) and x + u (m = 1), in
        # float32 too (each rounding is monotone in m), so only points outside at m = 0
        # or m = 1 can be outside at any m: a scaled-down motion's questions test just
        # those (`_suspects`: [P, 3] indices into [B*N, ny, nx], their values, x and y).
        still = self._outside(raw[1][:, None, :], raw[0][:, :, None], tf.zeros_like(self._values), 1.0)
        index = tf.where(tf.maximum(self._outside_full, still) > 0.0)
        self._suspects = (index, tf.gather_nd(self._values, index),
                          tf.gather_nd(raw[1], index[:, ::2]), tf.gather_nd(raw[0], index[:, :2]))

    def _repeat(self, p):
        return tf.repeat(p, self.steps, axis=0)

    def _inside(self, xs, ys, values, m):
        """`_fits`' test of every sample, broadcast: x positions ``xs``, y positions
        ``ys``, flows ``values`` [..., 2] and motion scales ``m`` -> bool (e.g. xs
        [B*N, 1, nx'], ys [B*N, ny', 1], values [B*N, ny', nx', 2], m [B*N, 1, 1] ->
        [B*N, ny', nx'])."""
        px = xs + m * values[..., 0] * self.scale[0]
        py = ys + m * values[..., 1] * self.scale[1]
        return ((px >= MARGIN) & (px <= self.limits[1] - MARGIN)
                & (py >= MARGIN) & (py <= self.limits[0] - MARGIN))

    def _outside(self, xs, ys, values, m):
        return 1.0 - tf.cast(self._inside(xs, ys, values, m), tf.float32)

    def __call__(self, zoom, motion_scale=None):
        """`_fits` (composed, size, zoom, motion_scale), for K candidates at once.

        ``zoom`` [B] -> [B] bool, or [B, K] -> [B, K] (candidate k of item b: one
        question each, answered as `_fits` answers it); ``motion_scale`` None (the full
        motion, answered from the kept test of the unclamped points) or of ``zoom``'s
        shape, within [0, 1] (tested on the points that can be outside, `__init__`).
        Asking K questions in one call costs little more than one: eager code is
        dominated by the dispatch of these few hundred small operations.
        """
        single = zoom.shape.rank == 1
        zoom = zoom[:, None] if single else zoom  # [B, K]
        if motion_scale is not None and single:
            motion_scale = motion_scale[:, None]
        ok = self._answer(self._zoomed(zoom), motion_scale)
        if single:
            return tf.reshape(ok, tf.shape(zoom)[:1])  # zoom's static shape (a while loop's variable)
        return ok

    def motion(self, zoom):
        """The questions about one ``zoom`` [B] and many motion scales: a function of
        ``motion_scale`` [B, K] (within [0, 1]) -> [B, K] bool, each answer that of
        ``self(zoom, motion_scale[:, k])``. What depends on the zoom alone (the clamped
        points, the edges' resampled flows) is made once, here, so each call is a few
        comparisons (the search for the motion scale asks at one zoom, max_zoom)."""
        zoomed = self._zoomed(zoom[:, None])
        return lambda motion_scale: self._answer(zoomed, motion_scale)

    def _zoomed(self, zoom):
        """What the questions about the zooms [B, Kz] share whatever the motion scale:
        the clamped points, where clamping changes nothing, and the flows resampled at the
        points clamped onto the crop's edges."""
        candidates = tf.shape(zoom)[1]
        clamped, kept = [], []
        ones = tf.ones(tf.stack([self.batch, candidates, 1]))
        for x, centre in zip(self.points, self.centres):
            x = ones * x  # [B, Kz, n] (clip_by_value does not broadcast its input)
            half = centre / zoom[:, :, None]
            low, high = centre - half, centre + half
            clamped.append(self._repeat(tf.clip_by_value(x, low, high)))  # [B*N, Kz, n]: _fits' points
            kept.append(self._repeat((x >= low) & (x <= high)))  # where clamping changes nothing
        (ys, xs), (keep_y, keep_x) = clamped, kept
        flat_k = lambda t: tf.reshape(t, tf.concat([[-1], tf.shape(t)[2:]], 0))  # noqa: E731
        split_k = lambda t: tf.reshape(t, tf.concat([[-1, candidates], tf.shape(t)[1:]], 0))  # noqa: E731
        last = [tf.shape(ys)[2] - 1, tf.shape(xs)[2] - 1]
        # The first and last row (points clamped onto the top and bottom edges), every column.
        edge_y = tf.gather(ys, [0, last[0]], axis=2)  # [B*N, Kz, 2]
        rows = _lerp(self.flat, _to_grid(tf.reshape(edge_y, tf.stack([-1, 2 * candidates])),
                                         self.size[0], self.h), 1)  # [B*N, 2Kz, w, 2]
        rows = tf.reshape(rows, tf.stack([-1, 2, self.w, 2]))  # [B*N*Kz, 2, w, 2]
        row_values = _lerp(rows, _to_grid(flat_k(xs), self.size[1], self.w), 2)  # [B*N*Kz, 2, nx, 2]
        # The first and last column (clamped onto the left and right edges), every row:
        # `_lerp` along the columns, on the four columns it reads.
        edge_x = tf.gather(xs, [0, last[1]], axis=2)  # [B*N, Kz, 2]
        u = tf.clip_by_value(_to_grid(edge_x, self.size[1], self.w), 0.0, tf.cast(self.w - 1, tf.float32))
        lower = tf.cast(tf.floor(u), tf.int32)
        upper = tf.minimum(lower + 1, self.w - 1)
        weight = flat_k(u - tf.floor(u))[:, None, :, None]  # [B*N*Kz, 1, 2, 1]
        columns = tf.gather(self.flat, tf.reshape(tf.concat([lower, upper], 2), tf.stack([-1, 4 * candidates])),
                            axis=2, batch_dims=1)  # [B*N, h, 4Kz, 2]
        columns = tf.reshape(columns, tf.stack([-1, self.h, candidates, 4, 2]))
        columns = flat_k(tf.transpose(columns, [0, 2, 1, 3, 4]))  # [B*N*Kz, h, 4, 2]
        columns = _lerp(columns, _to_grid(flat_k(ys), self.size[0], self.h), 1)  # [B*N*Kz, ny, 4, 2]
        a, b = columns[:, :, :2], columns[:, :, 2:]
        column_values = a + (b - a) * weight  # [B*N*Kz, ny, 2, 2]
        return {"keep_x": keep_x, "keep_y": keep_y,
                "rows": (xs[:, :, None, :], edge_y[:, :, :, None], split_k(row_values)),
                "columns": (edge_x[:, :, None, :], ys[:, :, :, None], split_k(column_values))}

    def _answer(self, zoomed, motion_scale):
        """[B, K] bool: the questions about `_zoomed`'s Kz zooms with ``motion_scale``
        None (the full motion; K = Kz) or [B, K] (K = Kz, or any K for Kz = 1)."""
        keep_x, keep_y = zoomed["keep_x"], zoomed["keep_y"]
        if motion_scale is None:
            m = 1.0
            # Points inside the crop (the unclamped points' values): none outside the photo.
            # Counted as keep_y . outside . keep_x (exact: counts below 2^24).
            per_row = tf.linalg.matvec(self._outside_full[:, None], tf.cast(keep_x, tf.float32))
            ok = tf.reduce_sum(per_row * tf.cast(keep_y, tf.float32), axis=2) == 0.0  # [B*N, K]
        else:  # (0 <= m <= 1) the same test on the points that can be outside (`__init__`)
            m = self._repeat(motion_scale)[:, :, None, None]  # [B*N, K, 1, 1]
            index, values, xs_p, ys_p = self._suspects
            item = index[:, 0]
            inside = self._inside(xs_p[:, None], ys_p[:, None], values[:, None],
                                  tf.gather(m[:, :, 0, 0], item))  # [P, K]
            kept_p = (tf.gather_nd(tf.transpose(keep_x, [0, 2, 1]), index[:, ::2])  # keep_x[b, :, j]
                      & tf.gather_nd(tf.transpose(keep_y, [0, 2, 1]), index[:, :2]))  # [P, Kz]
            bad = tf.cast(kept_p & ~inside, tf.float32)
            ok = tf.math.unsorted_segment_sum(bad, item, tf.shape(keep_x)[0]) == 0.0  # [B*N, K]
        # The edges, every candidate's points against its motion scale: [B*N, K, n, 2].
        for xs, ys, values in (zoomed["rows"], zoomed["columns"]):
            ok &= tf.reduce_all(self._inside(xs, ys, values, m), axis=[2, 3])
        return tf.reduce_all(tf.reshape(ok, tf.stack([self.batch, self.steps, -1])), axis=1)


def _bisect(fits, lo, hi, levels):
    """The bisection of `fit_zoom`: ``hi`` [B] after `_SEARCH_STEPS` halvings of [lo, hi],
    keeping ``fits(hi)`` true (or both ends false) for a monotone ``fits``.

    ``fits`` answers [B, K] candidates at once: each of the rounds asks for the
    ``K = 2**levels - 1`` midpoints of the next ``levels`` halvings (every node of that
    subtree of the search, each computed as ``(lo + hi) / 2`` from its parent interval as
    the one-at-a-time search does), then walks down with the answers, so ``hi`` is
    bit for bit what `_SEARCH_STEPS` one-question steps give, in `_SEARCH_STEPS / levels`
    calls of ``fits``.
    """
    if _SEARCH_STEPS % levels:
        raise ValueError(f"levels must divide {_SEARCH_STEPS}, got {levels}")
    shape = lo.shape

    def step(i, lo, hi):
        bounds, mids = [(lo, hi)], []
        for node in range(2 ** levels - 1):  # heap order: the children of n are 2n+1, 2n+2
            low, high = bounds[node]
            mid = (low + high) / 2
            mids.append(mid)
            bounds += [(low, mid), (mid, high)]
        mids = tf.stack(mids, axis=1)  # [B, K]
        answers = fits(mids)
        node = tf.zeros(tf.shape(lo), tf.int32)
        for _ in range(levels):
            mid = tf.gather(mids, node[:, None], axis=1, batch_dims=1)[:, 0]
            ok = tf.gather(answers, node[:, None], axis=1, batch_dims=1)[:, 0]
            lo, hi = tf.where(ok, lo, mid), tf.where(ok, mid, hi)
            node = 2 * node + tf.where(ok, 1, 2)
        return i + 1, tf.ensure_shape(lo, shape), tf.ensure_shape(hi, shape)  # a loop's variables

    return tf.while_loop(lambda i, lo, hi: i < _SEARCH_STEPS // levels, step, (0, lo, hi))[2]


def fit_zoom(composed, size, max_zoom=DEFAULT_MAX_ZOOM, *, reverse=False):
    """The "zoom" rule: (zoom [B], motion_scale [B]) for flows ``composed`` [B, T, h, w, 2].

    ``zoom`` is the smallest ``s`` in [1, max_zoom] (to 2^-14 of the interval, rounded
    up) for which every sample ``x + up(G_t)(x)`` of every frame, x in the centred crop
    of 1/s, lies inside the photo of ``size`` (H, W) by `MARGIN`; motion_scale is 1. When
    even ``max_zoom`` is not enough, zoom is ``max_zoom`` and motion_scale the largest
    ``m`` in [0, 1] (rounded down) for which ``x + m up(G_t)(x)`` fits. ``reverse``: the
    negated flows must fit too (a seamless loop warps the input backwards as well).

    Both searches are bisections, exact because fitting is monotone: a smaller crop is
    a subset of a larger one, and ``x + m u`` inside for m = 0 and m = m1 holds for every
    m in between.
    """
    composed = tf.convert_to_tensor(composed, tf.float32)
    if reverse:
        composed = tf.concat([composed, -composed], axis=1)
    ones = tf.ones(tf.shape(composed)[:1])
    max_zoom = tf.cast(max_zoom, tf.float32) * ones

    fits = _FitCheck(composed, size)  # `_fits`, with the resampling shared by all questions
    eager = tf.executing_eagerly()
    unzoomed = fits(ones)
    need_less = ~fits(max_zoom)
    if eager and bool(tf.reduce_all(unzoomed | need_less)):
        zoom = ones  # unused by the tf.where s below; eager code skips the search
    else:
        zoom = _bisect(fits, ones, max_zoom, _ZOOM_LEVELS)
    zoom = tf.where(unzoomed, ones, zoom)
    # Motion scale: fits for m = 0 (the crop lies inside the photo); the largest m that fits,
    # found on 1 - m so that `_bisect`'s invariant (the upper end fits) holds.
    if eager and not bool(tf.reduce_any(need_less)):
        shrink = tf.zeros_like(ones)  # unused by tf.where below; eager code skips the search
    else:
        at_max_zoom = fits.motion(max_zoom)
        shrink = _bisect(lambda d: at_max_zoom(1.0 - d), tf.zeros_like(ones), ones, _MOTION_LEVELS)
    return tf.where(need_less, max_zoom, zoom), tf.where(need_less, 1.0 - shrink, ones)


def crop_box(zoom, size):
    """[B, 4] float32 (top, left, height, width) in the photo's pixels: the centred crop
    that the output frames show (its outermost pixel centres map to the output's)."""
    out = []
    for n in (size[0], size[1]):
        n = tf.cast(n, tf.float32)
        extent = n / zoom  # the crop's side in pixels (pixel area, not centres)
        out.append(((n - extent) / 2, extent))
    (top, height), (left, width) = out
    return tf.stack([top, left, height, width], axis=-1)


def model_residuals(small, model_frames, composed, clamp=False):
    """``M_t - bilinear(I0, G_t)`` [B, T, h, w, 3]: the residual that gives back the
    model's frames exactly at the working size (``small`` [B, h, w, 3]); with ``clamp``
    the warp's samples are clamped to the picture (`frame`'s ``clamp``)."""
    steps = tf.shape(composed)[1]
    repeated = tf.repeat(small[:, None], steps, axis=1)
    return model_frames - bilinear_warp(repeated, clamp_to_frame(composed) if clamp else composed)


def _warp_tf(image, flow, sharp):
    if isinstance(sharp, bool):
        return lanczos_warp(image, flow) if sharp else bilinear_warp(image, flow)
    return tf.cond(sharp, lambda: lanczos_warp(image, flow), lambda: bilinear_warp(image, flow))


def frame(photo, composed, residual, zoom, motion_scale, *, sharp, warp=None, rows=None,
          clamp=False, inputs=None):
    """One output frame [B, H, W, 3] float32 (not clipped): the module docstring's formula.

    ``photo`` [B, H, W, 3] in [0, 1] (a tensor, or a NumPy array for a host ``warp``);
    ``composed`` ``G_t`` [B, h, w, 2] or None (frame 0); ``residual`` [B, h, w, 3] or
    None; ``zoom``, ``motion_scale`` [B]; ``sharp``: Lanczos-4 (else bilinear) warp of the
    photo. ``warp(image, flow, sharp, first_row)`` replaces the TensorFlow warp (`animate`
    passes OpenCV's remap, the same sampling rule, much faster on a CPU); with ``rows``
    ``(start, stop)`` only those output rows are made ([B, stop - start, W, 3], the same
    values as that band of the whole frame: `animate` makes large frames band by band to
    bound its memory), which needs a host ``warp`` (``flow`` then holds those rows and
    ``first_row`` is ``start``). ``clamp``: samples outside the photo show its nearest
    edge pixel (a model with ``warp_outside="clamp"``) instead of the pixel itself.
    ``inputs``: `frame_inputs` (None, the default) or a function like it, e.g.
    `frame_inputs_traced`.
    """
    inputs = frame_inputs if inputs is None else inputs
    size = photo.shape[1:3] if hasattr(photo, "__array_interface__") else tf.shape(photo)[1:3]
    if rows is not None and warp is None:
        raise ValueError("fullres.frame: rows need a host warp (the TensorFlow warp makes "
                         "whole frames)")
    flow, residual = inputs(composed, residual, size, zoom, motion_scale, rows, clamp)
    if warp is None:
        out = _warp_tf(photo, flow, sharp)
    else:
        out = warp(photo, flow, sharp, 0 if rows is None else rows[0])
    if residual is not None:
        out = out + residual
    return out


def frame_inputs(composed, residual, size, zoom, motion_scale, rows=None, clamp=False):
    """What `frame` computes around its warp: ``(Z_t, R_t(x(y)))``, the sample flow
    (`sample_flow`) and the residual resampled to the output (`resample`; None without
    a residual), for output rows ``rows`` (a ``(start, stop)`` pair of ints or scalar
    tensors) or the whole frame. The frame's own TensorFlow work: `frame` runs it eagerly
    by default; `spiritnet_tf.animation.Animation` passes `frame_inputs_traced` for large
    photos."""
    flow = sample_flow(composed, size, zoom, motion_scale, rows, clamp=clamp)
    return flow, None if residual is None else resample(residual, size, zoom, rows)


_frame_inputs_graph = tf.function(frame_inputs, autograph=False, reduce_retracing=True)


def frame_inputs_traced(composed, residual, size, zoom, motion_scale, rows=None, clamp=False):
    """`frame_inputs` as one traced graph, kept for the process: ``size`` and ``rows``
    go in as int32 tensors, so that the bands of a frame, the frames of an animation and
    later photos share the trace (one per kind of arguments: with or without a residual,
    a flow, rows). The same formula with TensorFlow's graph kernels: flows within about
    2e-4 px of the eager ones."""
    size = tf.constant([int(size[0]), int(size[1])], tf.int32)
    if rows is not None:
        rows = (tf.constant(int(rows[0]), tf.int32), tf.constant(int(rows[1]), tf.int32))
    return _frame_inputs_graph(composed, residual, size, zoom, motion_scale, rows, bool(clamp))


def frames(photo, small, model_frames, flows, synthesis, *, edges=DEFAULT_EDGES,
           max_zoom=DEFAULT_MAX_ZOOM, clamp=False):
    """The SavedModel's full-resolution output, all frames at once (graph-friendly).

    Args: ``photo`` [B, H, W, 3] and ``small`` [B, h, w, 3] (the model's input) in [0, 1];
    the model's ``model_frames``, ``flows`` and ``synthesis`` residuals [B, T, h, w, C];
    ``edges`` a string tensor or str ("zoom" / "extend"); ``clamp``: the model's
    ``warp_outside`` is "clamp" (`frame`).

    Returns a dict: ``frames`` uint8 [B, T, H, W, 3], ``first_frame`` uint8 [B, H, W, 3]
    (frame 0: the photo, zoomed like the others), ``crop`` [B, 4] (`crop_box`),
    ``motion_scale`` [B].
    """
    size = tf.shape(photo)[1:3]
    composed = compose_flows(flows)
    batch = tf.shape(photo)[0]
    ones = tf.ones(tf.stack([batch]))
    zoom, motion_scale = tf.cond(
        tf.equal(edges, "zoom"),
        lambda: fit_zoom(composed, size, max_zoom),
        lambda: (ones, ones))
    upscaled = tf.reduce_any(size != tf.shape(small)[1:3])

    def to_uint8(x):
        return tf.cast(tf.round(tf.clip_by_value(x, 0.0, 1.0) * 255.0), tf.uint8)

    def formula():  # frame 0 [B, H, W, 3] and the others [T, B, H, W, 3], uint8
        exact = (~upscaled) & (motion_scale >= 1.0)  # [B]: the model's frames are given back
        residuals = tf.where(exact[:, None, None, None, None],
                             model_residuals(small, model_frames, composed, clamp), synthesis)
        # Frame 0 (no motion, no residual) goes through the same warp as the others: one trace.
        steps = tf.concat([tf.zeros_like(composed[:, :1]), composed], axis=1)
        residuals = tf.concat([tf.zeros_like(residuals[:, :1]), residuals], axis=1)

        def one(t):
            return to_uint8(frame(photo, steps[:, t], residuals[:, t], zoom, motion_scale,
                                  sharp=upscaled, clamp=clamp))

        out = tf.map_fn(one, tf.range(tf.shape(steps)[1]),
                        fn_output_signature=tf.TensorSpec([None, None, None, 3], tf.uint8))
        return out[0], out[1:]

    def given_back():
        # No resize, no crop, full motion: the formula is warp(I0, G_t) + M_t - warp(I0, G_t),
        # the model's frames (frame 0: the photo); skip its warps (benchmarks/export.py).
        return to_uint8(photo), to_uint8(tf.transpose(model_frames, [1, 0, 2, 3, 4]))

    identity = ((~upscaled) & tf.reduce_all(tf.equal(zoom, 1.0))
                & tf.reduce_all(motion_scale >= 1.0))
    first, out = tf.cond(identity, given_back, formula)
    return {"frames": tf.transpose(out, [1, 0, 2, 3, 4]), "first_frame": first,
            "crop": crop_box(zoom, size), "motion_scale": motion_scale}
