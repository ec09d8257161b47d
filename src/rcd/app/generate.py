"""Completions of a few prompts by a saved model: `rcd generate`."""

from __future__ import annotations

import time

import torch

from ..decode import DecodeConfig, GenerationOutput
from ..models.loading import LoadConfig
from ..residual import ResidualConfig
from ..tokenizer import check_representable
from .models import load_decoder


def complete_prompts(
    model: str,
    prompts: list[str],
    load_config: LoadConfig,
    decode: DecodeConfig,
    residual: ResidualConfig | None = None,
    reference: str | None = None,
    seed: int = 0,
) -> tuple[list[str], GenerationOutput, float]:
    """(completions, the generation's output, seconds of decoding); `seed` seeds the sampling noise."""
    decoder = load_decoder(model, load_config, decode, residual, reference)
    for i, prompt in enumerate(prompts):
        check_representable(decoder.tokenizer, prompt, f"--prompt {i + 1}")
    start = time.perf_counter()
    generator = torch.Generator(decoder.model.device).manual_seed(seed)
    texts, out = decoder.complete(prompts, generator=generator)
    return texts, out, time.perf_counter() - start
