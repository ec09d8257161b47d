"""Memory of a training run: activation checkpointing, and where the frozen reference lives.

Activation (gradient) checkpointing is the model's own: transformers' per-layer
checkpointing, non-reentrant, so it also works when the inputs need no gradient (LoRA).

The frozen reference of stage `rcd` runs inside `ReferenceModule`, whose forward does the
whole reference pass (embedding lookup included), so the module can be sharded:
- under FSDP (either version, as configured with `accelerate config`), `place_reference`
  shards it with PyTorch's `fully_shard` over all processes, one unit per decoder layer
  (the model's `_no_split_modules`) plus the root; every unit is resharded after its
  forward, so a process holds 1/N of the reference plus one layer at a time. Accelerate's
  own `prepare` is not used: it wraps one trainable model with its optimizer;
- otherwise (one process, DDP) each process holds a full copy: the reference costs its
  parameter bytes once per process (bf16: 2 bytes x parameters), and no optimizer state.
In every case the reference is in eval mode, has `requires_grad=False` everywhere, and
never reaches the optimizer.
"""

from __future__ import annotations

import torch
from torch import nn

from ..models.adapter import DiffusionModel
from .noise import NoisyBatch
from .stages import ReferenceSignal, ResidualTrainingConfig, reference_signal


def enable_gradient_checkpointing(model: nn.Module) -> None:
    """Turn on the model's own activation checkpointing; refuse a model that has none."""
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise ValueError(
            f"{type(model).__name__} has no activation checkpointing of its own: drop --gradient-checkpointing"
        )
    kwargs = {"use_reentrant": False}
    enable = getattr(model, "activation_checkpointing_enable", None)  # transformers >= 5.x name
    if enable is not None:
        enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode (no dropout) and no gradients: a frozen model's parameters are constants."""
    model.requires_grad_(False)
    return model.eval()


class ReferenceModule(nn.Module):
    """The frozen reference's whole pass in one forward, so FSDP can gather and free it."""

    def __init__(self, model: nn.Module, block_length: int | None, options: ResidualTrainingConfig):
        super().__init__()
        self.model = freeze(model)
        self.block_length = block_length
        self.options = options
        self.eval()

    def train(self, mode: bool = True) -> ReferenceModule:
        return super().train(False)  # frozen: stays in eval mode whatever its parent asks

    @torch.no_grad()
    def forward(self, batch: NoisyBatch) -> torch.Tensor:
        return reference_signal(
            DiffusionModel.wrap(self.model), batch, self.block_length, self.options
        ).logits

    def signal(self, batch: NoisyBatch) -> ReferenceSignal:
        return ReferenceSignal(logits=self(batch))


def shard_frozen(module: nn.Module, mesh=None) -> nn.Module:
    """Shard a frozen module across the process group with FSDP2's `fully_shard`."""
    from torch.distributed.fsdp import fully_shard

    layer_names = set(getattr(_inner(module), "_no_split_modules", None) or ())
    for sub in module.modules():
        if type(sub).__name__ in layer_names:
            fully_shard(sub, mesh=mesh, reshard_after_forward=True)
    fully_shard(module, mesh=mesh, reshard_after_forward=True)  # the root too: nothing is kept gathered
    return module


def _inner(module: nn.Module) -> nn.Module:
    return module.model if isinstance(module, ReferenceModule) else module


def place_reference(module: ReferenceModule, accelerator) -> ReferenceModule:
    """Sharded under FSDP, a full copy on the process's device otherwise (see module doc)."""
    from accelerate.utils import DistributedType

    if accelerator.distributed_type == DistributedType.FSDP:
        return shard_frozen(module.to(accelerator.device))
    return module.to(accelerator.device)
