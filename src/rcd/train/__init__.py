"""Training: the masked and block-diffusion objectives, the three stages, the loop."""

from .config import DataConfig, LoraConfig, ModelConfig, OptimConfig, RuntimeConfig, TrainConfig
from .stages import STAGES, ResidualTrainingConfig
from .trainer import Trainer, train

__all__ = [
    "STAGES",
    "DataConfig",
    "LoraConfig",
    "ModelConfig",
    "OptimConfig",
    "ResidualTrainingConfig",
    "RuntimeConfig",
    "TrainConfig",
    "Trainer",
    "train",
]
