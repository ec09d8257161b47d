"""Block-causal decoding with the KV cache of finished blocks vs recomputing the prefix.

A tiny block-causal model (SDAR layout) generates 256 / 1k / 4k tokens, 4 steps per
block of 32 (8 tokens per step), SeqD greedy; the cached and recomputed runs must give
identical tokens (checked and reported).
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

import rcd
from rcd.models.tiny import TINY_PRESETS

from .measure import time_call
from .tiny_decode import VOCAB, describe

BLOCK = 32
PROMPT = 16


def run(device: torch.device, quick: bool) -> list[dict]:
    lengths = (256, 1024) if quick else (256, 1024, 4096)
    model = rcd.tiny_model(
        VOCAB,
        seed=0,
        attention="block-causal",
        block_length=BLOCK,
        max_position_embeddings=8192,
        **TINY_PRESETS["tiny-s"],
    ).to(device)
    prompts = torch.randint(4, VOCAB - 1, (1, PROMPT), generator=torch.Generator().manual_seed(0)).to(device)
    rows = []
    for gen_length in tqdm(lengths, desc="kv cache", leave=False):
        kw = dict(gen_length=gen_length, block_length=BLOCK, steps=gen_length // 8)
        rcd.generate(model, prompts, cache="exact", gen_length=BLOCK, block_length=BLOCK)  # warm-up
        outputs, seconds = {}, {}
        for cache in ("exact", "none"):
            outputs[cache], seconds[cache] = time_call(
                lambda: rcd.generate(model, prompts, cache=cache, **kw), device
            )
        rows.append(
            {
                "model": describe("tiny-s block-causal", model),
                "gen_length": gen_length,
                "block_length": BLOCK,
                "forward_passes": outputs["exact"].nfe,
                "cached_s": seconds["exact"],
                "recompute_s": seconds["none"],
                "speedup": seconds["none"] / seconds["exact"],
                "identical_tokens": bool(torch.equal(outputs["exact"].sequences, outputs["none"].sequences)),
            }
        )
    return rows
