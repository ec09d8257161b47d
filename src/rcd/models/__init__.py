"""Model side of rcd: the adapter over HF-compatible dLLMs and the tiny built-in models."""

from .adapter import DiffusionModel
from .attention import ATTENTION_MODES
from .loading import load
from .tiny import TINY_PRESETS, RcdTinyConfig, RcdTinyForDiffusionLM, tiny_model

__all__ = ["TINY_PRESETS", "ATTENTION_MODES", "DiffusionModel", "RcdTinyConfig", "RcdTinyForDiffusionLM", "load", "tiny_model"]
