"""Length-grouped batching: batches of examples of similar length, so padding stays small.

Real SFT data mixes 50-token and 2000-token answers; a random batch is padded to its
longest member and most of its compute is padding. Grouping follows transformers'
`get_length_grouped_indices` (the `group_by_length` of its Trainer): shuffle, cut into
mega-batches of 50 batches, sort each by length, so every batch holds neighbours in
length and the order still changes every epoch. The order depends only on (seed, epoch):
a resumed run skipping the first n batches of an epoch sees the same batches as an
uninterrupted one, and every example is drawn exactly once per epoch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler
from transformers.trainer_pt_utils import get_length_grouped_indices


class LengthGroupedSampler(Sampler[int]):
    """Indices grouped by length in runs of `batch_size`, reshuffled per epoch (`set_epoch`)."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int = 0):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))
