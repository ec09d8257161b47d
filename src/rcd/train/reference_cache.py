"""Caching the frozen reference's predictions across epochs (stage `rcd`).

The reference's forward pass is the extra cost of stage `rcd`. With a cache, the first
epoch stores, per example, alpha (from the full distribution) and the top-k probabilities
at its masked positions; later epochs rebuild Delta from them (sparse Eq. 1) instead of
running the reference. This only pays if later epochs see the same noise, so the trainer
keys noise by example alone (not by epoch) when the cache is on: a trade of augmentation
for compute that users choose explicitly.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..residual import ResidualConfig, top_k_summary
from .noise import NoisyBatch
from .stages import ReferenceSignal

Entry = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # positions, alpha, index, probs


class ReferenceCache:
    """Per example: masked positions (relative to the response start), alpha, top-k."""

    def __init__(self, top_k: int, config: ResidualConfig):
        self.top_k = top_k
        self.config = config
        self.entries: dict[int, Entry] = {}
        self.hits = self.misses = 0

    def _positions(self, batch: NoisyBatch) -> list[torch.Tensor]:
        return [row.nonzero()[:, 0].cpu() - batch.gen_start for row in batch.masked]

    def lookup(self, batch: NoisyBatch, device: torch.device) -> ReferenceSignal | None:
        """The cached signal of the whole batch, or None if any example is missing or stale."""
        found = []
        for index, positions in zip(batch.noise_key[2], self._positions(batch)):
            entry = self.entries.get(index)
            if entry is None or not torch.equal(entry[0], positions):
                self.misses += 1
                return None
            found.append(entry)
        self.hits += 1
        return ReferenceSignal(
            alpha=torch.cat([e[1] for e in found]).to(device),
            top_index=torch.cat([e[2] for e in found]).to(device),
            top_probs=torch.cat([e[3] for e in found]).to(device, torch.float32),
        )

    def store(self, batch: NoisyBatch, logits: torch.Tensor) -> None:
        """Keep alpha and the top-k of the reference's logits at the masked positions."""
        alpha, top_probs, top_index = top_k_summary(logits, self.config, self.top_k)
        alpha = alpha.cpu()
        start = 0
        for index, positions in zip(batch.noise_key[2], self._positions(batch)):
            end = start + len(positions)
            self.entries[index] = (
                positions,
                alpha[start:end],
                top_index[start:end].cpu(),
                top_probs[start:end].half().cpu(),
            )
            start = end

    def save(self, path: str | Path) -> None:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        torch.save({"top_k": self.top_k, "entries": self.entries}, tmp)
        os.replace(tmp, path)

    def load(self, path: str | Path) -> None:
        state = torch.load(path, weights_only=True)
        if state["top_k"] != self.top_k:
            raise ValueError(f"{path} holds a top-{state['top_k']} cache, not top-{self.top_k}")
        self.entries = state["entries"]
