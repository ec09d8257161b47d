"""`rcd` command line: thin parsing that calls the library. `python -m rcd` is the same."""

from __future__ import annotations

import argparse
import sys

from . import demo, generate, train

COMMANDS = {"demo": demo, "train": train, "generate": generate}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rcd", description="Residual Context Diffusion for block-wise diffusion language models."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        module.register(sub.add_parser(name, help=module.HELP, description=module.__doc__))
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    return int(args.run(args) or 0)
