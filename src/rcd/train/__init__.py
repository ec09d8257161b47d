"""Training: the masked and block-diffusion objectives, the three stages, the loop."""

from .config import TrainConfig
from .stages import STAGES, ResidualTrainingConfig
from .trainer import Trainer, train

__all__ = ["STAGES", "ResidualTrainingConfig", "TrainConfig", "Trainer", "train"]
