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
from transformers import AutoTokenizer

from ..data import get_task
from ..data.jsonl import DataError, iter_jsonl
from ..data.sft import check_string_fields
from ..demo import write_report
from ..errors import UsageError
from ..eval.sweep import Method, exact_match, parallelism_settings, sweep
from ..models.loading import check_reference_tokenizer, load
from ..residual import ResidualConfig
from ..rundir import fingerprint
from ..tokenizer import check_representable

HELP = "sweep decoding parallelism for trained models and report accuracy vs tokens/step"


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def register(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--model", required=True, help="model to decode with residual context (RCD target)")
    parser.add_argument("--reference", help="reference model for the warm start (else cold start only)")
    parser.add_argument("--baseline", help="SeqD baseline model, decoded without residuals")
    parser.add_argument("--data", required=True, help="JSONL eval set with prompt and answer fields")
    parser.add_argument("--task", help="grade with this synthetic task's checker instead of exact match")
    parser.add_argument("--out", default="runs/sweep", help="output directory (default: runs/sweep)")
    parser.add_argument("--gen-length", type=int,
                        help="tokens to generate (default: the longest answer + EOS, rounded up to whole "
                        "blocks and tokens-per-step)")
    parser.add_argument("--block-length", type=int, help="block size (default: gen-length)")
    parser.add_argument("--tokens-per-step", type=_ints, default=[1, 2, 4, 8], help="fixed schedules (default 1,2,4,8)")
    parser.add_argument("--thresholds", type=_floats, default=[0.5, 0.6, 0.7, 0.8, 0.9, 0.95],
                        help="confidence thresholds (default 0.5,...,0.95)")
    parser.add_argument("--res-temperature", type=float, default=1.0, help="residual temperature T_res")
    parser.add_argument("--limit", type=int, help="evaluate the first N problems only")
    parser.add_argument("--batch-size", type=int, default=256, help="problems decoded together")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    # every option and the data first: nothing below loads a model before they are checked
    if args.limit is not None and args.limit < 1 or args.batch_size < 1:
        raise UsageError("--limit and --batch-size must be >= 1")
    if not args.tokens_per_step and not args.thresholds:
        raise UsageError("--tokens-per-step and --thresholds are both empty: nothing to sweep")
    for name in ("model", "reference", "baseline"):
        if getattr(args, name):
            fingerprint(getattr(args, name), what=f"--{name}")  # a path that does not exist
    checker = get_task(args.task).is_correct if args.task else exact_match
    rows = sweep_rows(args.data, needs_answer=not args.task)[: args.limit]
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    for i, row in enumerate(rows):
        check_representable(tokenizer, row["prompt"], f"{args.data}: row {i + 1}: prompt")
    gen_length = args.gen_length or default_gen_length(tokenizer, rows, args.block_length, args.tokens_per_step)
    block = args.block_length or gen_length
    settings = parallelism_settings(gen_length, block, args.tokens_per_step, args.thresholds)
    if args.reference:
        check_reference_tokenizer(args.model, args.reference)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, tokenizer = load(args.model, device=device)
    residual = ResidualConfig(temperature=args.res_temperature)
    methods = []
    if args.baseline:
        methods.append(Method("seqd", load(args.baseline, device=device)[0]))
    if args.reference:
        reference = load(args.reference, device=device)[0]
        methods.append(Method("rcd", model, ResidualConfig(init="reference", temperature=args.res_temperature), reference))
    methods += [Method("rcd-cold" if args.reference else "rcd", model, residual), Method("no-residual", model)]
    curves = sweep(methods, settings, rows, tokenizer, checker=checker, batch_size=args.batch_size)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "task": args.task or Path(args.data).name,
        "curves": curves,
        "training": {},
        "decoding": {"gen_length": gen_length, "block_length": block},
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
