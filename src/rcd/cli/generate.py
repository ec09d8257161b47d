"""Generate completions for prompts with a saved dLLM, with or without residual context."""

from __future__ import annotations

import argparse

from ..app import complete_prompts
from .options import add_decode_arguments, add_model_arguments, decode_config, load_config, residual_config

HELP = "decode prompts with a saved model"


def register(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--prompt", action="append", required=True, help="a prompt; repeat for a batch")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling noise (--temperature > 0)")
    add_decode_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    decode, residual = decode_config(args), residual_config(args)  # options first: before any model loads
    texts, out, seconds = complete_prompts(
        args.model, args.prompt, load_config(args), decode, residual, args.reference, seed=args.seed
    )
    for prompt, text in zip(args.prompt, texts):
        print(f"{prompt!r} -> {text!r}")
    print(
        f"forward passes: {out.nfe} (+{out.reference_nfe} reference), "
        f"tokens/step {out.tokens_per_step:.2f}, {seconds:.2f}s"
    )
    return 0
