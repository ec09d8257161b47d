"""PyTorch SDPA in place of flash-attn for remote modeling code that calls it directly.

SDAR's remote code sends all-true attention masks (a cached decoding step) to
`flash_attn_func` and everything else to SDPA; without flash-attn (CPU, or no wheel for the
GPU) that name is missing or None. `install_sdpa_fallback` binds it, in the model's own
modules only, to the same computation done by `torch.nn.functional.scaled_dot_product_attention`.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys

import torch
import torch.nn.functional as F
from torch import nn

NAME = "flash_attn_func"


def flash_attn_available() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def sdpa_flash_attn_func(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    dropout_p: float = 0.0,
    softmax_scale: float | None = None,
    causal: bool = False,
    **unsupported,
) -> torch.Tensor:
    """flash_attn_func's contract on SDPA: (B, L, H, D) in and out, grouped KV heads allowed."""
    if unsupported:
        raise NotImplementedError(f"SDPA fallback for flash_attn_func does not support {sorted(unsupported)}")
    if causal and q.shape[1] != k.shape[1]:
        raise NotImplementedError("SDPA fallback: causal attention needs as many queries as keys")
    out = F.scaled_dot_product_attention(
        q.transpose(1, 2),
        k.transpose(1, 2),
        v.transpose(1, 2),
        dropout_p=dropout_p,
        is_causal=causal,
        scale=softmax_scale,
        enable_gqa=q.shape[2] != k.shape[2],
    )
    return out.transpose(1, 2)


def install_sdpa_fallback(model: nn.Module) -> list[str]:
    """Bind `flash_attn_func` to SDPA in the model's modules that use it but lack it.

    Returns the names of the patched modules (nothing when flash-attn is installed).
    """
    if flash_attn_available():
        return []
    patched = []
    for name in sorted({type(m).__module__ for m in model.modules()}):
        module = sys.modules.get(name)
        if module is None or getattr(module, NAME, None) is not None:
            continue
        try:
            source = inspect.getsource(module)
        except (OSError, TypeError):
            continue
        if NAME in source:
            setattr(module, NAME, sdpa_flash_attn_func)
            patched.append(name)
    return patched
