"""Sparse top-k residual vs the exact one: Delta error, decoding agreement, accuracy.

As a section of `python -m benchmarks`: random and slightly-trained tiny models. Alone,
on any trained model and graded JSONL set:

    python -m benchmarks.topk --model DIR --data test.jsonl [--task sort] [--k 8 32 128] \
        [--gen-length 32 --block-length 8 --steps 16 ...] [--json OUT]

prints, per k (and the dense residual), accuracy with its standard error and the token
agreement with dense RCD decoding. A top-k default would need accuracy unchanged within
that noise on real tasks.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch
from tqdm.auto import tqdm

import rcd
from rcd.cli.args import add_dataclass_arguments, dataclass_from_args
from rcd.cli.options import RES_PREFIX
from rcd.models.tiny import TINY_PRESETS
from rcd.residual import residual_from_logits, residual_probs

from .evalset import EvalSet, decode
from .tiny_decode import VOCAB
from .training import TrainedModels

TOP_K = (8, 32, 128)


def delta_error(model: torch.nn.Module, input_ids: torch.Tensor, ks=TOP_K) -> dict[str, dict]:
    """Relative error |Delta_k - Delta| / |Delta| at every masked position of `input_ids`.

    One plain forward pass (the first step of a generation) gives the distributions.
    """
    mask_id = model.config.mask_token_id
    with torch.inference_mode():
        logits = model(input_ids=input_ids).logits[input_ids == mask_id]
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


def compare(
    model: torch.nn.Module,
    tokenizer,
    evalset: EvalSet,
    decode_config: rcd.DecodeConfig,
    residual: rcd.ResidualConfig,
    ks=TOP_K,
) -> list[dict]:
    """Dense RCD and top-k RCD on one graded set: accuracy, agreement with dense tokens."""
    rows = []
    dense_ids = None
    for k in (None, *ks):
        if k is not None and k >= model.get_input_embeddings().weight.shape[0]:
            continue
        config = dataclasses.replace(residual, top_k=k)
        ids, texts = decode(model, tokenizer, evalset, decode_config, config)
        dense_ids = ids if k is None else dense_ids
        rows.append({
            "residual": "dense" if k is None else f"top{k}",
            **evalset.score(texts),
            "token_agreement_with_dense": float((ids == dense_ids).float().mean()),
        })
    return rows


def run(device: torch.device, quick: bool, trained: TrainedModels | None) -> dict:
    """The benchmark section: a random demo-size model, then the slightly-trained one."""
    random_model = rcd.tiny_model(VOCAB, seed=0, **TINY_PRESETS["tiny-s"]).to(device)
    g = torch.Generator().manual_seed(1)
    prompts = torch.randint(4, VOCAB - 1, (8, 32), generator=g)
    gen = 64 if quick else 128
    masked = torch.cat([prompts, prompts.new_full((8, gen), random_model.config.mask_token_id)], 1).to(device)
    result = {"random": {"model": f"tiny-s random (V={VOCAB})", "delta_error": delta_error(random_model, masked)}}
    agreement = []
    for k in tqdm(TOP_K, desc="top-k (random)", leave=False):
        if k >= VOCAB:
            continue
        kw = dict(gen_length=gen, block_length=32, steps=gen // 2)
        dense = rcd.generate(random_model, prompts.to(device), residual=rcd.ResidualConfig(), **kw)
        sparse = rcd.generate(random_model, prompts.to(device), residual=rcd.ResidualConfig(top_k=k), **kw)
        agreement.append({"residual": f"top{k}", "token_agreement_with_dense": float((dense.generated == sparse.generated).float().mean())})
    result["random"]["decoding"] = agreement
    if trained is not None:
        model, tokenizer = rcd.load(trained.rcd, device=device)
        evalset = EvalSet.from_jsonl(trained.test_data, trained.task)
        ids, mask = rcd.encode_prompts(tokenizer, [r["prompt"] for r in evalset.rows])
        masked = torch.cat([ids, ids.new_full((len(ids), 32), model.config.mask_token_id)], 1).to(device)
        config = rcd.DecodeConfig(gen_length=32, block_length=8, steps=16)
        result["trained"] = {
            "model": f"{trained.task}: tiny-s stage rcd (V={model.config.vocab_size})",
            "decode": config.describe() + f", gen {config.gen_length}, block {config.block_length}",
            "delta_error": delta_error(model, masked),
            "decoding": compare(model, tokenizer, evalset, config, rcd.ResidualConfig()),
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.topk", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="trained model directory (save_pretrained format)")
    parser.add_argument("--data", required=True, help="JSONL with a 'prompt' (and 'answer') per line")
    parser.add_argument("--task", default=None, help="grade with rcd.data.TASKS[task] instead of exact answer")
    parser.add_argument("--k", type=int, nargs="+", default=list(TOP_K), help="top-k values to compare")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    add_dataclass_arguments(parser.add_argument_group("decoding"), rcd.DecodeConfig)
    group = parser.add_argument_group("residual (RCD is always on; top-k comes from --k)")
    add_dataclass_arguments(group, rcd.ResidualConfig, prefix=RES_PREFIX, skip=("top_k",))
    args = parser.parse_args(argv)
    model, tokenizer = rcd.load(args.model, device=args.device)
    config = dataclass_from_args(rcd.DecodeConfig, args)
    residual = dataclass_from_args(rcd.ResidualConfig, args, prefix=RES_PREFIX)
    rows = compare(model, tokenizer, EvalSet.from_jsonl(args.data, args.task), config, residual, args.k)
    for row in rows:
        print(f"{row['residual']:>6}: accuracy {row['accuracy']:.3f} ± {row['stderr']:.3f} (n={row['n']}), "
              f"token agreement with dense {row['token_agreement_with_dense']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
