"""Training losses of dLLMs: the masked (MDLM / LLaDA SFT) and block-diffusion objectives.

Both are the same cross-entropy on masked response positions, weighted by 1/t and divided
by the response length R of the batch layout (LLaDA divides by the answer length, which
includes the EOS padding it trains on), then averaged over examples. What differs is what
the model sees: the whole noisy sequence (bidirectional), or for block-causal models each
noisy block next to the clean blocks before it (the 2L layout of SDAR-style training).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.adapter import DiffusionModel
from ..models.attention import block_diffusion_allowed, position_ids
from ..residual import at_least_fp32
from .noise import NoisyBatch


def noisy_logits(
    dm: DiffusionModel, noisy_embeds: torch.Tensor, batch: NoisyBatch, block_length: int | None
) -> torch.Tensor:
    """Logits (B, L, V) at every position of the noisy sequence.

    Block-causal models see [noisy ; clean] under `block_diffusion_allowed`, with the same
    position ids for both copies; only the noisy copy's logits are returned.
    """
    if dm.attention == "bidirectional":
        logits, _ = dm.forward(noisy_embeds, key_valid=batch.key_valid)  # bidirectional: no blocks
        return logits
    block_length = block_length or dm.block_length
    if block_length is None:
        raise ValueError("block-diffusion training needs a block_length")
    length = batch.clean.shape[1]
    positions = position_ids(batch.key_valid)
    logits, _ = dm.call(
        torch.cat([noisy_embeds, dm.embed(batch.clean)], dim=1),
        allowed=block_diffusion_allowed(batch.key_valid, batch.gen_start, block_length, dm.block_grid),
        position_ids=torch.cat([positions, positions], dim=1),
    )
    return logits[:, :length]


def diffusion_loss(logits: torch.Tensor, batch: NoisyBatch) -> torch.Tensor:
    """mean over examples of  sum_{masked i} CE_i / t  /  R."""
    masked = batch.masked
    ce = F.cross_entropy(at_least_fp32(logits[masked]), batch.clean[masked], reduction="none")
    rows = masked.nonzero()[:, 0]
    weighted = ce * batch.weight[masked].to(ce.dtype)
    per_example = torch.zeros(masked.shape[0], dtype=ce.dtype, device=ce.device).index_add(0, rows, weighted)
    return (per_example / batch.response_length).mean()
