"""Training and testing: ``train(cfg, out_dir)``, ``evaluate(model, rows, root)`` (docs/train.md)."""

from fstmatch.train.config import DataConfig, InputConfig, ModelConfig, OptimConfig, TrainConfig
from fstmatch.train.evaluate import evaluate, format_table, model_role, predict
from fstmatch.train.loop import TrainingDiverged, load_run_config, train

__all__ = [
    "DataConfig",
    "InputConfig",
    "ModelConfig",
    "OptimConfig",
    "TrainConfig",
    "TrainingDiverged",
    "evaluate",
    "format_table",
    "load_run_config",
    "model_role",
    "predict",
    "train",
]
