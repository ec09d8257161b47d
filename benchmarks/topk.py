"""Sparse top-k residual vs the dense one: Delta error, decoding agreement, accuracy.

On random and slightly-trained tiny models; `python -m benchmarks.agreement` runs the
decoding comparison on any trained model and graded JSONL set.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

import rcd
from rcd.eval.agreement import TOP_K, compare, top_k_variants
from rcd.eval.evalset import EvalSet
from rcd.models.tiny import TINY_PRESETS
from rcd.residual import residual_from_logits, residual_probs

from .tiny_decode import VOCAB
from .training import TrainedModels


def delta_error(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    ks: tuple[int, ...] = TOP_K,
) -> dict[str, dict]:
    """Relative error |Delta_k - Delta| / |Delta| at every masked position of `input_ids`.

    One plain forward pass (the first step of a generation) gives the distributions.
    """
    mask_id = model.config.mask_token_id
    with torch.inference_mode():
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[input_ids == mask_id]
        weight = model.get_input_embeddings().weight
        dense, _ = residual_from_logits(logits, weight, rcd.ResidualConfig())
        probs = residual_probs(logits)
        out = {}
        for k in ks:
            if k >= weight.shape[0]:
                continue
            sparse, _ = residual_from_logits(logits, weight, rcd.ResidualConfig(top_k=k))
            error = (sparse - dense).norm(dim=-1) / dense.norm(dim=-1)
            out[f"top{k}"] = {
                "max_rel_error": float(error.max()),
                "mean_rel_error": float(error.mean()),
                "mean_top_k_mass": float(probs.topk(k, -1).values.sum(-1).mean()),
                "positions": int(error.numel()),
            }
    return out


def run(device: torch.device, quick: bool, trained: TrainedModels | None) -> dict:
    """The benchmark section: a random demo-size model, then the slightly-trained one."""
    random_model = rcd.tiny_model(VOCAB, seed=0, **TINY_PRESETS["tiny-s"]).to(device)
    g = torch.Generator().manual_seed(1)
    prompts = torch.randint(4, VOCAB - 1, (8, 32), generator=g)
    gen = 64 if quick else 128
    masked = torch.cat([prompts, prompts.new_full((8, gen), random_model.config.mask_token_id)], 1).to(device)
    result = {
        "random": {"model": f"tiny-s random (V={VOCAB})", "delta_error": delta_error(random_model, masked)}
    }
    agreement = []
    kw = dict(gen_length=gen, block_length=32, steps=gen // 2)
    dense = rcd.generate(random_model, prompts.to(device), residual=rcd.ResidualConfig(), **kw)
    for variant in tqdm(top_k_variants(random_model), desc="top-k (random)", leave=False):
        residual = rcd.ResidualConfig(top_k=variant.top_k)
        sparse = rcd.generate(random_model, prompts.to(device), residual=residual, **kw)
        agreement.append(
            {
                "variant": variant.name,
                "token_agreement_with_exact": float((dense.generated == sparse.generated).float().mean()),
            }
        )
    result["random"]["decoding"] = agreement
    if trained is not None:
        model, tokenizer = rcd.load(trained.rcd, device=device)
        evalset = EvalSet.from_jsonl(trained.test_data, trained.task)
        ids, mask = rcd.encode_prompts(tokenizer, [r["prompt"] for r in evalset.rows])
        masked = torch.cat([ids, ids.new_full((len(ids), 32), model.config.mask_token_id)], 1).to(device)
        mask = torch.cat([mask, mask.new_ones(len(ids), 32)], 1).to(device)
        config = rcd.DecodeConfig(gen_length=32, block_length=8, steps=16)
        result["trained"] = {
            "model": f"{trained.task}: tiny-s stage rcd (V={model.config.vocab_size})",
            "decode": config.describe() + f", gen {config.gen_length}, block {config.block_length}",
            "delta_error": delta_error(model, masked, mask),
            "decoding": compare(
                model,
                tokenizer,
                evalset,
                config,
                rcd.ResidualConfig(),
                top_k_variants(model),
            ),
        }
    return result
