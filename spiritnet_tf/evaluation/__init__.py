"""Evaluation (docs/design.md §5): metrics, baseline predictors and the evaluation table.

The names below load their module (and TensorFlow) on first use, so that command-line
modules inside this package (``spiritnet evaluate-depth --help``) answer without it.
"""

import importlib

_MODULES = {
    "baselines": ("BASELINES", "constant_velocity", "copy_frame", "oracle"),
    "evaluate": ("EvaluationResult", "evaluate", "json_dict", "markdown_table", "quality_gate", "write_json",
                 "write_markdown", "write_plot", "write_report"),
    "metrics": ("bilinear_warp", "epe", "flow_magnitude", "flow_ratio", "psnr", "sharpness",
                "sharpness_ratio", "ssim", "temporal_consistency"),
}
_OWNER = {name: module for module, names in _MODULES.items() for name in names}

__all__ = sorted(_OWNER)


def __getattr__(name):
    if name not in _OWNER:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_OWNER[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
