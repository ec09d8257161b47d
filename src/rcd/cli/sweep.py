"""Accuracy vs tokens per step for your own models on any JSONL eval set (the paper's Figure 4).

Each line of --data holds "prompt" and "answer" ("response" is read as the answer too;
exact match after stripping whitespace, or a synthetic task's checker with --task). Methods: the RCD model decoded with residuals
(warm start when --reference is given, and cold start), the same model without residuals,
and a SeqD baseline model (--baseline). Writes OUT/report.json, report.md, pareto.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from ..app import SweepJob, run_sweep
from ..app.sweep import SWEPT
from ..config import RES_PREFIX, add_dataclass_arguments, dataclass_from_args
from ..data import SYNTHETIC_TASKS
from ..decode import DecodeConfig
from ..eval.sweep import SweepConfig
from ..residual import ResidualConfig

HELP = "sweep decoding parallelism for trained models and report accuracy vs tokens/step"
# the init rule is set per method (warm, cold)
PER_METHOD = ("init", "dirichlet_concentration")


def register(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--model", required=True, help="model to decode with residual context (RCD target)")
    parser.add_argument("--reference", help="reference model for the warm start (else cold start only)")
    parser.add_argument("--baseline", help="SeqD baseline model, decoded without residuals")
    parser.add_argument("--data", required=True, help="JSONL eval set with prompt and answer fields")
    parser.add_argument(
        "--task",
        choices=tuple(SYNTHETIC_TASKS),
        help="grade with this synthetic task's checker instead of exact match",
    )
    parser.add_argument("--out", default="runs/sweep", help="output directory (default: runs/sweep)")
    parser.add_argument("--limit", type=int, help="evaluate the first N problems only")
    add_dataclass_arguments(parser.add_argument_group("settings"), SweepConfig)
    decoding = parser.add_argument_group("decoding")
    decoding.add_argument(
        "--gen-length",
        type=int,
        default=None,
        help="tokens to generate after the prompt "
        "(default: the longest answer + EOS, in whole blocks every tokens-per-step divides)",
    )
    decoding.add_argument(
        "--block-length",
        type=int,
        default=None,
        help="tokens per block (default: one block of the generation length)",
    )
    add_dataclass_arguments(decoding, DecodeConfig, skip=SWEPT)
    add_dataclass_arguments(
        parser.add_argument_group("residual (RCD methods)"),
        ResidualConfig,
        prefix=RES_PREFIX,
        skip=PER_METHOD,
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    fixed = {f.name: getattr(args, f.name) for f in dataclasses.fields(DecodeConfig) if f.name not in SWEPT}
    job = SweepJob(
        model=args.model,
        data=args.data,
        out=args.out,
        reference=args.reference,
        baseline=args.baseline,
        task=args.task,
        limit=args.limit,
        gen_length=args.gen_length,
        block_length=args.block_length,
        settings=dataclass_from_args(SweepConfig, args),
        decode=fixed,
        residual=dataclass_from_args(ResidualConfig, args, prefix=RES_PREFIX),
        config={k: v for k, v in vars(args).items() if k != "run"},
    )
    run_sweep(job)
    out = Path(args.out)
    print((out / "report.md").read_text())
    print(json.dumps({"report": str(out / "report.json")}))
    return 0
