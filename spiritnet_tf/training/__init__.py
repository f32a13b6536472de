"""Training and evaluation commands (``spiritnet train``, ``spiritnet evaluate``).

* `load_config` / `TrainConfig`: one JSON or TOML file per experiment.
* `train`: the fit driver (tf.data, strategies, TensorBoard, checkpoints,
  BackupAndRestore, previews, final weights and manifest).
* `evaluate_model`: the model and the baselines on held-out data (docs/design.md §5);
  `evaluate_weights`: ``spiritnet evaluate`` as a function (loads, evaluates, writes the
  report; the bundle step calls it).
"""

from spiritnet_tf.lazy import lazy_names

# name -> module; imported on first use (PEP 562), so that `spiritnet train --help`
# does not import TensorFlow.
_LAZY = {
    **dict.fromkeys(("ConfigError", "EvaluationConfig", "SourceConfig", "TrainConfig",
                     "load_config", "parse_config", "STRATEGIES"), "spiritnet_tf.training.config"),
    **dict.fromkeys(("evaluation_samples", "load_source", "parse_source_spec",
                     "septuplet_dataset", "training_samples"), "spiritnet_tf.training.data"),
    **dict.fromkeys(("evaluate_model", "evaluate_weights", "load_model", "make_strategy", "train"),
                    "spiritnet_tf.training.run"),
}

__all__ = [
    "ConfigError", "EvaluationConfig", "SourceConfig", "TrainConfig", "load_config",
    "parse_config", "evaluation_samples", "load_source", "parse_source_spec",
    "septuplet_dataset", "training_samples", "STRATEGIES", "evaluate_model", "evaluate_weights",
    "load_model",
    "make_strategy", "train",
]


__getattr__, __dir__ = lazy_names(__name__, _LAZY)
