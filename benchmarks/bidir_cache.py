"""Fast-dLLM prefix / dual caches on bidirectional models: speed and drift from exact decoding.

Exact decoding recomputes the whole sequence at every step. The caches approximate it
(see `rcd.decode.passes`); drift = share of generated tokens that differ from exact
decoding with the same residual setting. A random model is chaotic (one changed token
changes everything after it), so its drift is an upper bound; the slightly-trained model
shows drift and accuracy on a task.
"""

from __future__ import annotations

import torch

import rcd
from rcd.eval.agreement import Variant, compare
from rcd.eval.evalset import EvalSet
from rcd.models.tiny import TINY_PRESETS

from .measure import time_call
from .tiny_decode import VOCAB
from .training import TrainedModels

MODES = ("exact", "prefix", "dual")


def _random_rows(device: torch.device, quick: bool) -> list[dict]:
    model = rcd.tiny_model(VOCAB, seed=0, **TINY_PRESETS["tiny-s"]).to(device)
    prompts = torch.randint(4, VOCAB - 1, (8, 32), generator=torch.Generator().manual_seed(2)).to(device)
    gen = 64 if quick else 128
    kw = dict(gen_length=gen, block_length=32, steps=gen // 2)
    rows = []
    for name, residual in (("seqd", None), ("rcd", rcd.ResidualConfig())):
        rcd.generate(model, prompts, residual=residual, cache="dual", **kw)  # warm-up
        results = {
            mode: time_call(lambda: rcd.generate(model, prompts, residual=residual, cache=mode, **kw), device)
            for mode in MODES
        }
        exact_ids, exact_s = results["exact"][0].generated, results["exact"][1]
        for mode, (out, seconds) in results.items():
            rows.append(
                {
                    "model": f"tiny-s random (V={VOCAB}), batch 8, gen {gen}, block 32, steps {gen // 2}",
                    "decoding": name,
                    "variant": mode,
                    "token_agreement_with_exact": float((out.generated == exact_ids).float().mean()),
                    "seconds": seconds,
                    "speedup_vs_exact": exact_s / seconds,
                }
            )
    return rows


def _trained_rows(device: torch.device, trained: TrainedModels) -> list[dict]:
    evalset = EvalSet.from_jsonl(trained.test_data, trained.task)
    config = rcd.DecodeConfig(gen_length=32, block_length=8, steps=16)
    rows = []
    for name, path, residual in (("seqd", trained.seqd, None), ("rcd", trained.rcd, rcd.ResidualConfig())):
        model, tokenizer = rcd.load(path, device=device)
        setting = (
            f"{trained.task}: tiny-s stage {name}, {len(evalset.rows)} prompts, "
            f"gen {config.gen_length}, block {config.block_length}, steps {config.steps}"
        )
        variants = [Variant(cache=c) for c in MODES[1:]]
        rows += [
            {"model": setting, "decoding": name, **row}
            for row in compare(model, tokenizer, evalset, config, residual, variants)
        ]
    return rows


def run(device: torch.device, quick: bool, trained: TrainedModels | None) -> list[dict]:
    rows = _random_rows(device, quick)
    return rows + (_trained_rows(device, trained) if trained is not None else [])
