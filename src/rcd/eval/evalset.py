"""A graded prompt set: JSONL (or rows) and a grader."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data import SYNTHETIC_TASKS, read_jsonl
from .sweep import Checker, exact_match


@dataclass
class EvalSet:
    rows: list[dict[str, Any]]
    grade: Checker = exact_match

    @classmethod
    def from_jsonl(cls, path: str | Path, task: str | None = None) -> EvalSet:
        """Rows with a `prompt`; graded by rcd.data.SYNTHETIC_TASKS[task] if given, else exact `answer`."""
        return cls(read_jsonl(path), SYNTHETIC_TASKS[task].is_correct if task else exact_match)

    def score(self, completions: Sequence[str]) -> dict[str, float]:
        """Accuracy and its binomial standard error (the noise level of a comparison)."""
        n = len(self.rows)
        accuracy = sum(self.grade(row, c) for row, c in zip(self.rows, completions)) / n
        return {"accuracy": accuracy, "stderr": math.sqrt(accuracy * (1 - accuracy) / n), "n": n}
