"""SDAR's conventions: `attention_mask` made `.bool()` and sent to SDPA, except all-true
masks, which go to flash-attn's `flash_attn_func`; keys are written to the cache only with
`store_kv=True`, otherwise read from it; the top-level forward refuses `inputs_embeds` in
training mode; embeddings at `model.embed_tokens`.

And what the real file needs from its environment: `transformers.modeling_attn_mask_utils`
and `LossKwargs` (both removed in transformers 5; the module is back in 5.25), flash-attn's RMSNorm imported
unconditionally (transformers' `check_imports` refuses the file without flash-attn),
`config.pad_token_id` read in `__init__`, RoPE as in `core.Rotary`."""

import torch
from flash_attn.ops.triton.layer_norm import rms_norm_fn
from torch import nn
from transformers import DynamicCache, PreTrainedModel
from transformers.modeling_attn_mask_utils import AttentionMaskConverter  # noqa: F401
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.utils import LossKwargs

from .configuration_sdar import SDARConfig
from .core import Backbone, sdpa

try:
    from flash_attn import flash_attn_func
except ImportError:
    flash_attn_func = None


class KwargsForCausalLM(LossKwargs): ...


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float = 1e-6):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(size)), eps

    def forward(self, x):
        return rms_norm_fn(x, weight=self.weight, bias=None, eps=self.eps)


class SDARModel(Backbone):
    def __init__(self, config: SDARConfig):
        super().__init__(config)
        self.padding_idx = config.pad_token_id
        self.norm = RMSNorm(config.hidden_size)

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        past_key_values=None,
        inputs_embeds=None,
        use_cache=None,
        store_kv=False,
        **kwargs,
    ):
        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        if use_cache and past_key_values is None:
            past_key_values = DynamicCache()
        mask = attention_mask.bool() if attention_mask is not None else None
        hidden = self.run(
            x,
            position_ids,
            lambda i: lambda q, k, v: self._attend(q, k, v, mask, past_key_values, store_kv, i),
        )
        return BaseModelOutputWithPast(
            last_hidden_state=hidden, past_key_values=past_key_values if use_cache else None
        )

    @staticmethod
    def _attend(q, k, v, mask, cache, store_kv, layer):
        if cache is not None and store_kv:
            k, v = cache.update(k, v, layer)
        elif cache is not None and len(cache) > layer:
            past_k, past_v = cache[layer]  # indexing a cache by layer: transformers 4 only
            k = torch.cat([past_k, k], dim=-2)
            v = torch.cat([past_v, v], dim=-2)
        if mask is not None and torch.all(mask):
            return flash_attn_func(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), causal=False
            ).transpose(1, 2)
        return sdpa(q, k, v, mask)


class SDARForCausalLM(PreTrainedModel):
    config_class = SDARConfig
    base_model_prefix = "model"

    def __init__(self, config: SDARConfig):
        super().__init__(config)
        self.model = SDARModel(config)
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
        store_kv=False,
        **kwargs,
    ):
        if self.training and inputs_embeds is not None:
            raise ValueError("inputs_embeds is not supported in training mode")
        out = self.model(
            input_ids, attention_mask, position_ids, past_key_values, inputs_embeds, use_cache, store_kv
        )
        return CausalLMOutputWithPast(
            logits=self.lm_head(out.last_hidden_state), past_key_values=out.past_key_values
        )

    def get_input_embeddings(self):
        return self.model.embed_tokens

    def set_input_embeddings(self, value):
        self.model.embed_tokens = value
