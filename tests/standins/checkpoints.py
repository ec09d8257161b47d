"""Tiny random-weight checkpoints on disk, as the real families ship them.

Remote-code stand-ins are saved with their modeling files and an `auto_map`, so loading
them needs `trust_remote_code=True` exactly like LLaDA, Dream, SDAR, LLaDA2 and Fast-dLLM v2; transformers-native
architectures (Llama, Qwen2, Qwen3) are saved as plain checkpoints. All use rcd's
character tokenizer, whose `<mask>` is the mask token.

The stand-ins need transformers 4's names to be imported and built at all (as the real
files do), so they are imported and built here, eagerly and on the CPU, inside rcd's own
shims; `eager_copy` builds the reference a loaded model must equal.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import transformers
from safetensors.torch import load_file

import rcd
from rcd.models.legacy_remote import flash_attn_standin, transformers4_names

with transformers4_names(), flash_attn_standin():
    from .configuration_dream import DreamConfig
    from .configuration_fast_dllm_v2 import Fast_dLLM_QwenConfig
    from .configuration_llada import LLaDAConfig
    from .configuration_llada2_moe import LLaDA2MoeConfig
    from .configuration_sdar import SDARConfig
    from .modeling_dream import DreamModel
    from .modeling_fast_dllm_v2 import Fast_dLLM_QwenForCausalLM
    from .modeling_llada import LLaDAModelLM
    from .modeling_llada2_moe import LLaDA2MoeModelLM
    from .modeling_sdar import SDARForCausalLM

REMOTE = {
    "llada": (LLaDAConfig, LLaDAModelLM, "AutoModel"),
    "dream": (DreamConfig, DreamModel, "AutoModel"),
    "sdar": (SDARConfig, SDARForCausalLM, "AutoModelForCausalLM"),
    "llada2": (LLaDA2MoeConfig, LLaDA2MoeModelLM, "AutoModelForCausalLM"),
    "fast-dllm-v2": (Fast_dLLM_QwenConfig, Fast_dLLM_QwenForCausalLM, "AutoModelForCausalLM"),
}
NATIVE = {  # Qwen3 arrived in transformers 4.51
    kind: (getattr(transformers, f"{name}Config"), getattr(transformers, f"{name}ForCausalLM"))
    for kind, name in (("llama", "Llama"), ("qwen2", "Qwen2"), ("qwen3", "Qwen3"))
    if hasattr(transformers, f"{name}Config")
}
KINDS = (*REMOTE, *NATIVE)


SDAR_BLOCK = 4


def save_checkpoint(kind: str, path: Path, *, seed: int = 0, **config_fields) -> Path:
    """Write a tiny `kind` checkpoint (weights, config, code if remote, tokenizer) to `path`.

    SDAR's config holds `block_size` (4 unless `block_size=None`) and no `pad_token_id`;
    Fast-dLLM v2's `bd_size` (4 unless given).
    `config_fields` override the config's, the vocabulary size and mask id included (a real
    family's: the tokenizer's ids then index the first rows only).
    """
    tokenizer = rcd.char_tokenizer()
    vocab = len(tokenizer)
    with torch.random.fork_rng(), transformers4_names():
        torch.manual_seed(seed)
        if kind in REMOTE:
            config_cls, model_cls, auto = REMOTE[kind]
            config_cls.register_for_auto_class()
            model_cls.register_for_auto_class(auto)
            if kind == "sdar":
                config_fields = {"block_size": SDAR_BLOCK, **config_fields}
            if kind == "fast-dllm-v2":
                config_fields = {"bd_size": SDAR_BLOCK, **config_fields}
            fields = {"vocab_size": vocab, "mask_token_id": tokenizer.mask_token_id, **config_fields}
            config = config_cls(**{k: v for k, v in fields.items() if v is not None})
            if kind == "sdar" and not hasattr(config, "pad_token_id"):
                config.pad_token_id = None  # built here; the saved config has none, as SDAR's
                model = model_cls(config)
                del model.config.pad_token_id
            else:
                model = model_cls(config)
        else:
            config_cls, model_cls = NATIVE[kind]
            model = model_cls(
                config_cls(
                    vocab_size=vocab,
                    hidden_size=32,
                    intermediate_size=64,
                    num_hidden_layers=2,
                    num_attention_heads=4,
                    num_key_value_heads=2,
                    head_dim=8,
                    max_position_embeddings=256,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=tokenizer.eos_token_id,
                    bos_token_id=None,
                    tie_word_embeddings=False,
                )
            )
        with torch.no_grad():  # peaky logits, so thresholds commit several tokens per step
            for p in model.parameters():
                if p.dim() > 1:
                    p.normal_(0.0, 0.3)
            for name, buffer in model.named_buffers():
                if name.endswith("expert_bias"):  # LLaDA2's routing bias: a trained, saved buffer
                    buffer.uniform_(-0.5, 0.5)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    if kind == "dream":  # read by Dream's own from_pretrained
        (Path(path) / "generation_config.json").write_text(json.dumps({"steps": 8}))
    return path


def eager_copy(kind: str, path: Path) -> torch.nn.Module:
    """The checkpoint's weights in a model built eagerly on the CPU in float32 (no meta device)."""
    config_cls, model_cls, _ = REMOTE[kind]
    config = config_cls.from_pretrained(path)
    if not hasattr(config, "pad_token_id"):
        config.pad_token_id = None
    with transformers4_names():
        model = model_cls(config)
    model.load_state_dict(load_file(Path(path) / "model.safetensors"))
    return model.eval()
