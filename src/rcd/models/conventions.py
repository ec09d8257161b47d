"""How each dLLM family's forward is called with input embeddings and an attention structure.

rcd states attention as a boolean (B, 1, Q, K) `allowed` tensor (True: query q may see key
k) plus RoPE position ids. A convention turns that into the arguments one family's forward
expects and returns (logits, cache). The families really differ (docs/field-notes.md):

- hf: transformers-native models (rcd-tiny, Llama, Qwen2, Qwen3, ...): an additive 4D mask
  used as given, position ids, a transformers Cache (argument `cache` in transformers 5,
  `past_key_values` before).
- llada: no mask or a 2D padding mask (LLaDA applies it only when it holds a zero), any
  other structure as an additive `attention_bias`; no position ids, no KV cache. Whether
  the attention kernel honours mask and bias depends on the version of the checkpoint's
  code (a public copy of the original passes no mask to SDPA): unpadded batches are exact.
- dream: a boolean 4D mask and position ids; the logits are shifted right by one, since
  Dream (initialised from an AR model) predicts token i at position i - 1.
- llada2: as hf (an additive 4D mask, position ids, a cache written by every forward and
  cropped by rcd), but the cache must answer `get_usable_length` (transformers 4's API).
- fast_dllm_v2: its forward ignores `attention_mask` (it builds a block mask from
  `input_ids`, so it cannot take embeddings either): rcd runs its decoder layers itself
  (RoPE, additive 4D mask, a cache written by every call), with the attention modules out
  of training mode (their training path expects Fast-dLLM's own [noisy, clean] layout);
  logits shifted right by one, as Dream's (position i's logits predict token i + 1).
- sdar: a boolean 4D mask (the remote code calls `.bool()` on it), position ids, and
  `store_kv` to write the keys into the cache. Its top-level forward refuses
  `inputs_embeds` in training mode, so the backbone (`model.model`) and `lm_head` are
  called directly: one path for decoding and training.
"""

from __future__ import annotations

import contextlib
import functools
import inspect

import torch
from torch import nn
from transformers import DynamicCache

from .attention import additive_bias


class ForwardConvention:
    """transformers-native call: additive 4D mask, position ids, transformers cache."""

    name = "hf"
    supports_cache = True

    def embeddings(self, model: nn.Module) -> nn.Embedding:
        return model.get_input_embeddings()

    def __call__(
        self,
        model: nn.Module,
        inputs_embeds: torch.Tensor,
        allowed: torch.Tensor,
        position_ids: torch.Tensor,
        cache=None,
        use_cache: bool = False,
    ) -> tuple[torch.Tensor, object]:
        if use_cache and cache is None:  # transformers 4.4x answers a legacy tuple when it makes its own
            cache = DynamicCache()
        out = model(
            inputs_embeds=inputs_embeds,
            attention_mask=additive_bias(allowed, inputs_embeds.dtype),
            position_ids=position_ids,
            use_cache=use_cache,
            **{cache_argument(type(model)): cache},
        )
        return out.logits, _output_cache(out) if use_cache else None


class LLaDAConvention(ForwardConvention):
    """LLaDA: 2D padding mask or `attention_bias`, positions implied (0..L-1), no cache."""

    name = "llada"
    supports_cache = False

    def __call__(self, model, inputs_embeds, allowed, position_ids, cache=None, use_cache=False):
        _refuse_cache(self.name, cache, use_cache)
        q, k = allowed.shape[-2:]
        same_keys_for_all_queries = bool((allowed == allowed[:, :, :1, :]).all())
        if q == k and bool(allowed.all()):
            extra = {}
        elif q == k and same_keys_for_all_queries:
            extra = {"attention_mask": allowed[:, 0, 0, :].long()}
        else:
            extra = {"attention_bias": additive_bias(allowed, torch.float32)}
        # use_cache=False said explicitly: LLaDA reads config.use_cache otherwise, an attribute
        # transformers 5 configs no longer carry
        return model(inputs_embeds=inputs_embeds, use_cache=False, **extra).logits, None


class DreamConvention(ForwardConvention):
    """Dream: boolean 4D mask, position ids; logits shifted so position i predicts token i."""

    name = "dream"
    supports_cache = False

    def __call__(self, model, inputs_embeds, allowed, position_ids, cache=None, use_cache=False):
        _refuse_cache(self.name, cache, use_cache)
        logits = model(inputs_embeds=inputs_embeds, attention_mask=allowed, position_ids=position_ids).logits
        return torch.cat([logits[:, :1], logits[:, :-1]], dim=1), None


class LLaDA2Convention(ForwardConvention):
    """LLaDA2: the hf call with a cache that still has transformers 4's `get_usable_length`."""

    name = "llada2"

    def __call__(self, model, inputs_embeds, allowed, position_ids, cache=None, use_cache=False):
        if use_cache and cache is None:
            from .legacy_remote import LayerIndexedCache

            cache = LayerIndexedCache()
        return super().__call__(model, inputs_embeds, allowed, position_ids, cache, use_cache)


class FastDLLMv2Convention(ForwardConvention):
    """Fast-dLLM v2: embeddings through its decoder layers under rcd's mask; shifted logits."""

    name = "fast_dllm_v2"

    def embeddings(self, model: nn.Module) -> nn.Embedding:
        return model.model.embed_tokens

    def __call__(self, model, inputs_embeds, allowed, position_ids, cache=None, use_cache=False):
        if use_cache and cache is None:  # its attention indexes the cache by layer (transformers 4)
            from .legacy_remote import LayerIndexedCache

            cache = LayerIndexedCache()
        backbone = model.model
        # the rotary module's class is wrapped in torch.compile (minutes per new length on a
        # CPU, a C++ toolchain needed): its plain forward computes the same cos / sin
        rope = backbone.rotary_emb.forward(inputs_embeds, position_ids)
        mask = additive_bias(allowed, inputs_embeds.dtype)
        hidden = inputs_embeds
        with _attention_outside_training(backbone.layers):
            for layer in backbone.layers:
                hidden = layer(
                    hidden,
                    attention_mask=mask,
                    position_ids=position_ids,
                    past_key_value=cache,
                    use_cache=use_cache,
                    position_embeddings=rope,
                    update_past_key_values=use_cache,
                )
        logits = model.lm_head(backbone.norm(hidden))
        return torch.cat([logits[:, :1], logits[:, :-1]], dim=1), cache if use_cache else None


@contextlib.contextmanager
def _attention_outside_training(layers: nn.ModuleList):
    """Attention modules in eval mode for the call (gradients still flow; Fast-dLLM v2's
    attention dropout is 0), their training flags put back after."""
    attentions = [layer.self_attn for layer in layers]
    flags = [a.training for a in attentions]
    try:
        for a in attentions:
            a.training = False
        yield
    finally:
        for a, flag in zip(attentions, flags, strict=True):
            a.training = flag


class SDARConvention(ForwardConvention):
    """SDAR: backbone + lm_head, boolean 4D mask, `store_kv` while caching."""

    name = "sdar"

    def embeddings(self, model: nn.Module) -> nn.Embedding:
        return model.model.embed_tokens

    def __call__(self, model, inputs_embeds, allowed, position_ids, cache=None, use_cache=False):
        if use_cache and cache is None:  # SDAR indexes the cache by layer, as transformers 4 allowed
            from .legacy_remote import LayerIndexedCache

            cache = LayerIndexedCache()
        out = model.model(
            inputs_embeds=inputs_embeds,
            attention_mask=allowed,
            position_ids=position_ids,
            past_key_values=cache,
            use_cache=use_cache,
            store_kv=use_cache,
        )
        logits = model.lm_head(out.last_hidden_state)
        return logits, _output_cache(out) if use_cache else None


CONVENTIONS: dict[str, ForwardConvention] = {
    c.name: c
    for c in (
        ForwardConvention(),
        LLaDAConvention(),
        DreamConvention(),
        LLaDA2Convention(),
        FastDLLMv2Convention(),
        SDARConvention(),
    )
}


def get_convention(name: str) -> ForwardConvention:
    if name not in CONVENTIONS:
        raise ValueError(f"unknown forward convention {name!r}; known: {sorted(CONVENTIONS)}")
    return CONVENTIONS[name]


def _refuse_cache(name: str, cache, use_cache: bool) -> None:
    if cache is not None or use_cache:
        raise ValueError(f"the {name} forward has no KV cache (bidirectional models recompute every step)")


@functools.cache
def cache_argument(model_type: type) -> str:
    """transformers 5 renamed `past_key_values` to `cache` in the native models' forward."""
    params = inspect.signature(inspect.unwrap(model_type.forward)).parameters
    return "cache" if "cache" in params else "past_key_values"


def _output_cache(out):
    """The cache of a model output, whichever name the model's transformers version uses."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else getattr(out, "past_key_values", None)
