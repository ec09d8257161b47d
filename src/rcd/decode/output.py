"""What a generation returns: sequences, forward-pass counts, and an optional trace."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class TraceStep:
    """One denoising step of the current block, for pictures and debugging.

    Tensors are (B, block_length) on the CPU (`gen_starts`: (B,)): column `block_start + j`
    of row r is its generated position `block_start + j - gen_starts[r]`; `committed`
    positions took their token this step; `confidence` is the chosen token's probability (NaN where not masked);
    `alpha` the residual weight fed into this step (NaN where not masked, 0 under SeqD);
    `tokens` the token predicted at every position of the block.
    """

    block: int
    step: int
    block_start: int
    gen_starts: torch.Tensor
    committed: torch.Tensor
    confidence: torch.Tensor
    alpha: torch.Tensor
    tokens: torch.Tensor


@dataclass
class GenerationOutput:
    """Result of `rcd.generate`.

    sequences: (B, prompt + gen_length) ids, prompt included.
    nfe: forward passes of the decoded model (its 'self' init passes included).
    reference_nfe: forward passes of the reference model (warm start).
    row_forward_passes: per row, forward passes of either model it took part in (a row that
        stopped early or finished its block is idle in later passes of the batch).
    generated_tokens: per row, positions decoded by the model (an EOS-filled tail excluded; on
        SDAR's absolute block grid the last block is decoded whole, past gen_length).
    row_reference_passes: per row, the reference passes among its `row_forward_passes`.
    """

    sequences: torch.Tensor
    prompt_length: int
    nfe: int
    reference_nfe: int
    row_forward_passes: torch.Tensor
    generated_tokens: torch.Tensor
    row_reference_passes: torch.Tensor | None = None
    trace: list[TraceStep] | None = field(default=None, repr=False)

    @property
    def generated(self) -> torch.Tensor:
        """(B, gen_length): the generated part of `sequences`."""
        return self.sequences[:, self.prompt_length :]

    @property
    def tokens_per_step(self) -> float:
        """Decoded tokens per forward pass (the paper's parallelism measure), all rows pooled."""
        passes = int(self.row_forward_passes.sum())
        return float(self.generated_tokens.sum()) / passes if passes else 0.0
