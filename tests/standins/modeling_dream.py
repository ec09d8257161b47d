"""Dream's conventions: `attention_mask` a boolean 4D tensor (or "full"/None) handed to
SDPA as it is, `position_ids`, logits at position i for token i + 1 (AR-initialised)."""

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_dream import DreamConfig
from .core import Block, sdpa


class DreamModel(PreTrainedModel):
    config_class = DreamConfig
    base_model_prefix = "model"

    def __init__(self, config: DreamConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.positions = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.layers = nn.ModuleList(
            Block(config.hidden_size, config.num_attention_heads, config.num_key_value_heads)
            for _ in range(config.num_hidden_layers)
        )
        self.norm = nn.LayerNorm(config.hidden_size)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, use_cache=None, **kwargs):
        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        if position_ids is None:
            position_ids = torch.arange(x.shape[1], device=x.device)[None]
        x = x + self.positions(position_ids)
        mask = attention_mask if isinstance(attention_mask, torch.Tensor) else None
        for layer in self.layers:
            x = layer(x, lambda q, k, v: sdpa(q, k, v, mask))
        return CausalLMOutputWithPast(logits=self.lm_head(self.norm(x)))

    def get_input_embeddings(self):
        return self.embed_tokens

    def set_input_embeddings(self, value):
        self.embed_tokens = value
