"""The decoding engine behind the server: one small class, the seam an inference engine's dLLM
path (SGLang, vLLM) could take the place of later.

The scheduler hands it a batch (one model, prompts, one set of decoding options, an optional
seed) and a per-step callback, and gets rcd's `GenerationOutput` back. Everything else the
server does (schema, batching, streaming, metrics) stays the same for another engine.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..app import load_decoder
from ..decode import DecodeConfig, GenerationOutput, TraceStep, check_generation, encode_prompts, generate
from ..eval.decoder import Decoder
from ..models.adapter import context_length
from ..models.loading import LoadConfig
from ..residual import ResidualConfig
from ..tokenizer import check_representable


@dataclass
class ServedModel:
    """A model the server answers for: its name, role and the server's default decoding of it."""

    name: str
    role: str  # "rcd": the --model (residuals per the server flags); "baseline": plain SeqD
    decoder: Decoder
    encode_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def tokenizer(self):
        return self.decoder.tokenizer

    @property
    def context(self) -> int | None:
        return context_length(self.decoder.model)


def served_name(path: str) -> str:
    """The name clients use: a directory's own name, else the hub id as given."""
    return Path(path).name if Path(path).exists() else path


class LocalBackend:
    """rcd's own decode loop (`rcd.generate` through the models' `Decoder`s)."""

    def __init__(self, models: Sequence[ServedModel]):
        self.models = {m.name: m for m in models}

    @classmethod
    def load(
        cls,
        model_path: str,
        load_config: LoadConfig,
        decode: DecodeConfig,
        residual: ResidualConfig | None,
        reference_path: str | None = None,
        baseline_path: str | None = None,
    ) -> LocalBackend:
        """Load every served model once (the baseline decoded as plain SeqD), then check the
        server's default options against each, so a bad default fails before the port opens."""
        names = [served_name(model_path)] + ([served_name(baseline_path)] if baseline_path else [])
        if len(set(names)) != len(names):
            raise ValueError(
                f"--model and --baseline are both named {names[0]!r}: serve directories of distinct names"
            )
        served = [
            ServedModel(
                names[0], "rcd", load_decoder(model_path, load_config, decode, residual, reference_path)
            )
        ]
        if baseline_path:
            served.append(
                ServedModel(names[1], "baseline", load_decoder(baseline_path, load_config, decode, None))
            )
        backend = cls(served)
        for model in served:
            backend.check(model.name, model.decoder.decode, model.decoder.residual, prompt_length=0)
        return backend

    def encode(self, name: str, text: str, where: str) -> list[int]:
        """Token ids of a prompt; refuses text the tokenizer cannot represent (ValueError)."""
        model = self.models[name]
        with model.encode_lock:  # a fast tokenizer's padding state is shared: one call at a time
            return check_representable(model.tokenizer, text, where)

    def check(
        self, name: str, decode: DecodeConfig, residual: ResidualConfig | None, prompt_length: int
    ) -> None:
        """What `generate` would refuse for these options on this model (ValueError), checked
        before the request joins a batch so that it cannot fail the others."""
        decoder = self.models[name].decoder
        check_generation(
            decoder.model,
            decode,
            residual=residual,
            reference=_reference(decoder, residual),
            eos_token_id=decoder.stops or None,
            prompt_length=prompt_length,
        )

    def run(
        self,
        name: str,
        prompts: Sequence[str],
        decode: DecodeConfig,
        residual: ResidualConfig | None,
        seed: int | None,
        on_step: Callable[[TraceStep], None] | None,
    ) -> GenerationOutput:
        """Decode one batch: exactly `Decoder.complete`'s call of `rcd.generate`, options per batch."""
        model = self.models[name]
        decoder = model.decoder
        with model.encode_lock:
            input_ids, attention_mask = encode_prompts(decoder.tokenizer, prompts)
        generator = None if seed is None else torch.Generator(decoder.model.device).manual_seed(seed)
        return generate(
            decoder.model,
            input_ids,
            decode,
            attention_mask=attention_mask,
            residual=residual,
            reference=_reference(decoder, residual),
            eos_token_id=decoder.stops or None,
            generator=generator,
            on_step=on_step,
        )


def _reference(decoder: Decoder, residual: ResidualConfig | None):
    """The reference model where these residual options use it (else None: nothing to warn about)."""
    uses = residual is not None and "reference" in (residual.init, residual.feedback)
    return decoder.reference if uses else None
