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


def check_cache(mode: str, dm: DiffusionModel) -> str:
    """Refuse a cache mode this model cannot use (the mode itself is `DecodeConfig`'s)."""
    if mode in APPROXIMATE_CACHES:
        if dm.attention != "bidirectional":
            raise ValueError(
                f"cache={mode!r} approximates bidirectional attention; a {dm.attention} model's "
                "KV cache is exact already (cache='exact')"
            )
        if not dm.convention.supports_cache:
            raise ValueError(
                f"cache={mode!r} needs a KV cache, which the {dm.convention.name} forward lacks"
            )
    return mode


class ModelPass:
    """One model's forward passes over the sequence, with its KV cache (see module doc)."""

    def __init__(self, dm: DiffusionModel, seq: DecodeSequence, cache: str):
        self.dm, self.seq, self.mode = dm, seq, cache
        self.kv = None
        self.cached = 0  # block-causal exact mode: positions [0, cached) are in the cache
        self.block: int | None = None  # approximate modes: start of the block the cache serves

    def logits(self, embed: Embed, lo: int, hi: int, bs: int) -> tuple[torch.Tensor, int]:
        """(logits (B, n, V) for positions [lo', lo' + n), lo') of one step on the block at bs.

        [lo, hi) is the window an exact pass predicts (the generation for bidirectional
        models, the block for block-causal ones). Approximate caches predict less after a
        block's first step: the block and, for "prefix", everything after it.
        """
        if self.mode in APPROXIMATE_CACHES:
            be = bs + self.seq.block_length
            if self.block != bs:
                self.block = bs
                return self._first_step(embed, bs, be)
            return self._cached_step(embed, bs, be)
        exact_kv = self.mode == "exact" and self.dm.attention == "block-causal"
        start = self.cached if exact_kv else 0
        end = hi if self.dm.attention == "block-causal" else self.seq.length
        logits, kv = self._forward(embed(start, end), end, start, self.kv, keep=lo if exact_kv else None)
        if exact_kv:
            self.kv, self.cached = kv, lo
        return logits[:, lo - start : hi - start], lo

    def _first_step(self, embed: Embed, bs: int, be: int) -> tuple[torch.Tensor, int]:
        """A full pass (exact) that leaves the block's cache behind."""
        length, gen = self.seq.length, self.seq.gen_start
        if self.mode == "prefix":
            logits, self.kv = self._forward(embed(0, length), length, 0, None, keep=bs)
            return logits[:, gen:], gen
        order = self._dual_order(bs, be)
        kept = length - (be - bs)
        logits, self.kv = self._forward(embed(0, length)[:, order], length, 0, None, keep=kept, order=order)
        rank = torch.empty_like(order)  # where each absolute position sits in `order`
        rank[order] = torch.arange(length, device=order.device)
        return logits[:, rank[gen:]], gen

    def _cached_step(self, embed: Embed, bs: int, be: int) -> tuple[torch.Tensor, int]:
        length = self.seq.length
        if self.mode == "prefix":
            logits, self.kv = self._forward(embed(bs, length), length, bs, self.kv, keep=bs)
            return logits, bs
        kept = length - (be - bs)
        logits, self.kv = self._forward(
            embed(bs, be), length, kept, self.kv, keep=kept, order=self._dual_order(bs, be)
        )
        return logits, bs

    def _dual_order(self, bs: int, be: int) -> torch.Tensor:
        """Key order [prefix, suffix, block] of the dual cache (absolute positions)."""
        positions = torch.arange(self.seq.length, device=self.seq.ids.device)
        return torch.cat([positions[:bs], positions[be:], positions[bs:be]])

    def _forward(
        self,
        inputs: torch.Tensor,
        n_keys: int,
        query_start: int,
        kv,
        keep: int | None,
        order: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, object]:
        return self.dm.forward(
            inputs,
            key_valid=self.seq.key_valid[:, :n_keys],
            query_start=query_start,
            gen_start=self.seq.gen_start,
            block_length=self.seq.block_length,
            cache=kv,
            keep=keep,
            key_order=order,
        )
