"""Dream's conventions: `attention_mask` a boolean 4D tensor (or "full"/None) handed to
SDPA as it is, `position_ids`, logits at position i for token i + 1 (AR-initialised).

And its transformers-4 era: RoPE as in `core.Rotary`, a GenerationConfig subclass whose
`validate(is_init=False)` takes no other keywords, loaded by an overridden `from_pretrained`."""

import torch
from torch import nn
from transformers import GenerationConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_dream import DreamConfig
from .core import Backbone, sdpa


class DreamGenerationConfig(GenerationConfig):
    def __init__(self, **kwargs):
        self.steps = kwargs.pop("steps", 512)
        super().__init__(**kwargs)

    def validate(self, is_init=False):
        pass


class DreamModel(PreTrainedModel):
    config_class = DreamConfig
    base_model_prefix = "model"

    def __init__(self, config: DreamConfig):
        super().__init__(config)
        self.model = Backbone(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        past_key_values=None,
        inputs_embeds=None,
        use_cache=None,
        **kwargs,
    ):
        x = self.model.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        if position_ids is None:
            position_ids = torch.arange(x.shape[1], device=x.device)[None]
        mask = attention_mask if isinstance(attention_mask, torch.Tensor) else None
        hidden = self.model.run(x, position_ids, lambda i: lambda q, k, v: sdpa(q, k, v, mask))
        return CausalLMOutputWithPast(logits=self.lm_head(hidden))

    @classmethod
    def from_pretrained(cls, path, *args, **kwargs):
        model = super().from_pretrained(path, *args, **kwargs)
        model.generation_config = DreamGenerationConfig.from_pretrained(path)
        return model

    def get_input_embeddings(self):
        return self.model.embed_tokens

    def set_input_embeddings(self, value):
        self.model.embed_tokens = value
