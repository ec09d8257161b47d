"""Re-grade an existing predictions file (rows with `index` and `completion`) without a model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..eval.scoring import rescore
from ..eval.tasks import BENCHMARKS

HELP = "re-grade a predictions JSONL file against a benchmark's gold answers"


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, choices=tuple(BENCHMARKS))
    parser.add_argument("--data", default=None, help="JSONL data file (default: the packaged one)")
    parser.add_argument("--predictions", required=True, help="JSONL rows with 'index' and 'completion'")
    parser.add_argument("--out", required=True, help="summary JSON to write")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    summary, _ = rescore(args.task, args.predictions, args.data)
    summary = {**summary, "predictions": args.predictions, "data": args.data}
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: summary[k] for k in ("task", "accuracy", "n")}))
    return 0
