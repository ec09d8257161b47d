"""Decoding: the block loop, commit policies, residual state and what a generation returns."""

from .config import DecodeConfig
from .loop import check_generation, generate
from .output import GenerationOutput, TraceStep
from .policy import CommitPolicy, FixedSchedule, Threshold
from .state import INIT_STRATEGIES, InitRule, ResidualState
from .text import decode_completions, encode_prompts

__all__ = [
    "INIT_STRATEGIES",
    "CommitPolicy",
    "DecodeConfig",
    "FixedSchedule",
    "GenerationOutput",
    "InitRule",
    "ResidualState",
    "Threshold",
    "TraceStep",
    "check_generation",
    "decode_completions",
    "encode_prompts",
    "generate",
]
