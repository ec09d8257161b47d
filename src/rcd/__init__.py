"""rcd: Residual Context Diffusion for block-wise diffusion language models."""

from .decode import (
    CommitPolicy,
    DecodeConfig,
    FixedSchedule,
    GenerationOutput,
    ResidualState,
    Threshold,
    TraceStep,
    decode_completions,
    encode_prompts,
    generate,
)
from .models import DiffusionModel, RcdTinyConfig, RcdTinyForDiffusionLM, load, tiny_model
from .residual import ResidualConfig
from .tokenizer import char_tokenizer, word_tokenizer

__version__ = "0.1.0"

__all__ = [
    "CommitPolicy",
    "DecodeConfig",
    "FixedSchedule",
    "DiffusionModel",
    "GenerationOutput",
    "RcdTinyConfig",
    "RcdTinyForDiffusionLM",
    "ResidualConfig",
    "ResidualState",
    "Threshold",
    "TraceStep",
    "char_tokenizer",
    "decode_completions",
    "encode_prompts",
    "generate",
    "load",
    "tiny_model",
    "word_tokenizer",
]
