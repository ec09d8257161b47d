"""Fast-dLLM v2's conventions (its `modeling.py`, Qwen2.5 made a block-diffusion model).

- The backbone's forward ignores `attention_mask` outside training: it builds a boolean
  block-causal mask of `block_size` (a forward argument, default 32) from
  `input_ids.shape[1]` and the cache length, so a call with embeddings alone fails there;
  positions default to the cache length onwards.
- Keys are written to the cache only with `update_past_key_values=True`; otherwise the
  cached keys are read by indexing the cache by layer (transformers 4's API).
- The logits are an AR model's (position i predicts token i + 1): its sampler shifts them.
- The rotary module's class is wrapped in `torch.compile`; its inverse frequencies come from
  `ROPE_INIT_FUNCTIONS["default"]` into a non-persistent buffer (as `core.Rotary`).
- In training mode the attention expects the doubled [noisy, clean] sequence and applies
  RoPE to each half with one half's positions (the real file then runs flex attention).
- The decoder layers are `GradientCheckpointingLayer`s, their attention at `self_attn`.

Not reproduced: the training loss (complementary masks), the sub-block KV cache
(`use_block_cache`), flex attention, and `einops`, which the real file imports (unused).
"""

import torch
from torch import nn
from transformers import DynamicCache, PreTrainedModel
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast

from .configuration_fast_dllm_v2 import Fast_dLLM_QwenConfig
from .core import Attention, Rotary, rotate, sdpa


@torch.compile(fullgraph=True, mode="max-autotune-no-cudagraphs")
class Fast_dLLM_QwenRotaryEmbedding(Rotary):  # noqa: N801
    def __init__(self, config):
        super().__init__(config)
        self.rope_type, self.config = "default", config

    @torch.no_grad()
    def forward(self, x, position_ids):
        cos, sin = super().forward(position_ids)
        return cos.to(x.dtype), sin.to(x.dtype)


class Fast_dLLM_QwenAttention(nn.Module):  # noqa: N801
    def __init__(self, config: Fast_dLLM_QwenConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.proj = Attention(config.hidden_size, config.num_attention_heads, config.num_key_value_heads)

    def forward(
        self, hidden_states, position_embeddings, attention_mask, past_key_value, update_past_key_values
    ):
        q, k, v = self.proj.project(hidden_states)
        cos, sin = position_embeddings
        if self.training:  # [noisy, clean]: each half rotated with one half's positions
            half = q.shape[2] // 2
            q = torch.cat([rotate(q[:, :, :half], cos, sin), rotate(q[:, :, half:], cos, sin)], dim=2)
            k = torch.cat([rotate(k[:, :, :half], cos, sin), rotate(k[:, :, half:], cos, sin)], dim=2)
        else:
            q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        if past_key_value is not None:
            if update_past_key_values:
                k, v = past_key_value.update(k, v, self.layer_idx)
            elif len(past_key_value) > self.layer_idx:
                past_k, past_v = past_key_value[self.layer_idx]  # indexing by layer: transformers 4 only
                k, v = torch.cat([past_k, k], dim=-2), torch.cat([past_v, v], dim=-2)
        return self.proj.finish(sdpa(q, k, v, attention_mask))


class Fast_dLLM_QwenDecoderLayer(GradientCheckpointingLayer):  # noqa: N801
    def __init__(self, config: Fast_dLLM_QwenConfig, layer_idx: int):
        super().__init__()
        self.self_attn = Fast_dLLM_QwenAttention(config, layer_idx)
        self.input_layernorm = nn.LayerNorm(config.hidden_size)
        self.post_attention_layernorm = nn.LayerNorm(config.hidden_size)
        dim = config.hidden_size
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(
        self,
        hidden_states,
        attention_mask=None,
        position_ids=None,
        past_key_value=None,
        use_cache=False,
        position_embeddings=None,
        update_past_key_values=False,
        **kwargs,
    ):
        attended = self.self_attn(
            self.input_layernorm(hidden_states),
            position_embeddings,
            attention_mask,
            past_key_value,
            update_past_key_values,
        )
        hidden_states = hidden_states + attended
        return hidden_states + self.mlp(self.post_attention_layernorm(hidden_states))


class Fast_dLLM_QwenPreTrainedModel(PreTrainedModel):  # noqa: N801
    """Its own `_init_weights` (linear, embedding and norm only), as the real file's: so
    transformers 5's rotary branch of the base `_init_weights` never runs on it."""

    config_class = Fast_dLLM_QwenConfig
    base_model_prefix = "model"

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()


class Fast_dLLM_QwenModel(Fast_dLLM_QwenPreTrainedModel):  # noqa: N801
    def __init__(self, config: Fast_dLLM_QwenConfig):
        super().__init__(config)
        self.bd_size = config.bd_size
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(
            Fast_dLLM_QwenDecoderLayer(config, i) for i in range(config.num_hidden_layers)
        )
        self.norm = nn.LayerNorm(config.hidden_size)
        self.rotary_emb = Fast_dLLM_QwenRotaryEmbedding(config)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        past_key_values=None,
        inputs_embeds=None,
        use_cache=None,
        update_past_key_values=False,
        block_size=32,
        **kwargs,
    ):
        if (input_ids is None) ^ (inputs_embeds is not None):
            raise ValueError("You must specify exactly one of input_ids or inputs_embeds")
        hidden = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        if use_cache and past_key_values is None:
            past_key_values = DynamicCache()
        cached = past_key_values.get_seq_length() if past_key_values is not None else 0
        if position_ids is None:
            position_ids = torch.arange(cached, cached + hidden.shape[1], device=hidden.device)[None]
        if not self.training:  # the caller's mask is not used: a block mask over input_ids
            queries = torch.arange(input_ids.shape[1], device=hidden.device) + cached
            keys = torch.arange(input_ids.shape[1] + cached, device=hidden.device)
            attention_mask = (queries[:, None] // block_size) >= (keys[None, :] // block_size)
        rope = self.rotary_emb(hidden, position_ids)
        for layer in self.layers:
            hidden = layer(
                hidden,
                attention_mask=attention_mask,
                position_ids=position_ids,
                past_key_value=past_key_values,
                use_cache=use_cache,
                position_embeddings=rope,
                update_past_key_values=update_past_key_values,
            )
        return BaseModelOutputWithPast(
            last_hidden_state=self.norm(hidden), past_key_values=past_key_values if use_cache else None
        )

    def get_input_embeddings(self):
        return self.embed_tokens

    def set_input_embeddings(self, value):
        self.embed_tokens = value


class Fast_dLLM_QwenForCausalLM(Fast_dLLM_QwenPreTrainedModel):  # noqa: N801
    def __init__(self, config: Fast_dLLM_QwenConfig):
        super().__init__(config)
        self.model = Fast_dLLM_QwenModel(config)
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
        update_past_key_values=False,
        block_size=32,
        **kwargs,
    ):
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            update_past_key_values=update_past_key_values,
            block_size=block_size,
        )
        return CausalLMOutputWithPast(
            logits=self.lm_head(out.last_hidden_state), past_key_values=out.past_key_values
        )

    def get_input_embeddings(self):
        return self.model.embed_tokens

    def set_input_embeddings(self, value):
        self.model.embed_tokens = value
