"""`rcd` command line: thin parsing that calls the library. `python -m rcd` is the same."""

from __future__ import annotations

import argparse
import sys

from . import demo, eval, generate, lm_eval, score, sweep, train

COMMANDS = {
    "demo": demo,
    "train": train,
    "sweep": sweep,
    "generate": generate,
    "eval": eval,
    "score": score,
    "lm-eval": lm_eval,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["lm-eval"]:  # lm-eval parses its own arguments
        return lm_eval.run_lm_eval(argv[1:])
    parser = argparse.ArgumentParser(
        prog="rcd", description="Residual Context Diffusion for block-wise diffusion language models."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        module.register(sub.add_parser(name, help=module.HELP, description=module.__doc__))
    args = parser.parse_args(argv)
    args.argv = ["rcd", *argv]  # recorded by commands whose results must be reproducible
    return int(args.run(args) or 0)
