"""Run lm-evaluation-harness with rcd's model type registered: `rcd lm-eval --model rcd ...`.

Every argument is lm-eval's own (see `lm_eval --help`); `--model_args` takes
`pretrained=DIR,residual=entropy,gen_length=512,...` (see `rcd.eval.harness`); multiple-choice
tasks take `mc_num=128,mc_batch_size=32,cfg=0.5` (LLaDA's Monte-Carlo likelihood, see
`rcd.eval.likelihood`). Data-parallel: `accelerate launch -m rcd lm-eval ...`.
Needs the optional extra: pip install "rcd[eval]".
"""

from __future__ import annotations

import argparse
import sys

HELP = "lm-evaluation-harness with the 'rcd' model type (arguments as lm_eval's)"


def register(parser: argparse.ArgumentParser) -> None:
    """Listed for --help only: main() hands the raw arguments to lm-eval before parsing."""
    parser.set_defaults(run=lambda args: run_lm_eval([]))


def run_lm_eval(argv: list[str]) -> int:
    try:
        from lm_eval.__main__ import cli_evaluate

        from ..eval import harness  # noqa: F401  (registers the "rcd" model type)
    except ImportError as err:
        raise SystemExit(f"rcd lm-eval needs lm-eval: pip install 'rcd[eval]' ({err})") from err
    saved = sys.argv
    sys.argv = ["lm-eval", *argv]
    try:
        cli_evaluate()
    finally:
        sys.argv = saved
    return 0
