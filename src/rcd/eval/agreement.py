"""Approximate decoding (sparse top-k residual, prefix/dual cache) against exact decoding.

`compare` decodes a graded prompt set exactly (dense residual, no approximate cache), then
with each `Variant`, and returns per variant the accuracy with its binomial standard error,
the share of generated tokens equal to exact decoding's, tokens per forward pass and the
speed-up. A variant can become a default only where its accuracy stays within that noise of
the exact one on real tasks. `python -m experiments.agreement` runs it on a saved model and
a JSONL set.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import torch

from ..decode import DecodeConfig
from ..residual import ResidualConfig
from .decoder import Decoder
from .evalset import EvalSet


@dataclasses.dataclass(frozen=True)
class Variant:
    """One approximation of exact decoding: a sparse residual (`top_k`) and/or a cache."""

    top_k: int | None = None
    cache: str = "exact"

    @property
    def name(self) -> str:
        parts = ([f"top{self.top_k}"] if self.top_k else []) + ([self.cache] if self.cache != "exact" else [])
        return "+".join(parts) or "exact"


EXACT = Variant()
TOP_K = (8, 32, 128)


def top_k_variants(model: torch.nn.Module, ks: Sequence[int] = TOP_K) -> list[Variant]:
    """Top-k variants that are sparse for this model (k >= its embedding rows is the dense residual)."""
    rows = model.get_input_embeddings().weight.shape[0]
    return [Variant(top_k=k) for k in ks if k < rows]


def compare(
    model: torch.nn.Module,
    tokenizer,
    evalset: EvalSet,
    decode_config: DecodeConfig,
    residual: ResidualConfig | None,
    variants: list[Variant],
    reference: torch.nn.Module | None = None,
    batch_size: int = 64,
) -> list[dict]:
    """Exact dense decoding, then each variant: accuracy, token agreement, tokens per pass, seconds."""
    rows, exact_ids, exact_seconds = [], None, None
    for variant in [EXACT, *variants]:
        config = residual if residual is None else dataclasses.replace(residual, top_k=variant.top_k)
        decoder = Decoder(
            model, tokenizer, dataclasses.replace(decode_config, cache=variant.cache), config, reference
        )
        started = time.perf_counter()
        ids, texts, tokens, passes = [], [], 0, 0
        for start in range(0, len(evalset.rows), batch_size):
            batch_texts, out = decoder.complete(
                [r["prompt"] for r in evalset.rows[start : start + batch_size]]
            )
            ids.append(out.generated.cpu())
            texts += batch_texts
            tokens += int(out.generated_tokens.sum())
            passes += int(out.row_forward_passes.sum())
        seconds = time.perf_counter() - started
        ids = torch.cat(ids)
        if variant == EXACT:
            exact_ids, exact_seconds = ids, seconds
        rows.append(
            {
                "variant": variant.name,
                **evalset.score(texts),
                "token_agreement_with_exact": float((ids == exact_ids).float().mean()),
                "tokens_per_step": tokens / max(passes, 1),
                "seconds": seconds,
                "speedup_vs_exact": exact_seconds / seconds,
            }
        )
    return rows
