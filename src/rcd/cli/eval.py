"""Evaluate a model on a benchmark (GSM8K, MATH500, Minerva, AIME), SeqD or RCD, resumable.

Rows are written to OUT/predictions.jsonl as they are made; rerunning the same command
resumes. Data-parallel: `accelerate launch -m rcd eval ...`.
"""

from __future__ import annotations

import argparse
import json

from ..config import add_dataclass_arguments, dataclass_from_args
from ..eval.runner import EvalConfig, evaluate
from .options import add_decode_arguments, add_model_arguments, decode_config, load_config, residual_config

HELP = "evaluate a model on a benchmark (resumable, data-parallel with accelerate)"


def register(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--out", required=True, help="output directory (predictions, options, summary)")
    add_dataclass_arguments(parser.add_argument_group("evaluation"), EvalConfig)
    add_decode_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    summary = evaluate(
        args.model,
        args.out,
        config=dataclass_from_args(EvalConfig, args),
        decode=decode_config(args),
        residual=residual_config(args),
        load_config=load_config(args),
        reference_path=args.reference,
        command=args.argv,
    )
    if summary is not None:
        keys = ("task", "accuracy", "n", "tokens_per_step", "tokens_per_second", "complete", "pass_at_k")
        shown = {k: summary[k] for k in keys}
        print(json.dumps(shown))
    return 0
