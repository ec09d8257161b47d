"""Write a synthetic task's data: OUT/train.jsonl, OUT/test.jsonl (disjoint) and OUT/tokenizer.

OUT/tokenizer is the task's character (or word) tokenizer, the TOK_DIR that
`rcd train --model tiny-... --tokenizer TOK_DIR` builds a model around. Prints the paths and
the generation length that holds every answer (a multiple of 8).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..data import SYNTHETIC_TASKS
from ..demo import DemoConfig, prepare_data
from ..errors import UsageError

HELP = "write a synthetic task's train/test JSONL and its tokenizer"


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--task", default="sudoku6", choices=tuple(SYNTHETIC_TASKS), help="synthetic task (default: sudoku6)"
    )
    parser.add_argument("--out", default="data", help="output directory (default: data)")
    parser.add_argument("--n-train", type=int, default=20000, help="training problems (default: 20000)")
    parser.add_argument("--n-test", type=int, default=500, help="held-out problems (default: 500)")
    parser.add_argument(
        "--tokenizer", default="char", choices=("char", "word"), help="one token per character or word"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the problems (default: 0)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.n_train < 1 or args.n_test < 1:
        raise UsageError("--n-train and --n-test must be >= 1")
    config = DemoConfig(
        task=args.task, n_train=args.n_train, n_test=args.n_test, tokenizer=args.tokenizer, seed=args.seed
    )
    train, test, tokenizer, gen_length = prepare_data(config, Path(args.out))
    print(
        json.dumps(
            {"train": str(train), "test": str(test), "tokenizer": str(tokenizer), "gen_length": gen_length}
        )
    )
    return 0
