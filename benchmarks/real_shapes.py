"""The residual's cost at real model shapes, against an estimate of the step's forward pass.

An 8B forward pass does not fit this benchmark's budget on a CPU, so each step is split:
- forward = n_layers x (one measured decoder layer of the real width: a 1-layer
  transformers Llama with the model's hidden/intermediate size and (GQA) heads, on the
  block's tokens, no KV context) + the measured LM-head matmul (tokens x D) @ (D x V);
  leaving out the attention over cached context (small at these widths) and the final
  norm underestimates the forward and so overstates RCD's share;
- commit policy: `choose_tokens` over the block (SeqD and RCD both pay it);
- RCD extra: exactly the decode loop's per-step residual work (`ResidualState`: Eq. 1-3
  for the still-masked positions, stored, then the highway mix of the next input), with
  every block position masked (a block's first step, the worst case).
SeqD step = forward + commit; RCD step = SeqD step + RCD extra. fp32 on CPU, bf16 on CUDA.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import LlamaConfig, LlamaModel

from rcd import ResidualConfig
from rcd.decode import ResidualState  # the loop's own residual step, measured as is
from rcd.decode.policy import choose_tokens
from rcd.models.adapter import DiffusionModel
from rcd.residual import normalized_entropy, probs_and_entropy, residual_probs

from .measure import PeakMemory, median_time

TOP_K = (8, 32, 128)


@dataclass(frozen=True)
class Shape:
    name: str
    vocab: int
    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_heads: int


SHAPES = {
    s.name: s
    for s in (
        Shape("LLaDA-8B", 126464, 4096, 32, 12288, 32, 32),
        Shape("SDAR-8B", 151936, 4096, 36, 12288, 32, 8),
        Shape("SDAR-1.7B", 151936, 2048, 28, 6144, 16, 8),
    )
}


def cases(quick: bool) -> list[tuple[str, int, int]]:
    """(shape, block_length, batch)."""
    if quick:
        return [("LLaDA-8B", 32, 1), ("SDAR-1.7B", 32, 1)]
    return [
        ("LLaDA-8B", 32, 1),
        ("LLaDA-8B", 32, 8),
        ("SDAR-8B", 64, 1),
        ("SDAR-8B", 64, 4),
        ("SDAR-1.7B", 32, 1),
        ("SDAR-1.7B", 32, 8),
    ]


class _EmbeddingOnly(nn.Module):
    """Just an input embedding table: what `ResidualState` reads from a model."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.embed = nn.Embedding.from_pretrained(weight, freeze=True)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed


def _layer(shape: Shape, device: torch.device, dtype: torch.dtype) -> LlamaModel:
    config = LlamaConfig(
        vocab_size=2,
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=1,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )
    return LlamaModel(config).to(device=device, dtype=dtype).eval()


def run(device: torch.device, quick: bool) -> list[dict]:
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    repeats = 2
    rows = []
    g = torch.Generator(device=device).manual_seed(0)
    loaded: tuple[str, torch.Tensor, LlamaModel] | None = None
    for name, block, batch in tqdm(cases(quick), desc="real shapes", leave=False):
        shape = SHAPES[name]
        if loaded is None or loaded[0] != name:
            loaded = None  # free the previous shape first
            table = (0.02 * torch.randn(shape.vocab, shape.hidden, generator=g, device=device)).to(dtype)
            loaded = (name, table, _layer(shape, device, dtype))
        _, table, layer = loaded
        mask_id = shape.vocab - 1
        dm = DiffusionModel(_EmbeddingOnly(table), mask_id)
        n = batch * block
        with torch.inference_mode():
            x = torch.randn(batch, block, shape.hidden, generator=g, device=device).to(dtype)
            bias = torch.zeros(batch, 1, block, block, device=device, dtype=dtype)
            t_layer = median_time(lambda: layer(inputs_embeds=x, attention_mask=bias), device, repeats)
            t_head = median_time(lambda: torch.nn.functional.linear(x, table), device, repeats)
            logits = torch.nn.functional.linear(x, table)
            t_choose = median_time(lambda: choose_tokens(logits, 0.0, banned=mask_id), device, repeats)
            masked = torch.ones(batch, block, dtype=torch.bool, device=device)
            embeds = dm.embed(torch.full((batch, block), mask_id, device=device))
            forward = shape.layers * t_layer + t_head
            seqd = forward + t_choose
            row = {
                "shape": name,
                "vocab": shape.vocab,
                "hidden": shape.hidden,
                "block_length": block,
                "batch": batch,
                "dtype": str(dtype).removeprefix("torch."),
                "layer_ms": 1e3 * t_layer,
                "lm_head_ms": 1e3 * t_head,
                "forward_estimate_ms": 1e3 * forward,
                "commit_ms": 1e3 * t_choose,
                "rcd": {},
            }
            for k in (None, *TOP_K):
                state = ResidualState(batch, block, dm, ResidualConfig(top_k=k))

                def extra():
                    state.update_from_logits(masked, 0, logits)
                    return state.mix(embeds, masked, 0, block)

                t_extra = median_time(extra, device, repeats)
                meter = PeakMemory(device)
                with meter.measure():
                    extra()
                row["rcd"]["dense" if k is None else f"top{k}"] = {
                    "extra_ms": 1e3 * t_extra,
                    "rcd_over_seqd_step": (seqd + t_extra) / seqd,
                    "peak_memory_mb": None if meter.bytes is None else meter.bytes / 2**20,
                }
            row["entropy"] = _entropy_variants(logits.reshape(n, -1), device, repeats)
            row["memory_method"] = meter.method
        rows.append(row)
    return rows


def _entropy_variants(z: torch.Tensor, device: torch.device, repeats: int) -> dict:
    """p and H(p)/log V: separate softmax + entr (as before) vs the fused `probs_and_entropy`."""
    variants = {
        "softmax+entr": lambda: normalized_entropy(residual_probs(z)),
        "fused": lambda: probs_and_entropy(z),
    }
    out = {}
    for name, fn in variants.items():
        meter = PeakMemory(device)
        with meter.measure():
            fn()
        out[name] = {
            "ms": 1e3 * median_time(fn, device, repeats),
            "peak_memory_mb": None if meter.bytes is None else meter.bytes / 2**20,
        }
    return out
