"""Where the rows of a batch sit while they decode, for the two block grids.

"generation": the grid starts at the first generated position (rcd's own models and any
    model rcd trained): prompts left-padded to one length, G masks after them, blocks
    [P + k*b, P + (k+1)*b).
"absolute": the grid starts at each row's first token, as SDAR's generation and training
    put it (block k = positions [k*b, (k+1)*b)); the first decoded block finishes the
    prompt's last partial block, and the last one is decoded whole (SDAR pads the sequence
    with [M] to the end of that block; the first G generated tokens are returned).
    A row's grid then depends on its prompt length, so rows of one batch would disagree;
    each row is instead left-padded by a multiple of b so that all rows' decoded regions end
    at the same column W. Every row's block boundaries then fall on the same columns, the
    batch steps through blocks together, and a row meets exactly the grid, positions and
    blocks it meets alone: rows whose prompt reaches into a block just hold prompt tokens
    there (never masked, like finished positions).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models.attention import BLOCK_GRIDS


@dataclass
class Layout:
    ids: torch.Tensor  # (B, W): padding, prompt, [M] to be generated
    key_valid: torch.Tensor  # (B, W) bool: False on padding
    window_start: int  # first column of the first decoded block (a block boundary of every row)
    gen_starts: torch.Tensor  # (B,) column of each row's first generated token
    gen_length: int
    block_length: int

    @property
    def n_blocks(self) -> int:
        return (self.ids.shape[1] - self.window_start) // self.block_length

    def generated_columns(self) -> torch.Tensor:
        """(B, W) bool: the columns each row returns (its first gen_length generated positions)."""
        columns = torch.arange(self.ids.shape[1], device=self.ids.device)[None]
        starts = self.gen_starts[:, None]
        return (columns >= starts) & (columns < starts + self.gen_length)

    def generated(self) -> torch.Tensor:
        """(B, gen_length) the returned tokens of each row."""
        return self.ids[self.generated_columns()].view(-1, self.gen_length)


def layout(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    gen_length: int,
    block_length: int,
    mask_id: int,
    grid: str,
) -> Layout:
    """The decoding layout of left-padded prompts (B, P) under `grid` (see module doc)."""
    if grid not in BLOCK_GRIDS:
        raise ValueError(f"block grid must be one of {BLOCK_GRIDS}, got {grid!r}")
    batch, width = input_ids.shape
    device = input_ids.device
    valid = attention_mask.bool()
    if grid == "generation":
        return Layout(
            ids=torch.cat([input_ids, input_ids.new_full((batch, gen_length), mask_id)], 1),
            key_valid=torch.cat([valid, valid.new_ones(batch, gen_length)], 1),
            window_start=width,
            gen_starts=torch.full((batch,), width, device=device),
            gen_length=gen_length,
            block_length=block_length,
        )
    lengths = valid.sum(-1)
    ends = -(-(lengths + gen_length) // block_length) * block_length  # each row's decoded end
    total = int(ends.max())
    pads = total - ends
    columns = torch.arange(total, device=device)[None]
    key_valid = columns >= pads[:, None]
    ids = input_ids.new_full((batch, total), mask_id)
    prompt_cols = key_valid & (columns < (pads + lengths)[:, None])
    ids[prompt_cols] = input_ids[valid]
    filler = input_ids[valid].reshape(-1)[:1].expand(batch * total).reshape(batch, total)
    ids = torch.where(key_valid, ids, filler)  # padding: any real id, never attended
    first_blocks = pads + torch.div(lengths, block_length, rounding_mode="floor") * block_length
    return Layout(
        ids=ids,
        key_valid=key_valid,
        window_start=int(first_blocks.min()),
        gen_starts=pads + lengths,
        gen_length=gen_length,
        block_length=block_length,
    )
