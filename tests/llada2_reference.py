"""LLaDA2.0's own `generate` (inclusionAI, `modeling_llada2_moe.py`), re-stated for one
prompt for rcd's tests, greedy.

What the published method does, as read from a public copy of the file (docs/models.md):

- blocks of `block_length` from position 0; the sequence is the prompt followed by [M] up
  to the end of the block holding position P + G - 1;
- blocks are decoded from the one holding the prompt's last partial block on (its prompt
  tokens are never masked); every step feeds the whole prefix up to the block's end, with a
  block-causal mask (0 where a block may look, -inf elsewhere) and positions 0.., no cache;
- a block has at most `steps` steps; step k's count is the block length split evenly over
  the steps, remainder to the earliest; the step commits every masked position whose
  probability exceeds the threshold when at least that many do, else the count's most
  confident (never more than the masks left): SDAR's `low_confidence_dynamic`.

rcd keeps its one guard (docs/models.md): [M] is never chosen as a token. The mask is built
in the model's dtype (the file builds it in bf16 for its bf16 weights).
"""

from __future__ import annotations

import torch


def llada2_generate(
    model, prompt: list[int], *, gen_length: int, block: int, steps: int, threshold: float
) -> list[int]:
    """The generated tokens (positions P .. P + gen_length - 1) of LLaDA2.0's procedure."""
    mask_id = model.config.mask_token_id
    P = len(prompt)
    n_blocks = -(-(P + gen_length) // block)
    x = torch.full((1, n_blocks * block), mask_id, dtype=torch.long)
    x[0, :P] = torch.tensor(prompt)
    blocks = torch.arange(n_blocks * block) // block
    visible = torch.zeros(n_blocks * block, n_blocks * block, dtype=model.dtype)
    visible.masked_fill_(blocks[None, :] > blocks[:, None], float("-inf"))
    counts = torch.full((steps,), block // steps)
    counts[: block % steps] += 1
    with torch.no_grad():
        for k in range(P // block, n_blocks):
            end = (k + 1) * block
            for step in range(steps):
                masked = x[0, end - block : end] == mask_id
                if not masked.any():
                    break
                logits = (
                    model(
                        x[:, :end],
                        attention_mask=visible[None, None, :end, :end],
                        position_ids=torch.arange(end)[None],
                        use_cache=False,
                    )
                    .logits[0, -block:]
                    .double()
                )
                logits[:, mask_id] = -torch.inf
                confidence, tokens = torch.softmax(logits, dim=-1).max(-1)
                confidence = torch.where(masked, confidence, -torch.inf)
                above = confidence > threshold
                if int(above.sum()) >= int(counts[step]):
                    chosen = above
                else:
                    chosen = torch.zeros_like(masked)
                    chosen[confidence.topk(min(int(counts[step]), int(masked.sum()))).indices] = True
                x[0, end - block : end] = torch.where(chosen, tokens, x[0, end - block : end])
    return x[0, P : P + gen_length].tolist()
