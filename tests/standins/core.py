"""A minimal pre-norm transformer shared by the stand-ins: learned positions, SDPA attention.

Positions are a learned table so that wrong position ids change the logits. Dream's and
SDAR's stand-ins add RoPE the way their real files build it, transformers-4 style: the
inverse frequencies come from `ROPE_INIT_FUNCTIONS["default"]` (gone in transformers 5)
and live in a non-persistent buffer computed in `__init__` (which transformers 5's
meta-device loading leaves uninitialised).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS


class StandinConfig(PretrainedConfig):
    """Qwen-style size fields, as Dream's and SDAR's configs have."""

    def __init__(
        self,
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        mask_token_id=None,
        rope_theta=10000.0,
        rope=False,
        **kwargs,
    ):
        self.vocab_size, self.hidden_size, self.num_hidden_layers = vocab_size, hidden_size, num_hidden_layers
        self.num_attention_heads, self.num_key_value_heads = num_attention_heads, num_key_value_heads
        self.max_position_embeddings, self.mask_token_id = max_position_embeddings, mask_token_id
        self.rope_theta, self.rope = rope_theta, rope
        kwargs.setdefault("tie_word_embeddings", False)  # untied, as the real 7B/8B checkpoints
        super().__init__(**kwargs)


class Rotary(nn.Module):
    def __init__(self, config: StandinConfig):
        super().__init__()
        inv_freq, self.scaling = ROPE_INIT_FUNCTIONS["default"](config, None)
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.original_inv_freq = self.inv_freq

    def forward(self, position_ids: torch.Tensor):
        """cos, sin of shape (B, 1, L, head_dim) for these positions."""
        angles = position_ids[:, None, :, None].float() * self.inv_freq.float()
        angles = torch.cat([angles, angles], dim=-1)
        return angles.cos() * self.scaling, angles.sin() * self.scaling


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    turned = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return (x * cos + turned * sin).to(x.dtype)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, kv_heads: int):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, dim // heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(dim, 2 * kv_heads * self.head_dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)

    def project(self, x: torch.Tensor):
        b, n, _ = x.shape
        q = self.q(x).view(b, n, self.heads, self.head_dim).transpose(1, 2)
        k, v = self.kv(x).view(b, n, 2, self.kv_heads, self.head_dim).unbind(2)
        return q, k.transpose(1, 2), v.transpose(1, 2)

    def finish(self, attended: torch.Tensor) -> torch.Tensor:
        b, _, n, _ = attended.shape
        return self.out(attended.transpose(1, 2).reshape(b, n, -1))


def sdpa(q, k, v, mask):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=q.shape[1] != k.shape[1])


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, kv_heads: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, kv_heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor, attend, rope=None) -> torch.Tensor:
        """`attend(q, k, v)` applies the family's mask and cache rules; `rope` = (cos, sin)."""
        q, k, v = self.attn.project(self.norm1(x))
        if rope is not None:
            q, k = rotate(q, *rope), rotate(k, *rope)
        x = x + self.attn.finish(attend(q, k, v))
        return x + self.mlp(self.norm2(x))


class Backbone(nn.Module):
    """Token + position embeddings, blocks, final norm: hidden states, no head."""

    def __init__(self, config: StandinConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.positions = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.layers = nn.ModuleList(
            Block(config.hidden_size, config.num_attention_heads, config.num_key_value_heads)
            for _ in range(config.num_hidden_layers)
        )
        self.norm = nn.LayerNorm(config.hidden_size)
        self.rotary = Rotary(config) if config.rope else None

    def run(self, embeds: torch.Tensor, position_ids: torch.Tensor, attend_in_layer) -> torch.Tensor:
        """`attend_in_layer(i)` gives layer i's `attend(q, k, v)`."""
        x = embeds + self.positions(position_ids)
        rope = self.rotary(position_ids.expand(x.shape[0], -1)) if self.rotary is not None else None
        for i, layer in enumerate(self.layers):
            x = layer(x, attend_in_layer(i), rope)
        return self.norm(x)
