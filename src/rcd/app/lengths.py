"""The rules that size decoding to a task's answers: the generation length and its blocks."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from transformers import PreTrainedTokenizerBase


def generation_length(
    tokenizer: PreTrainedTokenizerBase,
    answers: Iterable[str],
    block_length: int | None,
    tokens_per_step: Sequence[int],
) -> int:
    """Room for the longest answer and EOS, in whole blocks that every tokens-per-step divides.

    A fixed schedule of k tokens per step needs k to divide the block (one block of the
    whole length when `block_length` is None), so the length is rounded up to a multiple of
    lcm(block_length, *tokens_per_step).
    """
    lengths = [len(tokenizer(str(a), add_special_tokens=False)["input_ids"]) for a in answers]
    if not lengths:
        raise ValueError("no answers to size the generation length by")
    unit = math.lcm(block_length or 1, *tokens_per_step)
    return -(-(max(lengths) + 1) // unit) * unit


def decode_block_length(block_length: int | None, gen_length: int) -> int:
    """The block the decoder fills at a time: `block_length`, or one block of the whole generation."""
    return block_length or gen_length
