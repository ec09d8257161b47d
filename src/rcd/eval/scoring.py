"""Summaries of graded rows, and re-grading a predictions file without a model (`rcd score`)."""

from __future__ import annotations

from pathlib import Path

from ..data.jsonl import DataError
from .grading import grade
from .passk import pass_at_k_table
from .predictions import read_rows
from .tasks import get_benchmark, load_problems


def summarize(rows: list[dict], task: str) -> dict:
    """Accuracy (pass@1: the mean over all samples of all problems), pass@1..k and speed figures.

    tokens_per_step pools all rows (decoded positions / forward passes, as
    `GenerationOutput.tokens_per_step`); tokens_per_second divides decoded positions by
    decoding time per process.
    """
    n = len(rows)
    tokens = sum(r.get("tokens", 0) for r in rows)
    passes = sum(r.get("nfe", 0) for r in rows)
    seconds = sum(r.get("seconds", 0.0) for r in rows)
    return {
        "task": task,
        "accuracy": sum(bool(r["correct"]) for r in rows) / n if n else 0.0,
        "n": n,
        "n_problems": len({r["index"] for r in rows}),
        "tokens_per_step": tokens / passes if passes else None,
        "tokens_per_second": tokens / seconds if seconds else None,
        "mean_nfe": passes / n if n else None,
        "mean_completion_tokens": sum(r.get("completion_tokens", 0) for r in rows) / n if n else None,
        "pass_at_k": pass_at_k_table(rows),
    }


def rescore(
    task_name: str, predictions: str | Path, data: str | Path | None = None
) -> tuple[dict, list[dict]]:
    """Grade every row's `completion` against the data file's gold answer at row `index`.

    Returns the summary and the re-graded rows (`answer`, `gold`, `correct` replaced).
    """
    task = get_benchmark(task_name)
    if not Path(predictions).is_file():
        raise DataError(f"{predictions}: no such predictions file")
    rows = read_rows(predictions)
    if not rows:
        raise DataError(f"{predictions}: no rows to score (the file is empty)")
    problems = load_problems(task, data)
    regraded = []
    seen: dict[tuple[int, int], int] = {}
    for number, row in enumerate(rows, 1):
        if "index" not in row or "completion" not in row:
            raise DataError(f"{predictions}:{number}: a row needs 'index' and 'completion'")
        index, sample = row["index"], row.get("sample", 0)
        if not isinstance(index, int) or not 0 <= index < len(problems):
            raise DataError(f"{predictions}:{number}: index {index!r} is not a row of the data file")
        if not isinstance(row["completion"], str):
            raise DataError(
                f"{predictions}:{number}: 'completion' must be a string, got {type(row['completion']).__name__}"
            )
        if (index, sample) in seen:
            raise DataError(
                f"{predictions}:{number}: problem {index} sample {sample} was already scored at line "
                f"{seen[index, sample]} (a duplicate row would count twice)"
            )
        seen[index, sample] = number
        gold = problems[index].gold
        answer, correct = grade(row["completion"], gold, task.style)
        regraded.append({**row, "answer": answer, "gold": gold, "correct": correct})
    return summarize(regraded, task.name), regraded
