"""Generate completions for prompts with a saved dLLM, with or without residual context."""

from __future__ import annotations

import argparse
import time

import torch

from .. import generate as rcd_generate
from ..decode.text import decode_completions, encode_prompts, stop_ids
from ..models.loading import check_reference_tokenizer, load
from ..tokenizer import check_representable
from .options import add_decode_arguments, add_model_arguments, decode_config, load_config, residual_config

HELP = "decode prompts with a saved model"


def register(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser)
    parser.add_argument("--prompt", action="append", required=True, help="a prompt; repeat for a batch")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling noise (--temperature > 0)")
    add_decode_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config, residual = decode_config(args), residual_config(args)  # options first: before any model loads
    options = load_config(args).kwargs()
    if args.reference:
        check_reference_tokenizer(args.model, args.reference, options["trust_remote_code"])
    model, tokenizer = load(args.model, **options)
    reference = load(args.reference, **options)[0] if args.reference else None
    for i, prompt in enumerate(args.prompt):
        check_representable(tokenizer, prompt, f"--prompt {i + 1}")
    input_ids, attention_mask = encode_prompts(tokenizer, args.prompt)
    eos = stop_ids(tokenizer, model.config)
    start = time.perf_counter()
    out = rcd_generate(
        model,
        input_ids,
        attention_mask=attention_mask,
        residual=residual,
        reference=reference,
        eos_token_id=eos or None,
        generator=torch.Generator(model.device).manual_seed(args.seed),
        **config.generate_kwargs(),
    )
    seconds = time.perf_counter() - start
    for prompt, text in zip(args.prompt, decode_completions(tokenizer, out.generated, eos)):
        print(f"{prompt!r} -> {text!r}")
    print(f"forward passes: {out.nfe} (+{out.reference_nfe} reference), "
          f"tokens/step {out.tokens_per_step:.2f}, {seconds:.2f}s")
    return 0
