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

from ..config import RES_PREFIX, add_dataclass_arguments, dataclass_from_args
from ..data import get_task, read_jsonl
from ..decode import DecodeConfig
from ..eval.report import write_report
from ..eval.sweep import Method, SweepConfig, exact_match, rcd_methods, sweep
from ..models.loading import load
from ..residual import ResidualConfig

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
    parser.add_argument("--task", help="grade with this synthetic task's checker instead of exact match")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--limit", type=int, help="evaluate the first N problems only")
    add_dataclass_arguments(parser.add_argument_group("settings"), SweepConfig)
    add_dataclass_arguments(parser.add_argument_group("decoding"), DecodeConfig, skip=SWEPT,
                            required=("gen_length",))
    add_dataclass_arguments(parser.add_argument_group("residual (RCD methods)"), ResidualConfig,
                            prefix=RES_PREFIX, skip=PER_METHOD)
    parser.set_defaults(run=run, block_length=None)  # default: one block of gen_length


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    settings_config = dataclass_from_args(SweepConfig, args)
    base = dataclass_from_args(DecodeConfig, args, block_length=args.block_length or args.gen_length)
    residual = dataclass_from_args(ResidualConfig, args, prefix=RES_PREFIX)
    checker = get_task(args.task).is_correct if args.task else exact_match
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, tokenizer = load(args.model, device=device)
    reference = load(args.reference, device=device)[0] if args.reference else None
    baseline = load(args.baseline, device=device)[0] if args.baseline else None
    methods = rcd_methods(model, residual, reference, baseline) + [Method("no-residual", model)]
    rows = read_jsonl(args.data)[: args.limit]
    curves = sweep(methods, settings_config.settings(base), rows, tokenizer, checker=checker,
                   batch_size=settings_config.batch_size)
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
    write_report(report, out)
    print((out / "report.md").read_text())
    print(json.dumps({"report": str(out / "report.json")}))
    return 0
