"""LLaDA2.0's conventions (inclusionAI LLaDA2.0 mini/flash, `modeling_llada2_moe.py`): a 4D
attention mask, additive, handed through transformers' `_prepare_4d_causal_attention_mask_for_sdpa`
(its own generate builds a 0 / -inf block-causal mask over the whole prefix at every step);
position ids; embeddings at `model.word_embeddings`; a KV cache read with
`get_usable_length` and written by every forward (`update`), legacy tuples converted with
`DynamicCache.from_legacy_cache`; MoE layers after the first `first_k_dense_replace`, routed
by sigmoid scores plus a persistent `expert_bias` buffer; RoPE on part of each head
(`partial_rotary_factor`) from `ROPE_INIT_FUNCTIONS["default"]` in a non-persistent buffer.

And what the real file imports from transformers 4: `modeling_attn_mask_utils`'s mask
helpers, `is_torch_fx_available` (gone in transformers 5), `ALL_LAYERNORM_LAYERS`."""

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Cache, DynamicCache, PreTrainedModel
from transformers.modeling_attn_mask_utils import (
    _prepare_4d_causal_attention_mask,  # noqa: F401  (the eager path; rcd loads with sdpa)
    _prepare_4d_causal_attention_mask_for_sdpa,
)
from transformers.modeling_outputs import MoeCausalLMOutputWithPast, MoeModelOutputWithPast
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
from transformers.pytorch_utils import ALL_LAYERNORM_LAYERS
from transformers.utils.import_utils import is_torch_fx_available  # noqa: F401

from .configuration_llada2_moe import LLaDA2MoeConfig
from .core import sdpa


class LLaDA2MoeRMSNorm(nn.Module):
    def __init__(self, size: int, eps: float = 1e-6):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(size)), eps

    def forward(self, x):
        x32 = x.float()
        return self.weight * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)


ALL_LAYERNORM_LAYERS.append(LLaDA2MoeRMSNorm)


class PartialRotary(nn.Module):
    """RoPE on the first `partial_rotary_factor` of each head; the rest passes through."""

    def __init__(self, config: LLaDA2MoeConfig):
        super().__init__()
        inv_freq, self.scaling = ROPE_INIT_FUNCTIONS["default"](config, None)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, x, position_ids):
        angles = position_ids[:, None, :, None].float() * self.inv_freq.float()
        angles = torch.cat([angles, angles], dim=-1)
        cos, sin = angles.cos() * self.scaling, angles.sin() * self.scaling
        turned, kept = x[..., : cos.shape[-1]], x[..., cos.shape[-1] :]
        half = turned.shape[-1] // 2
        rotated = torch.cat([-turned[..., half:], turned[..., :half]], dim=-1)
        return torch.cat([(turned * cos + rotated * sin).to(x.dtype), kept], dim=-1)


class LLaDA2MoeAttention(nn.Module):
    def __init__(self, config: LLaDA2MoeConfig, layer: int):
        super().__init__()
        self.layer, self.heads, self.kv_heads = layer, config.num_attention_heads, config.num_key_value_heads
        self.head_dim = config.head_dim
        self.query_key_value = nn.Linear(
            config.hidden_size, (self.heads + 2 * self.kv_heads) * self.head_dim, bias=False
        )
        self.query_layernorm = LLaDA2MoeRMSNorm(self.head_dim, config.rms_norm_eps)
        self.key_layernorm = LLaDA2MoeRMSNorm(self.head_dim, config.rms_norm_eps)
        self.dense = nn.Linear(self.heads * self.head_dim, config.hidden_size, bias=False)

    def forward(self, x, mask, position_ids, rotary, cache):
        b, n, _ = x.shape
        qkv = self.query_key_value(x).view(b, n, self.heads + 2 * self.kv_heads, self.head_dim)
        q, k, v = qkv.split([self.heads, self.kv_heads, self.kv_heads], dim=2)
        q, k = self.query_layernorm(q.transpose(1, 2)), self.key_layernorm(k.transpose(1, 2))
        q, k, v = rotary(q, position_ids), rotary(k, position_ids), v.transpose(1, 2)
        if cache is not None:
            k, v = cache.update(k, v, self.layer)
        return self.dense(sdpa(q, k, v, mask).transpose(1, 2).reshape(b, n, -1))


class LLaDA2MoeMLP(nn.Module):
    def __init__(self, config: LLaDA2MoeConfig, width: int):
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, width, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, width, bias=False)
        self.down_proj = nn.Linear(width, config.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LLaDA2MoeGate(nn.Module):
    def __init__(self, config: LLaDA2MoeConfig):
        super().__init__()
        self.top_k, self.scale = config.num_experts_per_tok, config.routed_scaling_factor
        self.weight = nn.Parameter(torch.randn(config.num_experts, config.hidden_size))
        self.register_buffer("expert_bias", torch.zeros(config.num_experts))  # persistent: in the checkpoint

    def forward(self, x):
        scores = torch.sigmoid(F.linear(x.float(), self.weight.float()))
        chosen = (scores + self.expert_bias).topk(self.top_k, dim=-1).indices  # the bias only routes
        weights = scores.gather(-1, chosen)
        return chosen, weights / weights.sum(-1, keepdim=True) * self.scale


class LLaDA2MoeSparseMoeBlock(nn.Module):
    def __init__(self, config: LLaDA2MoeConfig):
        super().__init__()
        self.gate = LLaDA2MoeGate(config)
        self.experts = nn.ModuleList(
            LLaDA2MoeMLP(config, config.moe_intermediate_size) for _ in range(config.num_experts)
        )
        self.shared_experts = LLaDA2MoeMLP(config, config.moe_intermediate_size * config.num_shared_experts)

    def forward(self, x):
        chosen, weights = self.gate(x)
        routed = torch.zeros_like(x)
        for e, expert in enumerate(self.experts):
            share = (weights * (chosen == e)).sum(-1, keepdim=True).to(x.dtype)
            routed = routed + share * expert(x)
        return routed + self.shared_experts(x)


class LLaDA2MoeDecoderLayer(nn.Module):
    def __init__(self, config: LLaDA2MoeConfig, layer: int):
        super().__init__()
        self.attention = LLaDA2MoeAttention(config, layer)
        dense = layer < config.first_k_dense_replace
        self.mlp = (
            LLaDA2MoeMLP(config, config.intermediate_size) if dense else LLaDA2MoeSparseMoeBlock(config)
        )
        self.input_layernorm = LLaDA2MoeRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = LLaDA2MoeRMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, x, mask, position_ids, rotary, cache):
        x = x + self.attention(self.input_layernorm(x), mask, position_ids, rotary, cache)
        return x + self.mlp(self.post_attention_layernorm(x))


class LLaDA2MoePreTrainedModel(PreTrainedModel):
    config_class = LLaDA2MoeConfig
    base_model_prefix = "model"
    _supports_sdpa = True


class LLaDA2MoeModel(LLaDA2MoePreTrainedModel):
    def __init__(self, config: LLaDA2MoeConfig):
        super().__init__(config)
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(LLaDA2MoeDecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = LLaDA2MoeRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.rotary_emb = PartialRotary(config)
        self.post_init()

    def get_input_embeddings(self):
        return self.word_embeddings

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
        x = self.word_embeddings(input_ids) if inputs_embeds is None else inputs_embeds
        b, n = x.shape[:2]
        use_cache = self.config.use_cache if use_cache is None else use_cache
        past = 0
        if use_cache:
            if not isinstance(past_key_values, Cache):
                past_key_values = DynamicCache.from_legacy_cache(past_key_values)  # transformers 4 only
            past = past_key_values.get_usable_length(n)  # transformers 4 only
        if position_ids is None:
            position_ids = torch.arange(past, past + n, device=x.device)[None]
        mask = _prepare_4d_causal_attention_mask_for_sdpa(attention_mask, (b, n), x, past)
        cache = past_key_values if use_cache else None
        for layer in self.layers:
            x = layer(x, mask, position_ids, self.rotary_emb, cache)
        return MoeModelOutputWithPast(last_hidden_state=self.norm(x), past_key_values=cache)


class LLaDA2MoeModelLM(LLaDA2MoePreTrainedModel):
    def __init__(self, config: LLaDA2MoeConfig):
        super().__init__(config)
        self.model = LLaDA2MoeModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.word_embeddings

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
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
        )
        logits = self.lm_head(out.last_hidden_state).float()  # float32 logits, as the real file returns
        return MoeCausalLMOutputWithPast(logits=logits, past_key_values=out.past_key_values)
