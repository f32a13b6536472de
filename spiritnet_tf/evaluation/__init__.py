"""Evaluation (docs/design.md §5): metrics, baseline predictors and the evaluation table.

The names below load their module (and TensorFlow) on first use, so that command-line
modules inside this package (``spiritnet evaluate-depth --help``) answer without it.
"""

from spiritnet_tf.lazy import lazy_names

_MODULES = {
    "baselines": ("BASELINES", "constant_velocity", "copy_frame", "oracle", "warp_sequence"),
    "evaluate": ("EvaluationResult", "evaluate", "json_dict", "markdown_table", "write_json",
                 "write_markdown", "write_plot", "write_report"),
    "gate": ("quality_gate",),
    "metrics": ("bilinear_warp", "epe", "flow_magnitude", "flow_ratio", "psnr", "sharpness",
                "sharpness_ratio", "ssim", "temporal_consistency"),
}
_OWNER = {name: f"{__name__}.{module}" for module, names in _MODULES.items() for name in names}

__all__ = sorted(_OWNER)


__getattr__, __dir__ = lazy_names(__name__, _OWNER)
