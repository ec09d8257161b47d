"""Tiny dLLMs for tests and the CPU demo, built on transformers' Llama.

`RcdTinyForDiffusionLM` is a Llama decoder stack plus an untied LM head (as LLaDA and SDAR
have), with the causal mask replaced: a 2D padding mask (or none) means full bidirectional
attention, the LLaDA/Dream convention; a 4D additive mask is used as given, which is how
rcd's adapter imposes block-causal structure (SDAR style) and KV-cached decoding.
It saves and loads with `save_pretrained` / `from_pretrained` (safetensors) and registers
with the transformers Auto classes under model type "rcd-tiny".
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    LlamaConfig,
    LlamaModel,
    LlamaPreTrainedModel,
)
from transformers.modeling_outputs import CausalLMOutputWithPast

from .attention import ATTENTION_MODES, additive_bias
from .attention import position_ids as padded_positions
from .conventions import cache_argument

if dataclasses.is_dataclass(LlamaConfig):  # transformers 5: configs are strict dataclasses
    from huggingface_hub.dataclasses import strict

    @strict
    class RcdTinyConfig(LlamaConfig):
        """Llama config plus what a dLLM needs: the mask token and the attention mode."""

        model_type = "rcd-tiny"
        mask_token_id: int | None = None
        attention: str = "bidirectional"
        block_length: int | None = None

else:  # transformers 4: configs take their fields in __init__

    class RcdTinyConfig(LlamaConfig):
        """Llama config plus what a dLLM needs: the mask token and the attention mode."""

        model_type = "rcd-tiny"

        def __init__(self, mask_token_id=None, attention="bidirectional", block_length=None, **kwargs):
            self.mask_token_id, self.attention, self.block_length = mask_token_id, attention, block_length
            super().__init__(**kwargs)


class RcdTinyForDiffusionLM(LlamaPreTrainedModel):
    config_class = RcdTinyConfig
    base_model_prefix = "model"

    def __init__(self, config: RcdTinyConfig):
        super().__init__(config)
        self.model = LlamaModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.embed_tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values=None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        if inputs_embeds is None:
            inputs_embeds = self.model.embed_tokens(input_ids)
        if attention_mask is None or attention_mask.dim() == 2:
            keys = self._key_padding(attention_mask, inputs_embeds, past_key_values)
            if position_ids is None:
                position_ids = padded_positions(keys)[:, keys.shape[1] - inputs_embeds.shape[1] :]
            attention_mask = additive_bias(
                keys[:, None, None, :].expand(-1, -1, inputs_embeds.shape[1], -1), inputs_embeds.dtype
            )
        out = self.model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=bool(use_cache),
            **{_CACHE_KWARG: past_key_values},
        )
        logits = self.lm_head(out.last_hidden_state)
        # the output field follows the same rename as the argument
        return CausalLMOutputWithPast(logits=logits, **{_CACHE_KWARG: getattr(out, _CACHE_KWARG, None)})

    @staticmethod
    def _key_padding(padding: torch.Tensor | None, embeds: torch.Tensor, cache) -> torch.Tensor:
        """(B, K) real-key mask over cached + new positions; all real when none is given."""
        if padding is not None:
            return padding.bool()
        past = cache.get_seq_length() if cache is not None else 0
        return embeds.new_ones((embeds.shape[0], past + embeds.shape[1]), dtype=torch.bool)


_CACHE_KWARG = cache_argument(LlamaModel)

AutoConfig.register(RcdTinyConfig.model_type, RcdTinyConfig, exist_ok=True)
AutoModel.register(RcdTinyConfig, RcdTinyForDiffusionLM, exist_ok=True)
AutoModelForMaskedLM.register(RcdTinyConfig, RcdTinyForDiffusionLM, exist_ok=True)


TINY_PRESETS: dict[str, dict[str, int]] = {
    "tiny-xs": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4),
    "tiny-s": dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4),
    "tiny-m": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=8),
    "tiny-l": dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=8),
    "tiny-xl": dict(hidden_size=512, num_hidden_layers=6, num_attention_heads=8),  # ~25M weights: for a GPU
}


def tiny_model(
    vocab_size: int = 64,
    *,
    seed: int = 0,
    attention: str = "bidirectional",
    block_length: int | None = None,
    mask_token_id: int | None = None,
    hidden_size: int = 64,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 4,
    intermediate_size: int | None = None,
    max_position_embeddings: int = 1024,
    pad_token_id: int | None = None,
    eos_token_id: int | None = None,
    **size,
) -> RcdTinyForDiffusionLM:
    """A randomly initialised (seeded) tiny dLLM; the mask token defaults to the last id."""
    if attention not in ATTENTION_MODES:
        raise ValueError(f"attention must be one of {ATTENTION_MODES}, got {attention!r}")
    if attention == "block-causal" and block_length is None:
        raise ValueError("a block-causal tiny model needs block_length")
    config = RcdTinyConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        intermediate_size=intermediate_size or 4 * hidden_size,
        max_position_embeddings=max_position_embeddings,
        mask_token_id=vocab_size - 1 if mask_token_id is None else mask_token_id,
        attention=attention,
        block_length=block_length,
        pad_token_id=pad_token_id,
        eos_token_id=eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=False,
        **size,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = RcdTinyForDiffusionLM(config)
    return model.eval()
