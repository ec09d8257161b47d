"""Serve models over HTTP: OpenAI-compatible completions and chat (streaming, batching), the
playground's live denoising stream, /health and Prometheus /metrics. See docs/serving.md.

The decoding flags are those of `rcd generate` and become the server's defaults; a request
changes them in its `rcd` object. Models load once, before the port opens.
"""

from __future__ import annotations

import argparse
import os
import signal

from ..config import add_dataclass_arguments, dataclass_from_args
from ..errors import UsageError
from .options import add_decode_arguments, add_model_arguments, decode_config, load_config, residual_config

HELP = "serve models over an OpenAI-compatible HTTP API (needs the serve extra)"


def register(parser: argparse.ArgumentParser) -> None:
    from ..serve.config import ServeConfig

    add_model_arguments(parser)
    parser.add_argument("--baseline", default=None, help="a second model to serve, decoded as plain SeqD")
    add_dataclass_arguments(parser.add_argument_group("server"), ServeConfig)
    add_decode_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..serve.app import create_app
        from ..serve.backend import LocalBackend
        from ..serve.config import ServeConfig
    except ImportError as err:
        raise UsageError(
            f"rcd serve needs the serve extra ({err.name} is missing): pip install 'rcd[serve]'"
        ) from err
    if args.api_key is None and os.environ.get("RCD_API_KEY"):
        args.api_key = os.environ["RCD_API_KEY"]
    config = dataclass_from_args(ServeConfig, args)  # every option before any model loads
    decode, residual, loading = decode_config(args), residual_config(args), load_config(args)
    try:
        backend = LocalBackend.load(args.model, loading, decode, residual, args.reference, args.baseline)
    except ValueError as err:  # the defaults against a loaded model (its block size, context, ...)
        raise UsageError(str(err)) from err
    # uvicorn drains on SIGTERM, then re-raises it to the handler it found: this one ends in exit 0
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.run(
        create_app(backend, config),
        host=config.host,
        port=config.port,
        log_level="info",
        timeout_graceful_shutdown=None,
    )
    return 0


def _exit_cleanly(signum, frame) -> None:
    raise SystemExit(0)
