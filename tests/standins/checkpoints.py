"""Tiny random-weight checkpoints on disk, as the real families ship them.

Remote-code stand-ins are saved with their modeling files and an `auto_map`, so loading
them needs `trust_remote_code=True` exactly like LLaDA, Dream and SDAR; transformers-native
architectures (Llama, Qwen2, Qwen3) are saved as plain checkpoints. All use rcd's
character tokenizer, whose `<mask>` is the mask token.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM

import rcd

from .configuration_dream import DreamConfig
from .configuration_llada import LLaDAConfig
from .configuration_sdar import SDARConfig
from .modeling_dream import DreamModel
from .modeling_llada import LLaDAModelLM
from .modeling_sdar import SDARForCausalLM

REMOTE = {
    "llada": (LLaDAConfig, LLaDAModelLM, "AutoModel"),
    "dream": (DreamConfig, DreamModel, "AutoModel"),
    "sdar": (SDARConfig, SDARForCausalLM, "AutoModelForCausalLM"),
}
NATIVE = {
    "llama": (LlamaConfig, LlamaForCausalLM),
    "qwen2": (Qwen2Config, Qwen2ForCausalLM),
    "qwen3": (Qwen3Config, Qwen3ForCausalLM),
}
KINDS = (*REMOTE, *NATIVE)


def save_checkpoint(kind: str, path: Path, *, seed: int = 0) -> Path:
    """Write a tiny `kind` checkpoint (weights, config, code if remote, tokenizer) to `path`."""
    tokenizer = rcd.char_tokenizer()
    vocab = len(tokenizer)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        if kind in REMOTE:
            config_cls, model_cls, auto = REMOTE[kind]
            config_cls.register_for_auto_class()
            model_cls.register_for_auto_class(auto)
            model = model_cls(config_cls(vocab_size=vocab, mask_token_id=tokenizer.mask_token_id))
        else:
            config_cls, model_cls = NATIVE[kind]
            model = model_cls(config_cls(
                vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=256,
                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=None,
                tie_word_embeddings=False,
            ))
        with torch.no_grad():  # peaky logits, so thresholds commit several tokens per step
            for p in model.parameters():
                if p.dim() > 1:
                    p.normal_(0.0, 0.3)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
