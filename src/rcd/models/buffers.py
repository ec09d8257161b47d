"""Buffers that loading did not fill, recomputed from the model's own `__init__`.

transformers 5 builds remote-code models on the meta device and then loads the
checkpoint: a buffer the checkpoint does not hold (a non-persistent one, such as the RoPE
`inv_freq` that Dream and SDAR compute in `__init__`) is left as uninitialised memory, and
the model's logits are silently wrong. `restore_buffers` builds the same module tree once
more on the CPU with parameters on the meta device (cheap: no weights are allocated) and
buffers computed for real, then puts every buffer the checkpoint did not supply back from
that build. A buffer the build cannot produce is refused by name: a correct model or a
clear error, never garbage.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

import torch
from accelerate import init_empty_weights
from torch import nn


class BufferError(RuntimeError):
    """A buffer loading left empty that rcd cannot recompute."""


def restore_buffers(
    model: nn.Module, build: Callable[[], nn.Module], saved: Iterable[str] | None
) -> list[str]:
    """Refill from `build()` every buffer of `model` the checkpoint did not hold.

    build: constructs the same architecture (called with parameters on the meta device).
    saved: the tensor names the checkpoint holds (None: unknown, then only non-persistent
        buffers, which no checkpoint holds, are refilled).
    Returns the names of the buffers that were put back.
    """
    persistent = set(model.state_dict())
    if saved is not None:
        persistent &= set(saved)
    loaded = {name for name, _ in model.named_buffers() if name not in persistent}
    if not loaded:
        return []
    with init_empty_weights(include_buffers=False):
        reference = build()
    fresh = dict(reference.named_buffers())
    for name in sorted(loaded):
        value = fresh.get(name)
        if value is None or value.is_meta:
            raise BufferError(
                f"buffer {name!r} of {type(model).__name__} is not in the checkpoint and its __init__ does not "
                "compute it: rcd cannot check it; load the model eagerly (transformers 4) or report it"
            )
        owner_name, _, leaf = name.rpartition(".")
        owner = model.get_submodule(owner_name)
        old = owner._buffers[leaf]
        device = old.device if not old.is_meta else torch.device("cpu")
        new = value.to(device)
        owner._buffers[leaf] = new
        _repoint_aliases(owner, reference.get_submodule(owner_name), value, new)
    return sorted(loaded)


def _repoint_aliases(
    owner: nn.Module, fresh_owner: nn.Module, fresh: torch.Tensor, new: torch.Tensor
) -> None:
    """Plain tensor attributes that alias the buffer in `__init__` (`original_inv_freq = inv_freq`)."""
    for attr, value in vars(fresh_owner).items():
        if value is fresh and not attr.startswith("_"):
            setattr(owner, attr, new)


def checkpoint_keys(source: str) -> set[str] | None:
    """Tensor names in a safetensors checkpoint (single file or sharded); None if not safetensors."""
    from safetensors import safe_open
    from transformers.utils import cached_file

    index = cached_file(source, "model.safetensors.index.json", _raise_exceptions_for_missing_entries=False)
    if index is not None:
        with open(index, encoding="utf-8") as handle:
            return set(json.load(handle)["weight_map"])
    single = cached_file(source, "model.safetensors", _raise_exceptions_for_missing_entries=False)
    if single is None:
        return None
    with safe_open(single, framework="pt") as handle:
        return set(handle.keys())
