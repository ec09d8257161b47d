"""Model side of rcd: the adapter over HF-compatible dLLMs and the tiny built-in models."""

from .adapter import DiffusionModel
from .attention import ATTENTION_MODES
from .loading import LoadConfig, load
from .presets import PRESETS, Preset
from .tiny import TINY_PRESETS, RcdTinyConfig, RcdTinyForDiffusionLM, tiny_model

__all__ = [
    "ATTENTION_MODES",
    "DiffusionModel",
    "LoadConfig",
    "PRESETS",
    "Preset",
    "RcdTinyConfig",
    "RcdTinyForDiffusionLM",
    "TINY_PRESETS",
    "load",
    "tiny_model",
]
