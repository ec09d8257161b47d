"""`rcd` command line: thin parsing that calls the library. `python -m rcd` is the same."""

from __future__ import annotations

import argparse
import os
import sys
import typing

from ..config import options_file_arguments, split_config_flag
from ..errors import UsageError
from . import data, demo, eval, generate, lm_eval, score, serve, sweep, train
from .output import show_third_party_output

COMMANDS = {
    "demo": demo,
    "data": data,
    "train": train,
    "sweep": sweep,
    "generate": generate,
    "eval": eval,
    "score": score,
    "lm-eval": lm_eval,
    "serve": serve,
}


def main(argv: list[str] | None = None) -> int:
    """Run a command; an error is one line `rcd: error: ...` (exit 2: usage, 1: failure).

    `--debug` (anywhere on the line) or RCD_DEBUG=1 shows the traceback instead; `--verbose`
    (or `--debug`) shows other libraries' progress bars and warnings, hidden otherwise.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv or os.environ.get("RCD_DEBUG", "") not in ("", "0")
    show_third_party_output(debug or "--verbose" in argv)
    argv = [a for a in argv if a not in ("--debug", "--verbose")]
    try:
        return _run(argv)
    except KeyboardInterrupt:
        print("rcd: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if debug:
            raise
        print(f"rcd: error: {one_line(err)}", file=sys.stderr)
        return 2 if isinstance(err, UsageError) else 1


def one_line(err: BaseException) -> str:
    """The error's message on one line; an unexpected error type is named, with the way to the traceback."""
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, FileNotFoundError) and err.filename and str(err.filename) not in text:
        text = f"{text}: {err.filename}"
    expected = (ValueError, OSError, RuntimeError, ImportError, NotImplementedError, KeyError)
    if not isinstance(err, expected) or type(err) is RuntimeError:
        text = f"{type(err).__name__}: {text} (rerun with --debug for the traceback)"
    return text


class _Parser(argparse.ArgumentParser):
    """argparse with its errors as UsageError: one line (`rcd: error: ...`, exit 2), no usage block."""

    def error(self, message: str) -> typing.NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command (lm-eval's lists it only: lm-eval parses its own arguments)."""
    parser = _Parser(
        prog="rcd",
        description="Residual Context Diffusion for block-wise diffusion language models.",
        epilog="Errors are reported on one line; --debug (or RCD_DEBUG=1) shows the traceback. Other "
        "libraries' progress bars and warnings show with --verbose (or --debug).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        command = sub.add_parser(name, help=module.HELP, description=module.__doc__)
        module.register(command)
        command.add_argument(
            "--config",
            metavar="FILE",
            help="YAML/JSON file of this command's options "
            "(keys: flag names, e.g. `res-dropout: 0.3`); flags given here override it",
        )
    return parser


def command_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """{command name: its parser} of `build_parser()`."""
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def _run(argv: list[str]) -> int:
    if argv[:1] == ["lm-eval"]:  # lm-eval parses its own arguments
        return lm_eval.run_lm_eval(argv[1:])
    parser = build_parser()
    sub = command_parsers(parser)
    path, argv = split_config_flag(argv)
    if path is not None:
        if not argv or argv[0] not in sub:
            raise UsageError("--config follows the command: rcd COMMAND --config FILE")
        argv = [argv[0], *options_file_arguments(path, sub[argv[0]]), *argv[1:]]
    args = parser.parse_args(argv)
    args.argv = ["rcd", *argv]  # recorded by commands whose results must be reproducible
    return int(args.run(args) or 0)
