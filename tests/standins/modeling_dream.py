"""Dream's conventions: `attention_mask` a boolean 4D tensor (or "full"/None) handed to
SDPA as it is, `position_ids`, logits at position i for token i + 1 (AR-initialised)."""

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_dream import DreamConfig
from .core import Backbone, sdpa


class DreamModel(PreTrainedModel):
    config_class = DreamConfig
    base_model_prefix = "model"

    def __init__(self, config: DreamConfig):
        super().__init__(config)
        self.model = Backbone(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, use_cache=None, **kwargs):
        x = self.model.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        if position_ids is None:
            position_ids = torch.arange(x.shape[1], device=x.device)[None]
        mask = attention_mask if isinstance(attention_mask, torch.Tensor) else None
        hidden = self.model.run(x, position_ids, lambda i: lambda q, k, v: sdpa(q, k, v, mask))
        return CausalLMOutputWithPast(logits=self.lm_head(hidden))

    def get_input_embeddings(self):
        return self.model.embed_tokens

    def set_input_embeddings(self, value):
        self.model.embed_tokens = value
