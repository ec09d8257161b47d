"""The live picture of a decoding batch, built from the loop's per-step `TraceStep`s.

Per row: the canvas (each generated position's committed id, -1 while masked), the step at
which each position was committed, and for the step just made the confidence and the alpha
fed back at the positions still masked. Runs on the decoding thread; a `RowStep` is a plain
snapshot handed to the request's event loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..decode import TraceStep


@dataclass(frozen=True)
class RowStep:
    block: int
    step: int  # step within the block
    nfe: int  # denoising passes of the decoded model so far that this row took part in
    canvas: list[int]  # committed id per generated position, -1 while masked
    committed: list[int]  # generated positions committed by this step
    order: list[int]  # per position: the row's step index that committed it, -1 if not yet
    confidence: list[float | None]  # still-masked positions of the current block, else None
    alpha: list[float | None]
    block_done: bool  # no masked position left in this block: its text is final


class BatchCanvas:
    def __init__(self, rows: int, gen_length: int):
        self.gen_length = gen_length
        self.canvas = torch.full((rows, gen_length), -1, dtype=torch.long)
        self.order = torch.full((rows, gen_length), -1, dtype=torch.long)
        self.passes = torch.zeros(rows, dtype=torch.long)

    def update(self, step: TraceStep) -> None:
        """Apply one step's commits (all rows)."""
        self.candidates = ~step.confidence.isnan()
        self.columns = (
            step.block_start + torch.arange(step.committed.shape[1])[None] - step.gen_starts[:, None]
        )
        self.inside = (self.columns >= 0) & (self.columns < self.gen_length)
        self.step = step
        active = self.candidates.any(-1)
        for row in torch.nonzero(active).flatten().tolist():
            keep = step.committed[row] & self.inside[row]
            positions = self.columns[row, keep]
            self.canvas[row, positions] = step.tokens[row, keep]
            self.order[row, positions] = int(self.passes[row])
        self.passes += active.long()

    def block_done(self, row: int) -> bool:
        """The last step committed this row's last masked position of the block."""
        return bool(self.candidates[row].any()) and not bool(
            (self.candidates[row] & ~self.step.committed[row]).any()
        )

    def row(self, row: int) -> RowStep:
        """The snapshot of one row after the last `update`."""
        step, inside = self.step, self.inside[row]
        committed = step.committed[row] & inside
        masked = self.candidates[row] & ~step.committed[row] & inside
        confidence: list[float | None] = [None] * self.gen_length
        alpha: list[float | None] = [None] * self.gen_length
        for j in torch.nonzero(masked).flatten().tolist():
            position = int(self.columns[row, j])
            confidence[position] = _number(step.confidence[row, j])
            alpha[position] = _number(step.alpha[row, j])
        return RowStep(
            block=step.block,
            step=step.step,
            nfe=int(self.passes[row]),
            canvas=self.canvas[row].tolist(),
            committed=self.columns[row, committed].tolist(),
            order=self.order[row].tolist(),
            confidence=confidence,
            alpha=alpha,
            block_done=self.block_done(row),
        )


def _number(value: torch.Tensor) -> float | None:
    number = float(value)
    return None if math.isnan(number) else round(number, 5)
