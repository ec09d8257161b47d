"""The adapter: what rcd needs from any HF-compatible dLLM, and nothing about decoding.

A dLLM here is a module with `forward(inputs_embeds=..., attention_mask=..., ...)`
returning `.logits`, a `get_input_embeddings()` table and `config.mask_token_id`. The
adapter turns rcd's logical request (these query positions, that attention structure,
keep this much KV cache) into the model's call.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .attention import ATTENTION_MODES, additive_bias, allowed_keys, position_ids


@dataclass
class DiffusionModel:
    """A dLLM with its mask token and attention mode.

    attention: "bidirectional" (LLaDA, Dream) or "block-causal" (SDAR: bidirectional
        inside a block, causal across blocks, KV cache reusable for finished blocks).
    block_length: the block size a block-causal model was trained with, if known.
    """

    model: nn.Module
    mask_token_id: int
    attention: str = "bidirectional"
    block_length: int | None = None

    def __post_init__(self) -> None:
        if self.attention not in ATTENTION_MODES:
            raise ValueError(f"attention must be one of {ATTENTION_MODES}, got {self.attention!r}")

    @classmethod
    def wrap(cls, model: nn.Module | DiffusionModel, attention: str | None = None) -> DiffusionModel:
        """Adapter for `model`, reading mask id, attention mode and block size from its config."""
        if isinstance(model, DiffusionModel):
            if attention is None or attention == model.attention:
                return model
            return cls(model.model, model.mask_token_id, attention, model.block_length)
        config = getattr(model, "config", None)
        mask_id = getattr(config, "mask_token_id", None)
        if mask_id is None:
            raise ValueError(
                "the model has no mask token: set model.config.mask_token_id (a dLLM needs one)"
            )
        if not hasattr(model, "get_input_embeddings"):
            raise TypeError("the model must provide get_input_embeddings()")
        mode = attention or getattr(config, "attention", None) or "bidirectional"
        return cls(model, int(mask_id), mode, getattr(config, "block_length", None))

    @property
    def embedding_weight(self) -> torch.Tensor:
        """The input embedding table E (V x D) that residuals are built from."""
        return self.model.get_input_embeddings().weight

    @property
    def vocab_size(self) -> int:
        return self.embedding_weight.shape[0]

    @property
    def device(self) -> torch.device:
        return self.embedding_weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.embedding_weight.dtype

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model.get_input_embeddings()(input_ids)

    def mask_embedding(self) -> torch.Tensor:
        """E([M]), shape (D,)."""
        return self.embedding_weight[self.mask_token_id]

    def forward(
        self,
        inputs_embeds: torch.Tensor,
        *,
        key_valid: torch.Tensor,
        query_start: int = 0,
        gen_start: int = 0,
        block_length: int | None = None,
        cache=None,
        keep: int | None = None,
        key_order: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, object]:
        """Logits for the queries at absolute positions [query_start, K).

        key_valid (B, K) marks real keys over the whole visible range [0, K); keys before
        query_start must be in `cache`. If `keep` is given the call uses a KV cache and
        crops it to the first `keep` positions afterwards (finished blocks stay, the
        block being denoised is dropped); the cache is returned.
        key_order: (K,) absolute positions in the order the model sees them (cached keys,
            then the inputs; "query_start" then counts in that order). Only bidirectional
            attention ignores order, so only it accepts one (the dual cache uses it).
        """
        positions = position_ids(key_valid)
        if key_order is not None:
            if self.attention != "bidirectional":
                raise ValueError("key_order needs bidirectional attention")
            key_valid, positions = key_valid[:, key_order], positions[:, key_order]
        allowed = allowed_keys(
            key_valid,
            query_start,
            mode=self.attention,
            gen_start=gen_start,
            block_length=block_length or self.block_length,
        )
        return self.call(
            inputs_embeds, allowed=allowed, position_ids=positions[:, query_start:], cache=cache, keep=keep
        )

    def call(
        self,
        inputs_embeds: torch.Tensor,
        *,
        allowed: torch.Tensor,
        position_ids: torch.Tensor,
        cache=None,
        keep: int | None = None,
    ) -> tuple[torch.Tensor, object]:
        """The model call under an explicit attention pattern `allowed` (B, 1, Q, K) bool.

        Training uses it directly for layouts decoding never needs (the block-diffusion
        2L concatenation of noisy and clean copies).
        """
        out = self.model(
            inputs_embeds=inputs_embeds,
            attention_mask=additive_bias(allowed, inputs_embeds.dtype),
            position_ids=position_ids,
            past_key_values=cache,
            use_cache=keep is not None,
        )
        if keep is None:
            return out.logits, None
        cache = out.cache if hasattr(out, "cache") else out.past_key_values
        crop_cache(cache, keep)
        return out.logits, cache


def crop_cache(cache, length: int) -> None:
    """Keep the first `length` positions of a transformers Cache.

    A negative argument means "remove that many" in both transformers 4.x and 5.x.
    """
    extra = cache.get_seq_length() - length
    if extra > 0:
        cache.crop(-extra)
    elif extra < 0:
        raise ValueError(f"cache holds {length + extra} positions, cannot keep {length}")


def check_reference(target: DiffusionModel, reference: DiffusionModel) -> None:
    """A reference only supplies probabilities: it must share the target's vocabulary."""
    if reference.mask_token_id != target.mask_token_id:
        raise ValueError(
            f"reference mask id {reference.mask_token_id} differs from the model's "
            f"{target.mask_token_id}: they must share a tokenizer"
        )
    ref_vocab = _output_vocab(reference)
    if ref_vocab != _output_vocab(target):
        raise ValueError(
            f"reference vocabulary ({ref_vocab}) differs from the model's "
            f"({_output_vocab(target)}): reference and model must share a tokenizer"
        )


def _output_vocab(dm: DiffusionModel) -> int:
    config = getattr(dm.model, "config", None)
    return int(getattr(config, "vocab_size", None) or dm.vocab_size)
