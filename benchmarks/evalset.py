"""A graded prompt set (JSONL or rows + a grader) and batched decoding of it."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

import rcd
from rcd.data import TASKS, read_jsonl
from rcd.decode.text import stop_ids

Grader = Callable[[dict[str, Any], str], bool]


def exact_answer(row: dict[str, Any], completion: str) -> bool:
    """The default grader: the completion equals the row's `answer` (or `response`)."""
    return completion.strip() == str(row.get("answer", row.get("response", ""))).strip()


@dataclass
class EvalSet:
    rows: list[dict[str, Any]]
    grade: Grader = exact_answer

    @classmethod
    def from_jsonl(cls, path: str | Path, task: str | None = None) -> EvalSet:
        """Rows with a `prompt`; graded by rcd.data.TASKS[task] if given, else exact answer."""
        grade = TASKS[task].is_correct if task else exact_answer
        return cls(read_jsonl(path), grade)

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
    eos = stop_ids(tokenizer, model.config)
    config = replace(decode_config, **overrides)
    generated, texts = [], []
    for start in range(0, len(evalset.rows), batch_size):
        prompts = [row["prompt"] for row in evalset.rows[start : start + batch_size]]
        ids, mask = rcd.encode_prompts(tokenizer, prompts)
        out = rcd.generate(
            model, ids.to(model.device), attention_mask=mask.to(model.device), residual=residual,
            eos_token_id=eos or None, **config.generate_kwargs(),
        )
        generated.append(out.generated.cpu())
        texts += rcd.decode_completions(tokenizer, out.generated, eos)
    return torch.cat(generated), texts
