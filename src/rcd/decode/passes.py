"""Which positions one forward pass feeds and predicts, and the KV caches that make it cheap.

Cache modes (`rcd.generate(cache=...)`):
- "exact" (default): only caches that leave the tokens unchanged. A block-causal model
  (SDAR) feeds finished blocks once and keeps their keys/values; a bidirectional model
  (LLaDA, Dream) recomputes the whole sequence every step.
- "none": recompute everything at every step (the reference for the others).
- "prefix" (Fast-dLLM prefix cache, bidirectional models, approximate): the first step of
  a block is a full pass that also caches the keys/values of the prompt and finished
  blocks; the block's other steps feed the block and everything after it. Their queries
  read the cached prefix, which no longer sees the block's newer tokens: the drift.
- "dual" (Fast-dLLM dual cache, bidirectional models, approximate): the first step also
  caches the positions after the block; the other steps feed the block alone. Positions
  after the block then keep the prediction (and RCD residual) of the block's first step.

The dual cache needs the suffix's keys next to the prefix's. Bidirectional attention does
not depend on the order of keys (RoPE positions are applied per key), so the first step
feeds the sequence as [prefix, suffix, block] and crops the cache to [prefix, suffix]:
the standard append-and-crop of a transformers Cache is all it takes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..models.adapter import DiffusionModel

CACHE_MODES = ("exact", "none", "prefix", "dual")
APPROXIMATE_CACHES = ("prefix", "dual")

Embed = Callable[[int, int], torch.Tensor]  # embed(start, end) -> inputs for positions [start, end)


@dataclass
class DecodeSequence:
    """The sequence being decoded: ids, real-key mask and block grid, all rows together."""

    ids: torch.Tensor  # (B, L)
    key_valid: torch.Tensor  # (B, L) bool; False on left padding
    gen_start: int
    block_length: int

    @property
    def length(self) -> int:
        return self.ids.shape[1]


def check_cache(mode: str, model: DiffusionModel) -> str:
    """Refuse a cache mode this model cannot use (the mode itself is `DecodeConfig`'s)."""
    if mode in APPROXIMATE_CACHES:
        if model.attention != "bidirectional":
            raise ValueError(
                f"cache={mode!r} approximates bidirectional attention; a {model.attention} model's "
                "KV cache is exact already (cache='exact')"
            )
        if not model.convention.supports_cache:
            raise ValueError(
                f"cache={mode!r} needs a KV cache, which the {model.convention.name} forward lacks"
            )
    return mode


class ModelPass:
    """One model's forward passes over the sequence, with its KV cache (see module doc)."""

    def __init__(self, model: DiffusionModel, sequence: DecodeSequence, cache: str):
        self.model, self.sequence, self.mode = model, sequence, cache
        self.kv_cache = None
        self.cached = 0  # block-causal exact mode: positions [0, cached) are in the cache
        self.block: int | None = None  # approximate modes: start of the block the cache serves

    def logits(
        self, embed: Embed, predict_start: int, predict_end: int, block_start: int
    ) -> tuple[torch.Tensor, int]:
        """(logits (B, n, V) for positions [start, start + n), start) of one step on the block at block_start.

        [predict_start, predict_end) is the window an exact pass predicts (the generation for bidirectional
        models, the block for block-causal ones). Approximate caches predict less after a
        block's first step: the block and, for "prefix", everything after it.
        """
        if self.mode in APPROXIMATE_CACHES:
            block_end = block_start + self.sequence.block_length
            if self.block != block_start:
                self.block = block_start
                return self._first_step(embed, block_start, block_end)
            return self._cached_step(embed, block_start, block_end)
        exact_kv = self.mode == "exact" and self.model.attention == "block-causal"
        start = self.cached if exact_kv else 0
        end = predict_end if self.model.attention == "block-causal" else self.sequence.length
        keep = predict_start if exact_kv else None
        logits, kv_cache = self._forward(embed(start, end), end, start, self.kv_cache, keep=keep)
        if exact_kv:
            self.kv_cache, self.cached = kv_cache, predict_start
        return logits[:, predict_start - start : predict_end - start], predict_start

    def _first_step(self, embed: Embed, block_start: int, block_end: int) -> tuple[torch.Tensor, int]:
        """A full pass (exact) that leaves the block's cache behind."""
        length, gen_start = self.sequence.length, self.sequence.gen_start
        if self.mode == "prefix":
            logits, self.kv_cache = self._forward(embed(0, length), length, 0, None, keep=block_start)
            return logits[:, gen_start:], gen_start
        order = self._dual_order(block_start, block_end)
        kept = length - (block_end - block_start)
        logits, self.kv_cache = self._forward(
            embed(0, length)[:, order], length, 0, None, keep=kept, order=order
        )
        rank = torch.empty_like(order)  # where each absolute position sits in `order`
        rank[order] = torch.arange(length, device=order.device)
        return logits[:, rank[gen_start:]], gen_start

    def _cached_step(self, embed: Embed, block_start: int, block_end: int) -> tuple[torch.Tensor, int]:
        length = self.sequence.length
        if self.mode == "prefix":
            logits, self.kv_cache = self._forward(
                embed(block_start, length), length, block_start, self.kv_cache, keep=block_start
            )
            return logits, block_start
        kept = length - (block_end - block_start)
        logits, self.kv_cache = self._forward(
            embed(block_start, block_end),
            length,
            kept,
            self.kv_cache,
            keep=kept,
            order=self._dual_order(block_start, block_end),
        )
        return logits, block_start

    def _dual_order(self, block_start: int, block_end: int) -> torch.Tensor:
        """Key order [prefix, suffix, block] of the dual cache (absolute positions)."""
        positions = torch.arange(self.sequence.length, device=self.sequence.ids.device)
        return torch.cat([positions[:block_start], positions[block_end:], positions[block_start:block_end]])

    def _forward(
        self,
        inputs: torch.Tensor,
        n_keys: int,
        query_start: int,
        kv_cache,
        keep: int | None,
        order: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, object]:
        return self.model.forward(
            inputs,
            key_valid=self.sequence.key_valid[:, :n_keys],
            query_start=query_start,
            gen_start=self.sequence.gen_start,
            block_length=self.sequence.block_length,
            cache=kv_cache,
            keep=keep,
            key_order=order,
        )
