"""A sweep of decoding parallelism for trained models, and its report (the paper's Figure 4).

`run_sweep` is `rcd sweep`: every option and the data are checked before any model loads.
The demo composes the same pieces (`sweep_methods`, `sweep_report`) around its own models.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data import get_synthetic_task
from ..data.jsonl import DataError, iter_jsonl
from ..data.sft import check_string_fields
from ..decode import DecodeConfig
from ..errors import UsageError
from ..eval.report import write_report
from ..eval.sweep import Method, SweepConfig, exact_match, rcd_methods, sweep
from ..models.loading import LoadConfig, load_tokenizer
from ..residual import ResidualConfig
from ..rundir import fingerprint
from ..tokenizer import check_representable
from . import lengths
from .models import LoadedModels, load_models

# the sweep sets the commit rule itself (fixed schedules, thresholds), and the lengths
SWEPT = ("steps", "threshold", "gen_length", "block_length")


@dataclass(frozen=True)
class SweepJob:
    """What `rcd sweep` decodes: the models, the eval set, the settings and the fixed options."""

    model: str
    data: str
    out: str = "runs/sweep"
    reference: str | None = None
    baseline: str | None = None
    task: str | None = None
    limit: int | None = None
    gen_length: int | None = None  # None: the longest answer + EOS (`lengths.generation_length`)
    block_length: int | None = None  # None: one block of gen_length
    settings: SweepConfig = field(default_factory=SweepConfig)
    decode: dict[str, Any] = field(default_factory=dict)  # DecodeConfig fields the sweep keeps fixed
    residual: ResidualConfig = field(default_factory=ResidualConfig)
    load: LoadConfig = field(default_factory=LoadConfig)
    config: dict[str, Any] = field(default_factory=dict)  # the options as given, for the report

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise UsageError("--limit must be >= 1")
        if not self.settings.tokens_per_step and not self.settings.thresholds:
            raise UsageError("--tokens-per-step and --thresholds are both empty: nothing to sweep")
        swept = sorted(set(self.decode) & set(SWEPT))
        if swept:
            raise UsageError(f"{swept} are set by the sweep itself, not among its fixed decoding options")


def run_sweep(job: SweepJob) -> dict[str, Any]:
    """Decode the eval set under every setting with each method; write OUT/report.* and return the report."""
    started = time.perf_counter()
    for name in ("model", "reference", "baseline"):
        if getattr(job, name):
            fingerprint(getattr(job, name), what=f"--{name}")  # a path that does not exist
    checker = get_synthetic_task(job.task).is_correct if job.task else exact_match
    rows = sweep_rows(job.data, needs_answer=not job.task)[: job.limit]
    # through the model-name checks: a Hub id without a network fails at once, not after the Hub's retries
    tokenizer, _ = load_tokenizer(job.model, trust_remote_code=job.load.trust_remote_code)
    for i, row in enumerate(rows):
        check_representable(tokenizer, row["prompt"], f"{job.data}: row {i + 1}: prompt")
    gen_length = job.gen_length or lengths.generation_length(
        tokenizer,
        [r.get("answer", r.get("response", "")) for r in rows],
        job.block_length,
        job.settings.tokens_per_step,
    )
    try:
        base = DecodeConfig(
            **job.decode,
            gen_length=gen_length,
            block_length=lengths.decode_block_length(job.block_length, gen_length),
        )
    except ValueError as err:
        raise UsageError(str(err)) from err
    settings = job.settings.settings(base)

    models = load_models(job.model, job.reference, job.baseline, job.load)
    methods = sweep_methods(models, job.residual, cold_start=True, no_residual=True)
    curves = sweep(
        methods, settings, rows, models.tokenizer, checker=checker, batch_size=job.settings.batch_size
    )
    task = job.task or Path(job.data).name
    report = sweep_report(
        task,
        curves,
        models.device,
        started,
        decoding={"gen_length": base.gen_length, "block_length": base.block_length},
        config=job.config,
    )
    write_report(report, Path(job.out), title=f"rcd sweep: {task}")
    return report


def sweep_methods(
    models: LoadedModels, residual: ResidualConfig, *, cold_start: bool, no_residual: bool
) -> list[Method]:
    """SeqD (the baseline), RCD warm start (with a reference), RCD cold start, and the RCD
    model decoded without residuals (`no_residual`)."""
    methods = rcd_methods(models.model, residual, models.reference, models.baseline, cold_start=cold_start)
    return methods + ([Method("no-residual", models.model)] if no_residual else [])


def sweep_report(
    task: str,
    curves: dict[str, list[dict]],
    device: str,
    started: float,
    *,
    decoding: dict[str, Any],
    config: dict[str, Any],
    training: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The report `write_report` writes: curves, what was trained and how it was decoded."""
    return {
        "task": task,
        "curves": curves,
        "training": training or {},
        "decoding": decoding,
        "config": config,
        "device": device,
        "total_seconds": time.perf_counter() - started,
    }


def sweep_rows(path: str, *, needs_answer: bool) -> list[dict]:
    """Rows of the eval set, each checked: a string prompt, and an answer for exact match."""
    rows = []
    for number, row in iter_jsonl(path):
        where = f"{path}:{number}"
        if "prompt" not in row:
            raise DataError(f"{where}: needs a 'prompt' field")
        if needs_answer:
            if "answer" not in row and "response" in row:
                row = {**row, "answer": row["response"]}
            if "answer" not in row:
                raise DataError(
                    f"{where}: needs an 'answer' field (or 'response'), or give --task for a task's checker"
                )
            answer = row["answer"]
            if not isinstance(answer, (str, int, float)) or isinstance(answer, bool):
                raise DataError(
                    f"{where}: field 'answer' must be text or a number, got {type(answer).__name__}"
                )
        check_string_fields(row, ("prompt",), where)
        rows.append(row)
    if not rows:
        raise DataError(f"{path}: no rows (the file is empty)")
    return rows
