"""Dream's own `diffusion_generate`, re-stated for rcd's tests (greedy; alg "maskgit_plus",
"topk_margin" or "entropy").

What Dream's published generation code does, as read from it (docs/models.md):

- the whole generation is one block: the prompt followed by `gen_length` masks;
- time runs from 1 to eps = 1e-3 over `steps` steps (float32 `linspace(1, eps, steps + 1)`);
  the step from t to s commits int(m (1 - s/t)) positions, m the masked count (a batch
  mean), and the last step every position still masked;
- the model reads token ids with positions 0.., and its logits are shifted right by one
  (position i is predicted at i - 1);
- at temperature 0 the token is the argmax of p = softmax(logits); a position's confidence
  is that token's probability (maskgit_plus), the top-1 minus the top-2 probability
  (topk_margin) or sum p log(p + 1e-10), the negative entropy (entropy); the most
  confident masked positions are committed.

rcd keeps one guard by design (docs/models.md): [M] is never chosen as a token; a trained
model gives it ~0 probability. The reference asserts the stand-in never picks it, and for
margin and entropy (which read the whole distribution) leaves [M] out of p as rcd does.
"""

from __future__ import annotations

import torch


def dream_generate(
    model, prompts: torch.Tensor, *, gen_length: int, steps: int, eps: float = 1e-3, alg: str = "maskgit_plus"
) -> torch.Tensor:
    """The generated tokens (B, gen_length) of Dream's procedure for equal-length prompts."""
    mask_id = model.config.mask_token_id
    batch, length = prompts.shape
    x = torch.cat([prompts, torch.full((batch, gen_length), mask_id, dtype=torch.long)], dim=1)
    positions = torch.arange(x.shape[1])[None].expand(batch, -1)
    times = torch.linspace(1, eps, steps + 1)
    with torch.no_grad():
        for i in range(steps):
            logits = model(input_ids=x, position_ids=positions).logits
            logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
            masked = x == mask_id
            masked_logits = logits[masked].float()
            if alg != "maskgit_plus":
                masked_logits[:, mask_id] = -torch.inf
            probs = torch.softmax(masked_logits, dim=-1)
            confidence, tokens = probs.max(dim=-1)
            assert not (tokens == mask_id).any(), "the stand-in chose [M]: pick another seed"
            if alg == "topk_margin":
                top = probs.sort(dim=-1, descending=True).values
                confidence = top[:, 0] - top[:, 1]
            elif alg == "entropy":
                confidence = (probs * torch.log(probs + 1e-10)).sum(dim=-1)
            m = masked.sum() / batch
            count = int(m * (1 - times[i + 1] / times[i])) if i < steps - 1 else int(m)
            if count == 0:
                continue
            full = torch.full(x.shape, float("-inf"))
            full[masked] = confidence
            chosen = full.topk(count, dim=-1).indices
            proposal = torch.full_like(x, mask_id)
            proposal[masked] = tokens
            rows = torch.arange(batch)[:, None].expand_as(chosen)
            x[rows, chosen] = proposal[rows, chosen]
    return x[:, length:]
