"""A graded prompt set (JSONL or rows + a grader) and batched decoding of it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

import rcd
from rcd.data import TASKS, read_jsonl
from rcd.eval.decoder import Decoder
from rcd.eval.sweep import Checker, exact_match


@dataclass
class EvalSet:
    rows: list[dict[str, Any]]
    grade: Checker = exact_match

    @classmethod
    def from_jsonl(cls, path: str | Path, task: str | None = None) -> EvalSet:
        """Rows with a `prompt`; graded by rcd.data.TASKS[task] if given, else exact `answer`."""
        return cls(read_jsonl(path), TASKS[task].is_correct if task else exact_match)

    def score(self, completions: Sequence[str]) -> dict[str, float]:
        """Accuracy and its binomial standard error (the noise level of a comparison)."""
        n = len(self.rows)
        accuracy = sum(self.grade(row, c) for row, c in zip(self.rows, completions)) / n
        return {"accuracy": accuracy, "stderr": math.sqrt(accuracy * (1 - accuracy) / n), "n": n}


def decode(
    model: torch.nn.Module,
    tokenizer,
    evalset: EvalSet,
    decode_config: rcd.DecodeConfig,
    residual: rcd.ResidualConfig | None,
    batch_size: int = 64,
    **overrides: Any,
) -> tuple[torch.Tensor, list[str]]:
    """(generated ids (N, gen_length), completions cut at EOS) for every row, in batches."""
    decoder = Decoder(model, tokenizer, replace(decode_config, **overrides), residual)
    generated, texts = [], []
    for start in range(0, len(evalset.rows), batch_size):
        batch_texts, out = decoder.complete([row["prompt"] for row in evalset.rows[start : start + batch_size]])
        generated.append(out.generated.cpu())
        texts += batch_texts
    return torch.cat(generated), texts
