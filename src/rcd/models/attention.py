"""Attention structures of dLLMs as additive masks.

Both modes work on absolute positions of one left-padded sequence whose generation region
starts at `gen_start`. The block grid is anchored there: block b holds positions
[gen_start + b * block_length, gen_start + (b + 1) * block_length); the prompt is cut into
blocks backwards from its end (negative block ids). Anchoring at the generation start keeps
the grid identical for a row decoded alone or in a left-padded batch.
"""

from __future__ import annotations

import torch

ATTENTION_MODES = ("bidirectional", "block-causal")
# where blocks start: at the first generated position, or at each row's first token (SDAR)
BLOCK_GRIDS = ("generation", "absolute")


def block_ids(positions: torch.Tensor, gen_start: int, block_length: int) -> torch.Tensor:
    """Block index of each absolute position (negative inside the prompt)."""
    return torch.div(positions - gen_start, block_length, rounding_mode="floor")


def allowed_keys(
    key_valid: torch.Tensor,
    query_start: int,
    *,
    mode: str,
    gen_start: int,
    block_length: int | None,
) -> torch.Tensor:
    """Bool (B, 1, Q, K): may query q (absolute query_start + q) attend to key k.

    key_valid (B, K) marks real (non-padding) keys; queries are the last Q = K - query_start
    positions. Bidirectional: every real key. Block-causal: real keys whose block is not
    after the query's block.
    """
    if mode not in ATTENTION_MODES:
        raise ValueError(f"attention must be one of {ATTENTION_MODES}, got {mode!r}")
    n_keys = key_valid.shape[1]
    allowed = key_valid[:, None, None, :].bool()
    if mode == "block-causal":
        if block_length is None:
            raise ValueError("block-causal attention needs a block_length")
        keys = torch.arange(n_keys, device=key_valid.device)
        kb = block_ids(keys, gen_start, block_length)
        qb = kb[query_start:]
        allowed = allowed & (kb[None, :] <= qb[:, None])[None, None]
    else:
        allowed = allowed.expand(-1, -1, n_keys - query_start, -1)
    return allowed


def block_diffusion_allowed(
    key_valid: torch.Tensor, gen_start: int, block_length: int, grid: str = "generation"
) -> torch.Tensor:
    """Bool (B, 1, 2L, 2L) for the block-diffusion training layout [noisy copy ; clean copy].

    Noisy block k sees itself (bidirectional) and clean blocks < k; clean tokens see clean
    blocks up to their own (block-causal); nothing sees the noisy copy from outside its
    block. This is what a KV-cached decode of block k sees, for every block at once.
    grid "generation": blocks anchored at `gen_start` (the response start, all rows);
    "absolute": at each row's first real token (SDAR's training mask: positions // b).
    """
    length = key_valid.shape[1]
    if grid == "absolute":
        blocks = torch.div(position_ids(key_valid), block_length, rounding_mode="floor")  # (B, L)
    elif grid == "generation":
        blocks = block_ids(torch.arange(length, device=key_valid.device), gen_start, block_length)[None]
    else:
        raise ValueError(f"block grid must be one of {BLOCK_GRIDS}, got {grid!r}")
    q, k = blocks[:, :, None], blocks[:, None, :]
    noisy_rows = torch.cat([q == k, k < q], dim=-1)
    clean_rows = torch.cat([torch.zeros_like(q == k), k <= q], dim=-1)
    allowed = torch.cat([noisy_rows, clean_rows], dim=-2)[:, None]
    keys = torch.cat([key_valid, key_valid], dim=1).bool()
    return allowed & keys[:, None, None, :]


def additive_bias(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """0 where attention is allowed, the dtype's most negative value elsewhere.

    A finite minimum (not -inf) keeps fully masked padding queries NaN-free; their outputs
    are never read, and real queries never attend to them.
    """
    bias = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return bias.masked_fill_(~allowed, torch.finfo(dtype).min)


def position_ids(key_valid: torch.Tensor) -> torch.Tensor:
    """RoPE positions that skip left padding: a row's first real token is position 0."""
    return (key_valid.long().cumsum(dim=-1) - 1).clamp_min(0)
