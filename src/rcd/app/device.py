"""The one device rule of decoding: the device asked for, else the GPU when there is one."""

from __future__ import annotations

import torch

from ..errors import UsageError


def choose_device(requested: str | None = None) -> str:
    """`requested` (checked: a CUDA device needs a GPU), else "cuda" when available, else "cpu".

    Training picks its device through Accelerate, and `rcd eval` per process through
    `accelerate launch`; this rule is for the single-process entry points.
    """
    if requested is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {requested}: this machine has no CUDA GPU; drop --device or use cpu")
    return requested
