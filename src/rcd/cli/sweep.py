"""Accuracy vs tokens per step for your own models on any JSONL eval set (the paper's Figure 4).

Each line of --data holds "prompt" and "answer" ("response" is read as the answer too;
exact match after stripping whitespace, or a synthetic task's checker with --task). Methods: the RCD model decoded with residuals
(warm start when --reference is given, and cold start), the same model without residuals,
and a SeqD baseline model (--baseline). Writes OUT/report.json, report.md, pareto.png.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from ..config import RES_PREFIX, add_dataclass_arguments, dataclass_from_args
from ..data import SYNTHETIC_TASKS, get_synthetic_task
from ..data.jsonl import DataError, iter_jsonl
from ..data.sft import check_string_fields
from ..decode import DecodeConfig
from ..errors import UsageError
from ..eval.report import write_report
from ..eval.sweep import Method, SweepConfig, exact_match, rcd_methods, sweep
from ..models.loading import check_reference_tokenizer, load, load_tokenizer
from ..residual import ResidualConfig
from ..rundir import fingerprint
from ..tokenizer import check_representable

HELP = "sweep decoding parallelism for trained models and report accuracy vs tokens/step"
# the sweep sets the commit rule itself, and the init rule per method (warm, cold)
SWEPT = ("steps", "threshold")
PER_METHOD = ("init", "dirichlet_concentration")


def register(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--model", required=True, help="model to decode with residual context (RCD target)")
    parser.add_argument("--reference", help="reference model for the warm start (else cold start only)")
    parser.add_argument("--baseline", help="SeqD baseline model, decoded without residuals")
    parser.add_argument("--data", required=True, help="JSONL eval set with prompt and answer fields")
    parser.add_argument("--task", choices=tuple(SYNTHETIC_TASKS),
                        help="grade with this synthetic task's checker instead of exact match")
    parser.add_argument("--out", default="runs/sweep", help="output directory (default: runs/sweep)")
    parser.add_argument("--limit", type=int, help="evaluate the first N problems only")
    add_dataclass_arguments(parser.add_argument_group("settings"), SweepConfig)
    add_dataclass_arguments(parser.add_argument_group("decoding"), DecodeConfig, skip=SWEPT)
    add_dataclass_arguments(parser.add_argument_group("residual (RCD methods)"), ResidualConfig,
                            prefix=RES_PREFIX, skip=PER_METHOD)
    # gen_length default: the longest answer + EOS, rounded up to whole blocks and tokens-per-step;
    # block_length default: one block of gen_length
    parser.set_defaults(run=run, gen_length=None, block_length=None)


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    # every option and the data first: nothing below loads a model before they are checked
    settings_config = dataclass_from_args(SweepConfig, args)
    residual = dataclass_from_args(ResidualConfig, args, prefix=RES_PREFIX)
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be >= 1")
    if not settings_config.tokens_per_step and not settings_config.thresholds:
        raise UsageError("--tokens-per-step and --thresholds are both empty: nothing to sweep")
    for name in ("model", "reference", "baseline"):
        if getattr(args, name):
            fingerprint(getattr(args, name), what=f"--{name}")  # a path that does not exist
    checker = get_synthetic_task(args.task).is_correct if args.task else exact_match
    rows = sweep_rows(args.data, needs_answer=not args.task)[: args.limit]
    tokenizer, _ = load_tokenizer(args.model)
    for i, row in enumerate(rows):
        check_representable(tokenizer, row["prompt"], f"{args.data}: row {i + 1}: prompt")
    gen_length = args.gen_length or default_gen_length(
        tokenizer, rows, args.block_length, list(settings_config.tokens_per_step)
    )
    base = dataclass_from_args(DecodeConfig, args, gen_length=gen_length, block_length=args.block_length or gen_length)
    settings = settings_config.settings(base)
    if args.reference:
        check_reference_tokenizer(args.model, args.reference)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, tokenizer = load(args.model, device=device)
    reference = load(args.reference, device=device)[0] if args.reference else None
    baseline = load(args.baseline, device=device)[0] if args.baseline else None
    methods = rcd_methods(model, residual, reference, baseline) + [Method("no-residual", model)]
    curves = sweep(methods, settings, rows, tokenizer, checker=checker, batch_size=settings_config.batch_size)
    out = Path(args.out)
    report = {
        "task": args.task or Path(args.data).name,
        "curves": curves,
        "training": {},
        "decoding": {"gen_length": base.gen_length, "block_length": base.block_length},
        "config": {k: v for k, v in vars(args).items() if k != "run"},
        "device": device,
        "total_seconds": time.perf_counter() - started,
    }
    write_report(report, out, title=f"rcd sweep: {report['task']}")
    print((out / "report.md").read_text())
    print(json.dumps({"report": str(out / "report.json")}))
    return 0


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
                raise DataError(f"{where}: needs an 'answer' field (or 'response'), or give --task for a task's checker")
            if not isinstance(row["answer"], (str, int, float)) or isinstance(row["answer"], bool):
                raise DataError(f"{where}: field 'answer' must be text or a number, got {type(row['answer']).__name__}")
        check_string_fields(row, ("prompt",), where)
        rows.append(row)
    if not rows:
        raise DataError(f"{path}: no rows (the file is empty)")
    return rows


def default_gen_length(tokenizer, rows: list[dict], block_length: int | None, tokens_per_step: list[int]) -> int:
    """Room for the longest answer and EOS, in whole blocks that every tokens-per-step divides."""
    answers = [str(r.get("answer", r.get("response", ""))) for r in rows]
    longest = max(len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers)
    unit = math.lcm(block_length or 1, *tokens_per_step) if block_length else math.lcm(1, *tokens_per_step)
    return -(-(longest + 1) // unit) * unit
