"""Accuracy vs tokens per step for your own models on any JSONL eval set (the paper's Figure 4).

Each line of --data holds "prompt" and "answer" (exact match after stripping whitespace,
or a synthetic task's checker with --task). Methods: the RCD model decoded with residuals
(warm start when --reference is given, and cold start), the same model without residuals,
and a SeqD baseline model (--baseline). Writes OUT/report.json, report.md, pareto.png.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ..data import get_task, read_jsonl
from ..demo import write_report
from ..eval.sweep import Method, exact_match, parallelism_settings, sweep
from ..models.loading import load
from ..residual import ResidualConfig

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
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--gen-length", type=int, required=True, help="tokens to generate")
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
    rows = read_jsonl(args.data)[: args.limit]
    checker = get_task(args.task).is_correct if args.task else exact_match
    block = args.block_length or args.gen_length
    settings = parallelism_settings(args.gen_length, block, args.tokens_per_step, args.thresholds)
    curves = sweep(methods, settings, rows, tokenizer, checker=checker, batch_size=args.batch_size)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "task": args.task or Path(args.data).name,
        "curves": curves,
        "training": {},
        "decoding": {"gen_length": args.gen_length, "block_length": block},
        "config": {k: v for k, v in vars(args).items() if k != "run"},
        "device": device,
        "total_seconds": time.perf_counter() - started,
    }
    write_report(report, out)
    print((out / "report.md").read_text())
    print(json.dumps({"report": str(out / "report.json")}))
    return 0
