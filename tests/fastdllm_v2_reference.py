"""Fast-dLLM v2's own `generate` (NVlabs, the checkpoint's `modeling.py`), re-stated for one
prompt for rcd's tests: greedy (temperature 0), without the sub-block cache
(`use_block_cache=False`, its default).

What the published method does, as read from a public copy of the file (docs/models.md):

- blocks of `block_size` from position 0. A prompt longer than a block has its whole blocks
  written to the KV cache first; when it ends on a block boundary, the argmax of that
  pass's last position is appended (the next block's first token, autoregressively);
- a block is the sequence so far padded with [M] to the block's end; its sub-blocks of
  `small_block_size` are filled left to right: while the sub-block has masks, the block is
  fed with the cache (not written), the logits are shifted right by one (position i takes
  position i - 1's, the block's first position keeps its own), and every masked position
  of the sub-block whose probability exceeds the threshold is committed, at least the
  most probable one;
- a full block is fed once more, writing its keys to the cache, and the argmax of its last
  position is appended: the next block's first token;
- a stop token among the block's new tokens with no mask before it ends the block (and the
  generation); the output is cut after the first stop token.

rcd keeps its one guard (docs/models.md): [M] is never chosen as a token. A prompt of
exactly one block is left out: the published loop then feeds the new block without the
prompt (no cache was written and the prompt is not in the fed window).
"""

from __future__ import annotations

import torch

from rcd.models.legacy_remote import LayerIndexedCache


def fast_dllm_v2_generate(
    model,
    prompt: list[int],
    *,
    gen_length: int,
    block: int,
    sub_block: int,
    threshold: float,
    stop_id: int | None = None,
) -> list[int]:
    """Generated tokens (at most gen_length, cut after the first stop token) of Fast-dLLM v2's
    procedure."""
    mask_id = model.config.mask_token_id
    P = len(prompt)
    assert P != block, "the published loop drops a one-block prompt (module doc)"
    x = torch.tensor([prompt])
    cache = LayerIndexedCache()  # its attention indexes the cache by layer

    def logits_of(ids: torch.Tensor, write: bool) -> torch.Tensor:
        out = model(
            input_ids=ids,
            use_cache=True,
            past_key_values=cache,
            update_past_key_values=write,
            block_size=block,
        )
        logits = out.logits[0].double()
        logits[:, mask_id] = -torch.inf
        return logits

    def stopped(block_start: int) -> bool:
        new = x[0, block_start:]
        if stop_id is None or not (new == stop_id).any():
            return False
        first_stop = int((new == stop_id).nonzero()[0])
        return not (new[:first_stop] == mask_id).any()

    with torch.no_grad(), torch.compiler.set_stance("force_eager"):  # its rotary class is compiled
        if P > block:
            last = logits_of(x[:, : P // block * block], True)[-1]
            if P % block == 0:
                x = torch.cat([x, last.argmax().view(1, 1)], dim=1)
        while x.shape[1] < P + gen_length and not (stop_id is not None and (x[0, P:] == stop_id).any()):
            start = x.shape[1]
            x = torch.cat([x, torch.full((1, block - start % block), mask_id)], dim=1)
            for lo in range(0, block, sub_block):
                window = slice(x.shape[1] - block + lo, x.shape[1] - block + lo + sub_block)
                while (x[0, window] == mask_id).any() and not stopped(start):
                    logits = logits_of(x[:, -block:], False)
                    shifted = torch.cat([logits[:1], logits[:-1]])[lo : lo + sub_block]
                    confidence, tokens = torch.softmax(shifted, dim=-1).max(-1)
                    masked = x[0, window] == mask_id
                    confidence = torch.where(masked, confidence, -torch.inf)
                    chosen = confidence > threshold
                    chosen[confidence.argmax()] = True
                    x[0, window] = torch.where(chosen & masked, tokens, x[0, window])
            if stopped(start):
                break
            last = logits_of(x[:, -block:], True)[-1]
            x = torch.cat([x, last.argmax().view(1, 1)], dim=1)
    generated = x[0, P : P + gen_length].tolist()
    if stop_id in generated:
        generated = generated[: generated.index(stop_id) + 1]
    return generated
