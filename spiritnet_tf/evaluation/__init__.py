"""Evaluation (docs/design.md §5): metrics, baseline predictors and the evaluation table."""

from spiritnet_tf.evaluation.baselines import BASELINES, constant_velocity, copy_frame, oracle
from spiritnet_tf.evaluation.evaluate import (
    EvaluationResult,
    evaluate,
    json_dict,
    markdown_table,
    quality_gate,
    write_json,
    write_markdown,
    write_plot,
    write_report,
)
from spiritnet_tf.evaluation.metrics import (
    bilinear_warp,
    epe,
    flow_magnitude,
    flow_ratio,
    psnr,
    sharpness,
    sharpness_ratio,
    ssim,
    temporal_consistency,
)

__all__ = [
    "BASELINES",
    "copy_frame",
    "constant_velocity",
    "oracle",
    "EvaluationResult",
    "evaluate",
    "json_dict",
    "markdown_table",
    "quality_gate",
    "write_json",
    "write_markdown",
    "write_plot",
    "write_report",
    "bilinear_warp",
    "psnr",
    "ssim",
    "epe",
    "flow_magnitude",
    "flow_ratio",
    "sharpness",
    "sharpness_ratio",
    "temporal_consistency",
]
