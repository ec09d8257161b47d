"""Decoding: the block loop, commit policies and what a generation returns."""

from .config import DecodeConfig
from .loop import generate
from .output import GenerationOutput, TraceStep
from .text import decode_completions, encode_prompts

__all__ = ["DecodeConfig", "GenerationOutput", "TraceStep", "decode_completions", "encode_prompts", "generate"]
