"""Helpers of the serve tests: tiny saved models, and a real `rcd serve` in a subprocess (the
benchmark's `Server`: `python -m rcd serve` on a free loopback port, ready once /health is 200)."""

from __future__ import annotations

from pathlib import Path

import rcd
from benchmarks.serving import Server, free_port

__all__ = ["CHAT_TEMPLATE", "Server", "free_port", "save_tiny"]

CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)


def save_tiny(path: Path, seed: int, chat: bool = False, **config) -> Path:
    """A tiny char-level model dir (random weights, peaky logits so EOS and stops happen), in fp64
    so that rounding never decides a token (the server and the test may use other thread counts)."""
    tok = rcd.char_tokenizer()
    if chat:
        tok.chat_template = CHAT_TEMPLATE
    model = rcd.tiny_model(
        len(tok),
        seed=seed,
        mask_token_id=tok.mask_token_id,
        eos_token_id=tok.eos_token_id,
        initializer_range=0.3,
        **config,
    ).double()
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
