"""Loading saved dLLMs and their tokenizers from a local directory."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerBase


def load(
    path: str | Path, *, dtype: torch.dtype | None = None, device: str | torch.device | None = None
) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """Model (eval mode) and tokenizer saved with `save_pretrained` in `path`."""
    path = Path(path)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"no model at {path} (config.json missing)")
    model = AutoModel.from_pretrained(path, dtype=dtype) if dtype else AutoModel.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if device is not None:
        model = model.to(device)
    return model.eval(), tokenizer
