"""A plain, slow re-statement of the decoding rules, written independently of rcd's code.

One row at a time, the whole visible sequence recomputed at every step, the residual
formulas spelled out inline (Eq. 1-3). Tests compare `rcd.generate` to it token for token.
"""

from __future__ import annotations

import math

import torch


def _logits(model, embeds: torch.Tensor, prompt_len: int, block_length: int, block_causal: bool):
    n = embeds.shape[0]
    mask = torch.zeros(1, 1, n, n, dtype=embeds.dtype)
    if block_causal:
        for i in range(n):
            for j in range(n):
                if (j - prompt_len) // block_length > (i - prompt_len) // block_length:
                    mask[0, 0, i, j] = torch.finfo(embeds.dtype).min
    return model(inputs_embeds=embeds[None], attention_mask=mask).logits[0]


def _residual(z: torch.Tensor, E: torch.Tensor, T: float, alpha_kind: str):
    p = torch.softmax(z / T, dim=-1)
    h = -(p * torch.log(p)).nan_to_num().sum(-1) / math.log(p.shape[-1])
    alpha = {"entropy": h, "confidence": p.max(-1).values, "one": torch.ones_like(h)}[alpha_kind]
    return p @ E, alpha


def naive_generate(
    model,
    prompt: list[int],
    *,
    gen_length,
    block_length,
    steps=None,
    threshold=None,
    residual=None,
    reference=None,
    confidence_pass="step",
):
    """residual: None or dict(alpha=..., temperature=..., init='zero'|'self'|'reference');
    confidence_pass 'plain': with a residual, the confidence of each chosen token is read from a
    second pass over plain masks (counted in nfe)."""
    mask_id = model.config.mask_token_id
    block_causal = model.config.attention == "block-causal"
    E = model.get_input_embeddings().weight.detach()
    P = len(prompt)
    x = list(prompt) + [mask_id] * gen_length
    n_blocks = gen_length // block_length
    delta = {}  # position -> (Delta, alpha)
    nfe = ref_nfe = 0

    def embeds(upto, use_residual):
        rows = []
        for i in range(upto):
            if x[i] == mask_id and use_residual and i in delta:
                d, a = delta[i]
                rows.append((1 - a) * E[mask_id] + a * d)
            else:
                rows.append(E[x[i]])
        return torch.stack(rows)

    with torch.no_grad():
        for b in range(n_blocks):
            start, end = P + b * block_length, P + (b + 1) * block_length
            upto = end if block_causal else len(x)
            visible = range(start, end) if block_causal else range(P, len(x))
            if residual is not None:
                fresh = [i for i in visible if x[i] == mask_id and i not in delta]
                if fresh and residual["init"] in ("self", "reference"):
                    src = model if residual["init"] == "self" else reference
                    plain = src.get_input_embeddings()(torch.tensor(x[:upto]))  # its own table
                    z = _logits(src, plain, P, block_length, block_causal)
                    if residual["init"] == "self":
                        nfe += 1
                    else:
                        ref_nfe += 1
                    for i in fresh:
                        delta[i] = _residual(z[i], E, residual["temperature"], residual["alpha"])
                else:
                    for i in fresh:
                        delta[i] = (torch.zeros_like(E[0]), torch.tensor(0.0))
            step = 0
            per_block = steps // n_blocks if steps else None
            masked0 = sum(x[i] == mask_id for i in range(start, end))
            while any(x[i] == mask_id for i in range(start, end)):
                if per_block is not None and step >= per_block:
                    break
                z = _logits(model, embeds(upto, residual is not None), P, block_length, block_causal)
                nfe += 1
                cands = [i for i in range(start, end) if x[i] == mask_id]
                zc = z.clone()
                zc[:, mask_id] = float("-inf")  # [M] is never a prediction
                probs = torch.softmax(zc, -1)
                tok = {i: int(zc[i].argmax()) for i in cands}
                if residual is not None and confidence_pass == "plain":
                    zp = _logits(model, embeds(upto, False), P, block_length, block_causal)
                    nfe += 1
                    zp[:, mask_id] = float("-inf")
                    probs = torch.softmax(zp, -1)
                conf = {i: probs[i, tok[i]].item() for i in cands}
                ranked = sorted(cands, key=lambda i: -conf[i])
                if per_block is not None:
                    k = masked0 // per_block + (1 if step < masked0 % per_block else 0)
                    chosen = ranked[:k]
                else:
                    chosen = [i for i in cands if conf[i] > threshold] or ranked[:1]
                    if ranked[0] not in chosen:
                        chosen.append(ranked[0])
                for i in chosen:
                    x[i] = tok[i]
                if residual is not None:
                    for i in visible:
                        if x[i] == mask_id:
                            delta[i] = _residual(z[i], E, residual["temperature"], residual["alpha"])
                step += 1
    return x, nfe, ref_nfe
