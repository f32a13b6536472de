"""Training and evaluation commands (``spiritnet train``, ``spiritnet evaluate``).

* `load_config` / `TrainConfig`: one JSON or TOML file per experiment.
* `train`: the fit driver (tf.data, strategies, TensorBoard, checkpoints,
  BackupAndRestore, previews, final weights and manifest).
* `evaluate_model`: the model and the baselines on held-out data (docs/design.md §5).
"""

from spiritnet_tf.training.config import (
    ConfigError,
    EvaluationConfig,
    SourceConfig,
    TrainConfig,
    load_config,
    parse_config,
)
from spiritnet_tf.training.data import (
    evaluation_samples,
    load_source,
    parse_source_spec,
    septuplet_dataset,
    training_samples,
)
from spiritnet_tf.training.run import STRATEGIES, evaluate_model, load_model, make_strategy, train

__all__ = [
    "ConfigError", "EvaluationConfig", "SourceConfig", "TrainConfig", "load_config",
    "parse_config", "evaluation_samples", "load_source", "parse_source_spec",
    "septuplet_dataset", "training_samples", "STRATEGIES", "evaluate_model", "load_model",
    "make_strategy", "train",
]
