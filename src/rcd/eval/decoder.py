"""A loaded model with fixed decoding options: prompts in, completions out.

The one text decoder (encode -> generate with stop ids -> decode text) of `rcd generate`,
`rcd eval`, the lm-eval model type, sweeps (`rcd sweep`, `rcd demo`) and the benchmarks,
so all of them load models, pick stop ids and call `rcd.generate` the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..decode import DecodeConfig, GenerationOutput, TraceStep, decode_completions, encode_prompts, generate
from ..decode.text import stop_ids
from ..models.loading import LoadConfig, check_reference_tokenizer, load
from ..residual import ResidualConfig


@dataclass(frozen=True)
class Decoder:
    model: torch.nn.Module
    tokenizer: object
    decode: DecodeConfig
    residual: ResidualConfig | None = None
    reference: torch.nn.Module | None = None

    @classmethod
    def load(
        cls,
        model_path: str,
        load_config: LoadConfig,
        decode: DecodeConfig,
        residual: ResidualConfig | None = None,
        reference_path: str | None = None,
    ) -> Decoder:
        """Model and reference loaded with the same options."""
        options = load_config.kwargs()
        if reference_path:  # before any model loads
            check_reference_tokenizer(model_path, reference_path, load_config.trust_remote_code)
        model, tokenizer = load(model_path, **options)
        reference = load(reference_path, **options)[0] if reference_path else None
        return cls(model, tokenizer, decode, residual, reference)

    @property
    def stops(self) -> list[int]:
        return stop_ids(self.tokenizer, self.model.config)

    def complete(
        self,
        prompts: Sequence[str],
        generator: torch.Generator | None = None,
        return_trace: bool = False,
        on_step: Callable[[TraceStep], None] | None = None,
    ) -> tuple[list[str], GenerationOutput]:
        """Completions (cut at the first stop token) of a batch of prompt strings; `on_step`
        sees each denoising step as it happens (see `rcd.generate`)."""
        input_ids, attention_mask = encode_prompts(self.tokenizer, prompts)
        stops = self.stops
        out = generate(
            self.model,
            input_ids,
            self.decode,
            attention_mask=attention_mask,
            residual=self.residual,
            reference=self.reference,
            eos_token_id=stops or None,
            generator=generator,
            return_trace=return_trace,
            on_step=on_step,
        )
        return decode_completions(self.tokenizer, out.generated, stops), out
