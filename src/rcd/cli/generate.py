"""Generate completions for prompts with a saved dLLM, with or without residual context."""

from __future__ import annotations

import argparse
import time

from .. import generate as rcd_generate
from ..decode.text import decode_completions, encode_prompts, stop_ids
from ..models.loading import load
from .options import add_decode_arguments, add_model_arguments, decode_config, load_config, residual_config

HELP = "decode prompts with a saved model"


def register(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--prompt", action="append", required=True, help="a prompt; repeat for a batch")
    add_decode_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    options = load_config(args).kwargs()
    model, tokenizer = load(args.model, **options)
    reference = load(args.reference, **options)[0] if args.reference else None
    config = decode_config(args)
    input_ids, attention_mask = encode_prompts(tokenizer, args.prompt)
    eos = stop_ids(tokenizer, model.config)
    start = time.perf_counter()
    out = rcd_generate(
        model,
        input_ids,
        config,
        attention_mask=attention_mask,
        residual=residual_config(args),
        reference=reference,
        eos_token_id=eos or None,
    )
    seconds = time.perf_counter() - start
    for prompt, text in zip(args.prompt, decode_completions(tokenizer, out.generated, eos)):
        print(f"{prompt!r} -> {text!r}")
    print(f"forward passes: {out.nfe} (+{out.reference_nfe} reference), "
          f"tokens/step {out.tokens_per_step:.2f}, {seconds:.2f}s")
    return 0
