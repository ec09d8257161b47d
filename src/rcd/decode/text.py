"""Text in, text out: left-padded prompt batches and completions cut at the first EOS."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase


def encode_prompts(
    tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), left-padded as `rcd.generate` expects."""
    if tokenizer.pad_token_id is None:
        raise ValueError("the tokenizer needs a pad token to batch prompts")
    batch = tokenizer(
        list(prompts), padding=True, padding_side="left", add_special_tokens=False, return_tensors="pt"
    )
    return batch["input_ids"], batch["attention_mask"]


def stop_ids(tokenizer: PreTrainedTokenizerBase, model_config=None) -> list[int]:
    """EOS ids from the tokenizer, the model config and its preset (a dLLM may have several,
    e.g. LLaDA's end-of-text and end-of-turn)."""
    ids = {tokenizer.eos_token_id, *(getattr(model_config, "rcd_stop_token_ids", None) or ())}
    extra = getattr(model_config, "eos_token_id", None)
    ids.update(extra if isinstance(extra, (list, tuple)) else [extra])
    return sorted(i for i in ids if i is not None)


def decode_completions(
    tokenizer: PreTrainedTokenizerBase, generated: torch.Tensor, eos_ids: Sequence[int] = ()
) -> list[str]:
    """Text of each row of generated ids, cut at its first EOS, special tokens dropped."""
    texts = []
    for row in generated.tolist():
        cut = next((i for i, t in enumerate(row) if t in eos_ids), len(row))
        texts.append(tokenizer.decode(row[:cut], skip_special_tokens=True))
    return texts
