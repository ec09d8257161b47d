"""The main job. For now: a real end-to-end generation with a tiny model, SeqD vs RCD."""

from __future__ import annotations

import argparse
import time


from .. import ResidualConfig, char_tokenizer, generate, tiny_model
from ..decode.text import decode_completions, encode_prompts

HELP = "run the demo (tiny model on CPU, SeqD vs RCD)"


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    tokenizer = char_tokenizer()
    model = tiny_model(len(tokenizer), seed=args.seed, mask_token_id=tokenizer.mask_token_id,
                       hidden_size=128, num_hidden_layers=4)
    prompts = ["12+34=", "sort 5 3 9 1:", "7*8="]
    input_ids, attention_mask = encode_prompts(tokenizer, prompts)
    print(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters (untrained)")
    for name, residual in [("SeqD", None), ("RCD", ResidualConfig())]:
        for rule in [dict(steps=32), dict(threshold=0.05)]:
            start = time.perf_counter()
            out = generate(model, input_ids, attention_mask=attention_mask, gen_length=32, block_length=16,
                           residual=residual, **rule)
            seconds = time.perf_counter() - start
            texts = decode_completions(tokenizer, out.generated)
            print(f"{name:5s} {rule}: {out.nfe} passes, {out.tokens_per_step:.2f} tokens/step, "
                  f"{seconds:.2f}s, first: {texts[0]!r}")
    return 0
