"""Train tiny dLLMs on a synthetic task (CPU, minutes) and show RCD against SeqD.

Writes OUT/report.json, OUT/report.md, OUT/pareto.png (accuracy vs tokens per step) and
OUT/trace.png (one problem's denoising trace), prints the table and the `rcd serve` command
that opens the three models in the browser playground.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import add_dataclass_arguments, dataclass_from_args
from ..demo import DemoConfig, run_demo

HELP = "train tiny models on a synthetic task and compare RCD with SeqD"


def register(parser: argparse.ArgumentParser) -> None:
    add_dataclass_arguments(parser, DemoConfig)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = dataclass_from_args(DemoConfig, args)
    report = run_demo(config)
    print((Path(config.out) / "report.md").read_text())
    print(f"Watch them denoise in the playground: {report['playground']}\n  then open http://127.0.0.1:8000/")
    return 0
