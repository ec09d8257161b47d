"""Loading the models of a run: the model, its reference (warm start) and a baseline, on one device."""

from __future__ import annotations

from dataclasses import dataclass, replace

from torch import nn
from transformers import PreTrainedTokenizerBase

from ..decode import DecodeConfig
from ..eval.decoder import Decoder
from ..models.loading import LoadConfig, check_reference_tokenizer, load
from ..residual import ResidualConfig
from .device import choose_device


@dataclass(frozen=True)
class LoadedModels:
    model: nn.Module
    tokenizer: PreTrainedTokenizerBase
    reference: nn.Module | None
    baseline: nn.Module | None
    device: str


def load_models(
    model: str,
    reference: str | None = None,
    baseline: str | None = None,
    load_config: LoadConfig | None = None,
) -> LoadedModels:
    """The three models loaded with the same options on the chosen device; the reference's
    vocabulary is checked against the model's before any weights load."""
    load_config = load_config or LoadConfig()
    device = choose_device(load_config.device)
    if reference:
        check_reference_tokenizer(model, reference, load_config.trust_remote_code)
    options = {**load_config.kwargs(), "device": device}
    target, tokenizer = load(model, **options)
    return LoadedModels(
        model=target,
        tokenizer=tokenizer,
        reference=load(reference, **options)[0] if reference else None,
        baseline=load(baseline, **options)[0] if baseline else None,
        device=device,
    )


def load_decoder(
    model: str,
    load_config: LoadConfig,
    decode: DecodeConfig,
    residual: ResidualConfig | None = None,
    reference: str | None = None,
) -> Decoder:
    """`Decoder.load` on the chosen device."""
    on_device = replace(load_config, device=choose_device(load_config.device))
    return Decoder.load(model, on_device, decode, residual, reference)
