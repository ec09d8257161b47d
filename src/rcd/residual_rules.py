"""RCD's soft-feedback relatives (docs/method.md, section 2.5): one small class per rule.

A rule says how a masked position's last prediction p becomes a stored residual
(Delta, alpha) and how that residual enters the next input. `ResidualConfig.rule` picks
one; decoding (`rcd.decode.ResidualState`) and training (`rcd.train.stages`) call the same
methods, so the train/test symmetry of `rcd.residual` holds for every rule. alpha = 0
means "no residual" under every rule (the cold start, residual dropout).

Rules with learned parameters keep them in a small module attached to the target model
under `PARAMETERS_ATTRIBUTE`: stage rcd trains it with the model, the final save writes it
to `PARAMETERS_FILE` next to the weights, and `rcd.models.load` attaches it again.
"""

from __future__ import annotations

import json
import math
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from .residual import (
    RESIDUAL_RULES,
    ResidualConfig,
    at_least_fp32,
    mix_masked_embeddings,
    probs_and_entropy,
    residual_from_probs,
    soft_embedding,
)

PARAMETERS_ATTRIBUTE = "rcd_residual_rule"
PARAMETERS_FILE = "residual_rule.safetensors"
Residual = tuple[torch.Tensor, torch.Tensor]  # (Delta (n, D), alpha (n,)) of n positions


def block_features(
    masked: torch.Tensor, gen_start: int, block_length: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(progress, place), each (B, L): the share of a position's block already decoded and its
    place in the block, i / block_length. The decode step as training also sees it (training
    has no step counter, only the masks). block_length None: the whole response is one block."""
    region = masked[:, gen_start:]
    width = region.shape[1]
    block = block_length or max(width, 1)
    blocks = -(-width // block)
    pad = blocks * block - width
    masks = nn.functional.pad(region.float(), (0, pad)).view(-1, blocks, block).sum(-1)
    real = nn.functional.pad(torch.ones(width, device=masked.device), (0, pad)).view(blocks, block).sum(-1)
    progress = (1.0 - masks / real).repeat_interleave(block, dim=1)[:, :width]
    place = (torch.arange(width, device=masked.device) % block).float().div(block).expand_as(progress)
    lead = (masked.shape[0], gen_start)
    return (
        torch.cat([progress.new_ones(lead), progress], 1),
        torch.cat([progress.new_zeros(lead), place], 1),
    )


class ResidualRule:
    """How p becomes (Delta, alpha), and how (Delta, alpha) enters a masked input."""

    name: ClassVar[str]
    learned: ClassVar[bool] = False  # has a parameter module (`build_parameters`)

    def build_parameters(self, dim: int) -> nn.Module | None:
        """The learned part (None: training-free, or trained only through the model)."""
        return None

    def residual(
        self,
        probs: torch.Tensor,
        entropy: torch.Tensor,
        weight: torch.Tensor,
        config: ResidualConfig,
        features: tuple[torch.Tensor, torch.Tensor],
        parameters: nn.Module | None,
    ) -> Residual:
        raise NotImplementedError

    def mix(self, token_embeds, mask_embedding, delta, alpha, masked, parameters) -> torch.Tensor:
        """Eq. 2's interpolation E[M] + alpha (Delta - E[M]) at masked positions."""
        return mix_masked_embeddings(token_embeds, mask_embedding, delta, alpha, masked)


class RcdRule(ResidualRule):
    """RCD (Eq. 1-3): Delta = p^T E, alpha from `config.alpha` (entropy by default)."""

    name = "rcd"

    def residual(self, probs, entropy, weight, config, features, parameters) -> Residual:
        return residual_from_probs(probs, weight, config, entropy)


class SoftMaskWeight(nn.Module):
    """lambda = omega_s sigmoid(omega_a (-H - omega_b)), omega_s = sigmoid(s) kept in (0, 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale_logit = nn.Parameter(torch.zeros(()))  # omega_s = 0.5
        self.slope = nn.Parameter(torch.ones(()))
        self.shift = nn.Parameter(torch.zeros(()))

    def forward(self, entropy_nats: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.scale_logit) * torch.sigmoid(self.slope * (-entropy_nats - self.shift))


class SoftMaskRule(ResidualRule):
    """Soft-masking (Hersche et al., "Soft-Masked Diffusion Language Models", Eq. 2): the mask
    embedding mixed with the renormalised top-k of p, by a learned weight of H(p) in nats that
    grows with confidence (RCD's grows with uncertainty)."""

    name = "soft-mask"
    learned = True

    def build_parameters(self, dim: int) -> nn.Module:
        return SoftMaskWeight()

    def residual(self, probs, entropy, weight, config, features, parameters) -> Residual:
        delta = soft_embedding(probs, weight, config.top_k)
        return delta, parameters(entropy * math.log(probs.shape[-1]))


class SoftMaskSlerpRule(SoftMaskRule):
    """Soft-masking's spherical variant: the same weight, E[M] and Delta joined along the great
    circle between their directions (sin-weighted) instead of the straight line."""

    name = "soft-mask-slerp"

    def mix(self, token_embeds, mask_embedding, delta, alpha, masked, parameters) -> torch.Tensor:
        return slerp_mix(token_embeds, mask_embedding, at_least_fp32(delta), alpha, masked)


class IterSmoothRule(ResidualRule):
    """dInfer's iteration smoothing, training-free: E[M] + w softmax(z / T_res)^T E, with w
    ramping linearly from `smooth_start` to `smooth_end` as the block is decoded."""

    name = "itersmooth"

    def residual(self, probs, entropy, weight, config, features, parameters) -> Residual:
        progress = features[0].to(probs.dtype)
        ramp = config.smooth_start + (config.smooth_end - config.smooth_start) * progress
        return soft_embedding(probs, weight, config.top_k), ramp

    def mix(self, token_embeds, mask_embedding, delta, alpha, masked, parameters) -> torch.Tensor:
        return additive_mix(token_embeds, mask_embedding, at_least_fp32(delta), alpha, masked)


class SelfConditioningRule(ResidualRule):
    """Self-conditioning with a learned projection: E[M] + alpha W (p^T E), alpha = 1 where a
    prediction exists. W (D x D) starts at zero, so the untrained rule is plain masking."""

    name = "selfcond-proj"
    learned = True

    def build_parameters(self, dim: int) -> nn.Module:
        projection = nn.Linear(dim, dim, bias=False)
        nn.init.zeros_(projection.weight)
        return projection

    def residual(self, probs, entropy, weight, config, features, parameters) -> Residual:
        return soft_embedding(probs, weight, config.top_k), torch.ones_like(entropy)

    def mix(self, token_embeds, mask_embedding, delta, alpha, masked, parameters) -> torch.Tensor:
        delta = at_least_fp32(delta)
        projected = parameters(delta.to(parameters.weight.dtype)).to(delta.dtype)
        return additive_mix(token_embeds, mask_embedding, projected, alpha, masked)


class AlphaNetwork(nn.Module):
    """sigmoid(MLP(H / log V, max p, progress, place)): 4 -> hidden -> 1, tanh. The output bias
    starts at logit(0.3), the fixed alpha the study found strongest, and the last layer at zero."""

    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(4, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        nn.init.zeros_(self.layers[2].weight)
        nn.init.constant_(self.layers[2].bias, math.log(0.3 / 0.7))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.layers(features.to(self.layers[0].weight.dtype))).squeeze(-1)


class LearnedAlphaRule(ResidualRule):
    """RCD's mix (Eq. 1-2) with alpha from a small MLP of (entropy, confidence, decode
    progress, place in block) instead of Eq. 3: the seed paper's open 'learned weighting'."""

    name = "learned-alpha"
    learned = True

    def build_parameters(self, dim: int) -> nn.Module:
        return AlphaNetwork()

    def residual(self, probs, entropy, weight, config, features, parameters) -> Residual:
        confidence = at_least_fp32(probs).amax(dim=-1)
        inputs = torch.stack(
            [entropy, confidence, features[0].to(entropy.dtype), features[1].to(entropy.dtype)], -1
        )
        return soft_embedding(probs, weight, config.top_k), parameters(inputs).to(entropy.dtype)


def additive_mix(token_embeds, mask_embedding, delta, alpha, masked) -> torch.Tensor:
    """E[M] + alpha Delta at masked positions (no interpolation), in fp32; elsewhere E(x)."""
    a = at_least_fp32(alpha).unsqueeze(-1)
    mixed = at_least_fp32(mask_embedding).to(a.dtype) + a * delta.to(a.dtype)
    return torch.where(masked.unsqueeze(-1), mixed.to(token_embeds.dtype), token_embeds)


def slerp_mix(token_embeds, mask_embedding, delta, alpha, masked) -> torch.Tensor:
    """sin((1 - a) theta) / sin(theta) E[M] + sin(a theta) / sin(theta) Delta at masked positions,
    theta the angle between E[M] and Delta (the straight-line mix where they are parallel)."""
    a = at_least_fp32(alpha).unsqueeze(-1)
    mask = at_least_fp32(mask_embedding).to(a.dtype).expand_as(delta)
    delta = delta.to(a.dtype)
    cosine = nn.functional.cosine_similarity(mask, delta, dim=-1, eps=1e-12).unsqueeze(-1)
    theta = torch.acos(cosine.clamp(-1.0, 1.0))
    sine = torch.sin(theta)
    parallel = sine < 1e-6
    safe = torch.where(parallel, torch.ones_like(sine), sine)
    low = torch.where(parallel, 1.0 - a, torch.sin((1.0 - a) * theta) / safe)
    high = torch.where(parallel, a, torch.sin(a * theta) / safe)
    mixed = low * mask + high * delta
    return torch.where(masked.unsqueeze(-1), mixed.to(token_embeds.dtype), token_embeds)


RULES: dict[str, ResidualRule] = {
    rule.name: rule
    for rule in (
        RcdRule(),
        SoftMaskRule(),
        SoftMaskSlerpRule(),
        IterSmoothRule(),
        SelfConditioningRule(),
        LearnedAlphaRule(),
    )
}
assert tuple(RULES) == RESIDUAL_RULES, "rcd.residual.RESIDUAL_RULES names the rules of this registry"


def residual_rule(config: ResidualConfig) -> ResidualRule:
    return RULES[config.rule]


def rule_residual_from_logits(
    logits: torch.Tensor,
    weight: torch.Tensor,
    config: ResidualConfig,
    features: tuple[torch.Tensor, torch.Tensor],
    parameters: nn.Module | None,
) -> Residual:
    """(Delta, alpha) of n positions (logits (n, V), features two (n,)) under the config's rule."""
    probs, entropy = probs_and_entropy(logits, config.temperature)
    return residual_rule(config).residual(probs, entropy, weight, config, features, parameters)


def rule_parameters(model: nn.Module, config: ResidualConfig) -> nn.Module | None:
    """The learned part of the config's rule on `model`; refused if the rule needs one it lacks."""
    if not residual_rule(config).learned:
        return None
    parameters = getattr(model, PARAMETERS_ATTRIBUTE, None)
    if parameters is None or getattr(parameters, "rule_name", None) != config.rule:
        raise ValueError(
            f"residual rule {config.rule!r} has learned parameters and this model holds none for it: "
            f"decode a model trained with `rcd train --stage rcd --res-rule {config.rule}`"
        )
    return parameters


def attach_rule_parameters(model: nn.Module, config: ResidualConfig, dim: int) -> nn.Module | None:
    """Give `model` the learned part of the config's rule (kept if it has it already)."""
    existing = getattr(model, PARAMETERS_ATTRIBUTE, None)
    if existing is not None and getattr(existing, "rule_name", None) == config.rule:
        return existing
    rule = residual_rule(config)
    parameters = rule.build_parameters(dim) if rule.learned else None
    if parameters is not None:
        reference = next(model.parameters())
        parameters = parameters.to(device=reference.device)
        parameters.rule_name = config.rule
        model.add_module(PARAMETERS_ATTRIBUTE, parameters)
    return parameters


@contextmanager
def without_rule_parameters(model: nn.Module):
    """The model without its rule module for the duration (save_pretrained writes only its own
    weights, which `from_pretrained` then loads without unexpected keys)."""
    parameters = model._modules.pop(PARAMETERS_ATTRIBUTE, None)
    try:
        yield parameters
    finally:
        if parameters is not None:
            model.add_module(PARAMETERS_ATTRIBUTE, parameters)


def save_rule_parameters(parameters: nn.Module, folder: str | Path) -> Path:
    """PARAMETERS_FILE in `folder`: the rule module's tensors, its rule name and width."""
    from safetensors.torch import save_file

    path = Path(folder) / PARAMETERS_FILE
    tensors = {name: value.detach().contiguous().cpu() for name, value in parameters.state_dict().items()}
    save_file(
        tensors, str(path), metadata={"rule": parameters.rule_name, "dim": json.dumps(_width(parameters))}
    )
    return path


def load_rule_parameters(model: nn.Module, folder: str | Path) -> nn.Module | None:
    """Attach the rule module saved in `folder` to `model` (None if the folder holds none)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(folder) / PARAMETERS_FILE
    if not path.is_file():
        return None
    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
    rule = RULES.get(metadata.get("rule", ""))
    if rule is None or not rule.learned:
        raise ValueError(
            f"{path} names no learned residual rule ({metadata.get('rule')!r}): delete it or re-save it"
        )
    module = rule.build_parameters(json.loads(metadata["dim"]) or 1)
    module.load_state_dict(load_file(str(path)))
    module.rule_name = rule.name
    reference = next(model.parameters())
    model.add_module(PARAMETERS_ATTRIBUTE, module.to(device=reference.device))
    return module


def _width(parameters: nn.Module) -> int:
    """D of a projection (the only rule module whose shape depends on the model); 0 otherwise."""
    return parameters.weight.shape[1] if isinstance(parameters, nn.Linear) else 0
