"""The evaluation protocol of docs/design.md §5: run predictors on held-out sequences, tabulate.

`evaluate` runs every predictor (the model and the baselines, one signature, see
`spiritnet_tf.evaluation.baselines`) on the same samples and returns an
`EvaluationResult`: one row per method and step, and a summary per method.
`write_report` writes it as JSON, a Markdown table and a PNG plot of PSNR per step.

Samples are what the data pipeline yields, batched: ``(inputs, targets)`` with
``inputs = {"image": [B,H,W,3], "flow0": [B,H,W,2], optional "depth"}`` and
``targets = {"frames": [B,T,H,W,3], "flows": [B,T,H,W,2]}`` (teacher backward flows
F_{t->t-1}, frame t of the targets being the real frame the predictors' step t aims at).

Modes:
  * ``"prediction"``: every predictor starts from ``inputs["flow0"]`` (the teacher flow).
  * ``"generation"``: every predictor starts from ``flow0_fn(inputs)``, the same draw for
    all (e.g. the model's DAFR with a fixed seed), so the baselines move the way the
    model was told to; ground-truth metrics are still computed against the targets.
"""

import dataclasses
import json
import math
import os

import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw, ImageFont

from spiritnet_tf.evaluation import metrics

__all__ = [
    "EvaluationResult",
    "evaluate",
    "markdown_table",
    "write_json",
    "write_markdown",
    "write_plot",
    "write_report",
]

MODES = ("prediction", "generation")
ROW_METRICS = ("psnr", "ssim", "epe", "flow_ratio", "sharpness_ratio", "temporal_consistency")


@dataclasses.dataclass
class EvaluationResult:
    """What `evaluate` measured.

    Attributes:
      mode: ``"prediction"`` or ``"generation"``.
      num_samples: sequences evaluated (summed over batches).
      num_frames: T, generated frames per sequence.
      rows: one dict per method and step (step = 1..T) with ``method``, ``step`` and
        the metrics: ``psnr`` (dB), ``ssim``, ``epe`` (px) — means over samples of the
        per-frame values; ``flow_ratio`` = sum of mean |pred flow| / sum of mean |teacher
        flow| over samples; ``sharpness_ratio`` = sum of the frame's Laplacian variance /
        sum of the input's; ``temporal_consistency`` = mean warping error of the step
        against the method's own flow (definitions in `spiritnet_tf.evaluation.metrics`).
      summary: one dict per method: psnr, ssim, epe and temporal_consistency averaged
        over steps, flow_ratio over all steps, sharpness_ratio of the last step.
    """

    mode: str
    num_samples: int
    num_frames: int
    rows: list
    summary: list

    def to_dict(self):
        return dataclasses.asdict(self)


class _Accumulator:
    """Per-step sums of one method's metrics over samples."""

    def __init__(self, steps):
        keys = ("psnr", "ssim", "epe", "tc", "pred", "teacher", "sharp")
        self.sums = {k: np.zeros(steps) for k in keys}
        self.input_sharpness = 0.0

    def add(self, out, image, targets):
        frames, flows = out["frames"], out["flows"]
        self.sums["psnr"] += _sum_over_batch(metrics.psnr(frames, targets["frames"]))
        self.sums["ssim"] += _sum_over_batch(metrics.ssim(frames, targets["frames"]))
        self.sums["epe"] += _sum_over_batch(metrics.epe(flows, targets["flows"]))
        self.sums["pred"] += _sum_over_batch(metrics.flow_magnitude(flows))
        self.sums["teacher"] += _sum_over_batch(metrics.flow_magnitude(targets["flows"]))
        self.sums["sharp"] += _sum_over_batch(metrics.sharpness(frames))
        self.sums["tc"] += _sum_over_batch(metrics.temporal_consistency(frames, flows, image))
        self.input_sharpness += float(tf.reduce_sum(metrics.sharpness(image)))

    def rows(self, method, count):
        s = self.sums
        return [
            {
                "method": method,
                "step": t + 1,
                "psnr": s["psnr"][t] / count,
                "ssim": s["ssim"][t] / count,
                "epe": s["epe"][t] / count,
                "flow_ratio": _ratio(s["pred"][t], s["teacher"][t]),
                "sharpness_ratio": _ratio(s["sharp"][t], self.input_sharpness),
                "temporal_consistency": s["tc"][t] / count,
            }
            for t in range(len(s["psnr"]))
        ]

    def summary(self, method, count):
        s = self.sums
        return {
            "method": method,
            "psnr": float(np.mean(s["psnr"])) / count,
            "ssim": float(np.mean(s["ssim"])) / count,
            "epe": float(np.mean(s["epe"])) / count,
            "flow_ratio": _ratio(s["pred"].sum(), s["teacher"].sum()),
            "sharpness_ratio": _ratio(s["sharp"][-1], self.input_sharpness),
            "temporal_consistency": float(np.mean(s["tc"])) / count,
        }


def _sum_over_batch(values):
    """[B, T] -> [T] float64 NumPy."""
    return tf.reduce_sum(tf.cast(values, tf.float64), axis=0).numpy()


def _ratio(a, b):
    return float(a / b) if b > 0 else math.nan


def _check_output(name, out, shape):
    if not isinstance(out, dict) or "frames" not in out or "flows" not in out:
        raise ValueError(f"predictor {name!r} must return a dict with 'frames' and 'flows'")
    out = {k: tf.convert_to_tensor(out[k], tf.float32) for k in ("frames", "flows")}
    for key, channels in (("frames", 3), ("flows", 2)):
        expected = list(shape[:4]) + [channels]
        if out[key].shape.as_list() != expected:
            raise ValueError(
                f"predictor {name!r} returned {key} of shape {out[key].shape.as_list()}, "
                f"expected {expected} (the targets' batch, steps, height, width)"
            )
    return out


def evaluate(predictors, samples, mode="prediction", *, flow0_fn=None, max_batches=None):
    """Runs every predictor on every sample and measures it (docs/design.md §5).

    Args:
      predictors: dict name -> callable ``(image, flow0, num_frames, *, teacher_flows)``
        (and ``flow_before``, the flow before flow0, when the inputs carry it) returning
        ``{"frames": [B,T,H,W,3], "flows": [B,T,H,W,2]}``; e.g.
        ``{"model": wrapped_model, **BASELINES}``. Rows keep this order.
      samples: iterable (a ``tf.data.Dataset`` or a list) of batched ``(inputs,
        targets)`` in the format of the module docstring.
      mode: ``"prediction"`` (flow0 from the inputs) or ``"generation"`` (flow0 from
        ``flow0_fn``).
      flow0_fn: ``inputs -> flow0 [B,H,W,2]``, required in generation mode; its result
        is given to every predictor.
      max_batches: stop after this many batches (None: all).

    Returns:
      `EvaluationResult`.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "generation" and flow0_fn is None:
        raise ValueError("generation mode needs flow0_fn (e.g. the model's DAFR with a seed)")
    if not predictors:
        raise ValueError("no predictors to evaluate")
    accumulators, count, steps = {}, 0, None
    for index, (inputs, targets) in enumerate(samples):
        if max_batches is not None and index >= max_batches:
            break
        image = tf.convert_to_tensor(inputs["image"], tf.float32)
        if mode == "prediction":
            if "flow0" not in inputs:
                raise ValueError("prediction mode needs inputs['flow0'] (the teacher's first flow)")
            flow0 = inputs["flow0"]
        else:
            flow0 = flow0_fn(inputs)
        flow0 = tf.convert_to_tensor(flow0, tf.float32)
        extra = {}  # the flow before flow0 (prediction mode with history), if the batch has it
        if mode == "prediction" and "flow_before" in inputs:
            extra["flow_before"] = tf.convert_to_tensor(inputs["flow_before"], tf.float32)
        targets = {k: tf.convert_to_tensor(targets[k], tf.float32) for k in ("frames", "flows")}
        shape = targets["frames"].shape.as_list()
        if steps is None:
            steps = shape[1]
            accumulators = {name: _Accumulator(steps) for name in predictors}
        elif shape[1] != steps:
            raise ValueError(f"every batch must have {steps} target frames, got {shape[1]}")
        for name, predict in predictors.items():
            out = predict(image, flow0, steps, teacher_flows=targets["flows"], **extra)
            accumulators[name].add(_check_output(name, out, shape), image, targets)
        count += shape[0]
    if count == 0:
        raise ValueError("no samples to evaluate")
    rows = [row for name, acc in accumulators.items() for row in acc.rows(name, count)]
    summary = [acc.summary(name, count) for name, acc in accumulators.items()]
    return EvaluationResult(mode, count, steps, rows, summary)


# ----------------------------------------------------------------------------- reports


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def json_dict(result):
    """The result as the dict `write_json` writes (non-finite numbers become None)."""
    return _json_safe(result.to_dict())


def write_json(result, path):
    """Writes the result as JSON (non-finite numbers become null); returns the path."""
    with open(path, "w") as f:
        json.dump(json_dict(result), f, indent=2)
        f.write("\n")
    return path


def _fmt(value, digits):
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def markdown_table(result):
    """The result as Markdown: a summary table per method, then PSNR and SSIM per step."""
    lines = [
        f"Evaluation ({result.mode} mode, {result.num_samples} sequences, "
        f"{result.num_frames} generated frames each)",
        "",
        "| method | PSNR (dB) | SSIM | EPE (px) | \\|flow\\| ratio | sharpness ratio (last/input) "
        "| temporal consistency |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in result.summary:
        lines.append(
            f"| {s['method']} | {_fmt(s['psnr'], 2)} | {_fmt(s['ssim'], 4)} | "
            f"{_fmt(s['epe'], 3)} | {_fmt(s['flow_ratio'], 3)} | "
            f"{_fmt(s['sharpness_ratio'], 3)} | {_fmt(s['temporal_consistency'], 4)} |"
        )
    steps = range(1, result.num_frames + 1)
    for key, title, digits in (("psnr", "PSNR (dB)", 2), ("ssim", "SSIM", 4)):
        lines += [
            "",
            f"{title} per step:",
            "",
            "| method | " + " | ".join(f"step {t}" for t in steps) + " |",
            "|---|" + "---:|" * result.num_frames,
        ]
        for s in result.summary:
            values = [r[key] for r in result.rows if r["method"] == s["method"]]
            lines.append(f"| {s['method']} | " + " | ".join(_fmt(v, digits) for v in values) + " |")
    return "\n".join(lines) + "\n"


def write_markdown(result, path):
    """Writes `markdown_table` to path; returns the path."""
    with open(path, "w") as f:
        f.write(markdown_table(result))
    return path


_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
            (140, 86, 75), (227, 119, 194), (127, 127, 127)]


def write_plot(result, path, size=(800, 480)):
    """Plots PSNR per step, one line per method, as a PNG; returns the path."""
    width, height = size
    left, right, top, bottom = 70, 190, 40, 50
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=13)
    series = {
        s["method"]: [r["psnr"] for r in result.rows if r["method"] == s["method"]]
        for s in result.summary
    }
    values = [v for vs in series.values() for v in vs if math.isfinite(v)]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    pad = max(0.5, 0.05 * (high - low))
    low, high = math.floor(low - pad), math.ceil(high + pad)
    steps = result.num_frames

    def xy(step, value):
        x = left + (step - 1) / max(steps - 1, 1) * (width - left - right)
        y = top + (high - value) / (high - low) * (height - top - bottom)
        return x, y

    for i in range(6):  # horizontal grid and y labels
        value = low + i * (high - low) / 5
        _, y = xy(1, value)
        draw.line([(left, y), (width - right, y)], fill=(225, 225, 225))
        draw.text((left - 8, y), f"{value:.1f}", fill="black", font=font, anchor="rm")
    for step in range(1, steps + 1):
        x, _ = xy(step, low)
        draw.text((x, height - bottom + 8), str(step), fill="black", font=font, anchor="mt")
    draw.rectangle([left, top, width - right, height - bottom], outline="black")
    draw.text((width - right - (width - left - right) / 2, height - 18), "step", fill="black",
              font=font, anchor="mm")
    draw.text((left, 12), f"PSNR (dB) per step, {result.mode} mode, {result.num_samples} "
              "sequences", fill="black", font=font)
    for i, (method, vs) in enumerate(series.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        points = [xy(t + 1, v) for t, v in enumerate(vs) if math.isfinite(v)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for x, y in points:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        ly = top + 10 + 20 * i
        draw.line([(width - right + 12, ly), (width - right + 32, ly)], fill=colour, width=3)
        draw.text((width - right + 38, ly), method, fill="black", font=font, anchor="lm")
    image.save(path, format="PNG")
    return path


def write_report(result, out_dir, stem="evaluation"):
    """Writes ``<stem>.json``, ``<stem>.md`` and ``<stem>.png`` into out_dir; returns the paths."""
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, stem)
    return {
        "json": write_json(result, base + ".json"),
        "markdown": write_markdown(result, base + ".md"),
        "plot": write_plot(result, base + ".png"),
    }
