"""SDAR's own generation procedure, re-stated for one prompt (written for rcd's tests).

What SDAR's published generate script does, as read from it (docs/models.md), with greedy
token choice in place of its sampling:

- the block grid starts at position 0: blocks [k*b, (k+1)*b); the sequence is padded with
  [M] up to the end of the block holding position P + G - 1;
- the prompt's whole blocks are prefilled into the KV cache; the first decoded block holds
  the prompt's last partial block (those tokens are never masked) and the first masks;
- every block gets `steps` denoising steps of `b // steps` tokens (remainder to the earliest
  steps), counted on the full block size, also for the partial first block; a block's loop
  ends when it has no mask left, and the finished block is written to the cache;
- static: the k most confident masked positions; dynamic: every masked position above the
  threshold when there are at least k of them, else the k most confident; sequential: the k
  positions from the first mask on;
- generation stops after a block that holds a stop token.

Two guards rcd keeps by design (docs/models.md), so the reference keeps them too: [M] is
never chosen as a token (SDAR's sampler could; a trained model gives it ~0 probability),
and a step never writes over a position that is not masked (SDAR's top-k can pick
unmasked positions when a step asks for more tokens than masks are left; the tests use
settings where that never happens).

The model is called as SDAR's code calls it: token ids, a boolean block-causal mask over
(cached + current) positions, position ids, `store_kv` to write the cache.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache


class _Cache(DynamicCache):
    """SDAR's attention reads `cache[layer]`, which transformers 5 caches no longer answer."""

    def __getitem__(self, layer):
        if hasattr(self, "layers"):
            return self.layers[layer].keys, self.layers[layer].values
        return super().__getitem__(layer)


def sdar_generate(
    model,
    prompt: list[int],
    *,
    gen_length: int,
    block: int,
    steps: int,
    threshold: float | None = None,
    sequential: bool = False,
    stop_ids=(),
) -> list[int]:
    """The generated tokens (positions P .. P + gen_length - 1) of SDAR's procedure."""
    mask_id = model.config.mask_token_id
    P = len(prompt)
    n_blocks = -(-(P + gen_length) // block)
    x = torch.full((1, n_blocks * block), mask_id, dtype=torch.long)
    x[0, :P] = torch.tensor(prompt)
    blocks = torch.arange(n_blocks * block) // block
    structure = blocks[None, :] <= blocks[:, None]
    positions = torch.arange(n_blocks * block)[None]
    per_step = torch.full((steps,), block // steps)
    per_step[: block % steps] += 1
    cache = _Cache()

    def call(lo, hi, store):
        return model(
            x[:, lo:hi],
            attention_mask=structure[None, None, lo:hi, :hi],
            position_ids=positions[:, lo:hi],
            past_key_values=cache,
            use_cache=True,
            store_kv=store,
        ).logits

    first = P // block
    with torch.no_grad():
        if first:
            call(0, first * block, True)
        for k in range(first, n_blocks):
            lo, hi = k * block, (k + 1) * block
            for step in range(steps + 1):
                masked = x[0, lo:hi] == mask_id
                if not masked.any():
                    break
                logits = call(lo, hi, False)[0].double()
                logits[:, mask_id] = -torch.inf
                probs = torch.softmax(logits, dim=-1)
                confidence, tokens = probs.max(-1)
                confidence = torch.where(masked, confidence, -torch.inf)
                need = int(per_step[step])
                if sequential:
                    chosen = torch.zeros_like(masked)
                    first_mask = int(masked.nonzero()[0])
                    chosen[first_mask : first_mask + need] = True
                elif threshold is not None and int((confidence > threshold).sum()) >= need:
                    chosen = confidence > threshold
                else:
                    chosen = torch.zeros_like(masked)
                    chosen[confidence.topk(need).indices] = True
                x[0, lo:hi] = torch.where(chosen & masked, tokens, x[0, lo:hi])
            call(lo, hi, True)
            if any(int(t) in stop_ids for t in x[0, P:hi]):
                break
    return x[0, P : P + gen_length].tolist()
