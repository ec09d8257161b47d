"""The residual context a decode carries between steps, and the rules that start it.

`ResidualState` holds, per position, the (Delta, alpha) of its latest prediction (Eq. 1
and 3, computed by `rcd.residual`) and mixes them into the next step's inputs (Eq. 2).
Positions not predicted yet get theirs from an init rule (docs/method.md, section 2.3): one
small class per rule, chosen by `ResidualConfig.init`. A rule names the model whose
plain-mask forward pass it needs (`source`), so the loop can run and count that pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch

from ..models.adapter import DiffusionModel
from ..residual import (
    ResidualConfig,
    dirichlet_probs,
    normalized_entropy,
    probs_and_entropy,
    residual_from_logits,
)
from ..residual_rules import Residual, block_features, residual_rule, rule_parameters
from .passes import DecodeSequence

# observer(where (B, n), window start, logits (B, n, V), sequence after the step's commits)
ResidualObserver = Callable[[torch.Tensor, int, torch.Tensor, DecodeSequence], None]


class ResidualState:
    """Per-position residual (Delta, alpha) of the last prediction; `known` once predicted."""

    def __init__(
        self,
        batch: int,
        length: int,
        model: DiffusionModel,
        config: ResidualConfig,
        sequence: DecodeSequence | None = None,
        observer: ResidualObserver | None = None,
    ):
        self.config = config
        self.init_rule = init_rule(config)
        self.rule = residual_rule(
            config
        )  # rcd.residual_rules: how p becomes (Delta, alpha) and enters inputs
        self.rule_parameters = rule_parameters(model.model, config)
        self.sequence, self.mask_token_id = sequence, model.mask_token_id  # block features of the rules
        self.observer = observer
        self.weight = model.embedding_weight
        self.mask_embedding = model.mask_embedding()
        dim = self.weight.shape[1]
        self.delta = torch.zeros(batch, length, dim, dtype=model.dtype, device=model.device)
        alpha_dtype = torch.promote_types(model.dtype, torch.float32)
        self.alpha = torch.zeros(batch, length, dtype=alpha_dtype, device=model.device)
        self.known = torch.zeros(batch, length, dtype=torch.bool, device=model.device)

    def mix(self, embeds: torch.Tensor, masked: torch.Tensor, start: int, end: int) -> torch.Tensor:
        """Eq. 2 for positions [start, end): masked ones take (1 - alpha) E[M] + alpha Delta."""
        delta, alpha = self.delta[:, start:end], self.alpha[:, start:end]
        return self.rule.mix(embeds, self.mask_embedding, delta, alpha, masked, self.rule_parameters)

    def set(self, where: torch.Tensor, start: int, delta: torch.Tensor, alpha: torch.Tensor) -> None:
        """Store residuals for positions `where` (B, n) of the window starting at start."""
        end = start + where.shape[1]
        self.delta[:, start:end][where] = delta.to(self.delta.dtype)
        self.alpha[:, start:end][where] = alpha.to(self.alpha.dtype)
        self.known[:, start:end] |= where

    def update_from_logits(self, where: torch.Tensor, start: int, logits: torch.Tensor) -> None:
        """Residuals of positions `where` from their logits (window starting at start)."""
        if where.any():
            if self.observer is not None:
                self.observer(where, start, logits, self.sequence)
            self.set(where, start, *self.residual_of(where, start, logits[where]))

    def residual_of(
        self,
        where: torch.Tensor,
        start: int,
        logits: torch.Tensor | None = None,
        probs: torch.Tensor | None = None,
    ) -> Residual:
        """(Delta, alpha) of positions `where` (window at start) from their logits (at T_res) or p."""
        if self.config.rule == "rcd" and probs is None:  # needs no block features
            return residual_from_logits(logits, self.weight, self.config)
        if probs is None:
            probs, entropy = probs_and_entropy(logits, self.config.temperature)
        else:
            entropy = normalized_entropy(probs)
        features = self.block_features(where, start) if self.config.rule != "rcd" else None
        return self.rule.residual(probs, entropy, self.weight, self.config, features, self.rule_parameters)

    def block_features(self, where: torch.Tensor, start: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(progress, place in block) of positions `where` (window at start), from the live sequence."""
        sequence = self.sequence
        if sequence is None:
            raise ValueError(
                f"residual rule {self.config.rule!r} reads the block layout: build ResidualState with sequence="
            )
        progress, place = block_features(
            sequence.ids == self.mask_token_id, sequence.gen_start, sequence.block_length
        )
        end = start + where.shape[1]
        return progress[:, start:end][where], place[:, start:end][where]

    def initialize(
        self,
        need: torch.Tensor,
        start: int,
        predict: Callable[[str], torch.Tensor],
        generator: torch.Generator | None = None,
    ) -> str | None:
        """Apply the init rule to positions `need` (B, n) of the window starting at start.

        predict(source) returns the window's plain-mask logits from that model. Returns the
        source of the forward pass the rule ran ("model", "reference"), or None.
        """
        if not need.any():
            return None
        rule = self.init_rule
        logits = predict(rule.source) if rule.source is not None else None
        self.set(need, start, *rule.residuals(self, need, start, logits, generator))
        return rule.source


class InitRule:
    """The residual of positions never predicted: one subclass per `ResidualConfig.init`."""

    name: ClassVar[str]
    source: ClassVar[str | None] = None  # the model whose plain-mask pass the rule reads

    def residuals(
        self,
        state: ResidualState,
        need: torch.Tensor,
        start: int,
        logits: torch.Tensor | None,
        generator: torch.Generator | None,
    ) -> Residual:
        raise NotImplementedError


class ZeroInit(InitRule):
    """Cold start: alpha = 0, so the inputs are plain masks."""

    name = "zero"

    def residuals(self, state, need, start, logits, generator) -> Residual:
        n = int(need.sum())
        return state.delta.new_zeros(n, state.delta.shape[-1]), state.alpha.new_zeros(n)


@dataclass(frozen=True)
class DirichletInit(InitRule):
    """Random distributions p ~ Dir(concentration), mixed like predictions."""

    concentration: float = 1.0
    name = "dirichlet"

    def residuals(self, state, need, start, logits, generator) -> Residual:
        probs = dirichlet_probs(
            (int(need.sum()),), state.weight.shape[0], self.concentration, generator, state.alpha.device
        )
        return state.residual_of(need, start, probs=probs)


class ReferenceInit(InitRule):
    """Warm start: one plain-mask forward pass of a reference model."""

    name = "reference"
    source = "reference"

    def residuals(self, state, need, start, logits, generator) -> Residual:
        return state.residual_of(need, start, logits[need])


class SelfInit(ReferenceInit):
    """One extra plain-mask forward pass of the decoded model itself."""

    name = "self"
    source = "model"


def init_rule(config: ResidualConfig) -> InitRule:
    """The init strategy `config.init` names."""
    if config.init == "dirichlet":
        return DirichletInit(config.dirichlet_concentration)
    return INIT_STRATEGIES[config.init]()


INIT_STRATEGIES: dict[str, type[InitRule]] = {
    rule.name: rule for rule in (ZeroInit, DirichletInit, ReferenceInit, SelfInit)
}
