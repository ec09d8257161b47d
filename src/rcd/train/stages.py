"""The three training stages: `ref` and `seqd` (plain objective) and `rcd` (residual-aware).

Stage `rcd` (docs/method.md, section 3): a frozen reference predicts p on the noisy input; the
target's inputs at masked positions become (1 - alpha) E[M] + alpha p @ E_target through
the same `rcd.residual` functions that decoding uses; the target is trained with the usual
loss. Two options beyond the paper: residual dropout (plain masks for some samples or
positions) and a "more-masked" residual source (the reference sees extra masks, as the
previous denoising step did at inference).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..models.adapter import DiffusionModel
from ..residual import ResidualConfig, residual_from_logits, residual_from_top_k
from ..residual_rules import (
    attach_rule_parameters,
    block_features,
    residual_rule,
    rule_parameters,
    rule_residual_from_logits,
)
from .noise import NoisyBatch, dropped_residuals, with_extra_masks
from .objectives import diffusion_loss, noisy_logits

STAGES = ("ref", "seqd", "rcd")
DROPOUT_UNITS = ("sample", "position")


DECODE_ONLY = ("init", "reinit_blocks", "dirichlet_concentration")  # ResidualConfig fields of decoding


class ResidualSource:
    """Where stage rcd's residual comes from (`--res-source`), both halves in one place: what
    the frozen reference is shown, outside the trained module (`reference_logits`, so it can
    be sharded and cached on its own), and what the target makes of that inside its forward
    (`target_signal`, so DDP/FSDP see every use of the parameters)."""

    cacheable = True  # the reference's answer depends only on the batch (--cache-reference)

    def reference_view(self, batch: NoisyBatch, options: ResidualTrainingConfig) -> NoisyBatch | None:
        """The input the reference predicts (None: no reference pass)."""
        return batch

    def signal_positions(self, batch: NoisyBatch, seen: NoisyBatch) -> torch.Tensor:
        """The positions of the reference's prediction kept as the signal, in `masked` order."""
        return batch.masked

    def target_signal(
        self, module: StageModule, target: DiffusionModel, batch: NoisyBatch, signal: ReferenceSignal
    ) -> ReferenceSignal:
        """The residual the target is fed at the batch's masked positions."""
        return signal


class NoisySource(ResidualSource):
    """The paper's: the reference on the noisy x_t itself."""


class MoreMaskedSource(ResidualSource):
    """The reference on a copy of x_t with extra masks, as the previous denoising step saw it."""

    def reference_view(self, batch: NoisyBatch, options: ResidualTrainingConfig) -> NoisyBatch | None:
        return with_extra_masks(batch, options.more_masked_fraction)


def earlier_step(batch: NoisyBatch, fraction: float, steps_back: int) -> NoisyBatch:
    """The input `steps_back` denoising steps before this batch's: each step back masks every
    still-unmasked response token with probability `fraction`. One uniform stream against a
    growing threshold, so the copies nest (each step back's masks contain the next one's)."""
    return with_extra_masks(batch, 1.0 - (1.0 - fraction) ** steps_back)


class SelfLoopSource(MoreMaskedSource):
    """Inference's self-loop unrolled by `unroll` = K steps, without backpropagation through
    it: the reference predicts the input K steps back (the warm start), then the target
    predicts each later copy from the residual of the one before it; its prediction of the
    copy one step back is this step's residual. K = 1: one step back, as after a warm start."""

    cacheable = False

    def reference_view(self, batch: NoisyBatch, options: ResidualTrainingConfig) -> NoisyBatch | None:
        return earlier_step(batch, options.more_masked_fraction, options.unroll)

    def signal_positions(self, batch: NoisyBatch, seen: NoisyBatch) -> torch.Tensor:
        return seen.masked  # the copy's masks: the target predicts them itself

    @torch.no_grad()
    def target_signal(self, module, target, batch, signal):
        options = module.residual
        copies = [
            earlier_step(batch, options.more_masked_fraction, back) for back in range(options.unroll, -1, -1)
        ]
        for previous, later in zip(copies, copies[1:]):  # each copy once, oldest first
            embeds = module.residual_inputs(
                target, previous, target.embed(previous.noisy), signal, dropout=False
            )
            signal = ReferenceSignal(
                logits=noisy_logits(target, embeds, previous, module.block_length)[later.masked]
            )
        return signal


class SelfConditioningSource(ResidualSource):
    """Self-conditioning (Chen et al., 2022): the target's stop-grad plain-mask prediction of
    the same x_t becomes its residual; dropout decides how often it is fed. No reference pass."""

    cacheable = False

    def reference_view(self, batch: NoisyBatch, options: ResidualTrainingConfig) -> NoisyBatch | None:
        return None

    @torch.no_grad()
    def target_signal(self, module, target, batch, signal):
        logits = noisy_logits(target, target.embed(batch.noisy), batch, module.block_length)
        return ReferenceSignal(logits=logits[batch.masked])


SOURCES: dict[str, ResidualSource] = {
    "noisy": NoisySource(),
    "more-masked": MoreMaskedSource(),
    "self": SelfLoopSource(),
    "selfcond": SelfConditioningSource(),
}


@dataclass(frozen=True)
class ResidualTrainingConfig:
    """Stage rcd's residual inputs: the method's residual (alpha, T_res, top-k; the same
    `ResidualConfig` decoding uses) and how training feeds it (dropout, source)."""

    residual: ResidualConfig = field(
        default_factory=ResidualConfig,
        metadata={"help": "stage rcd: the residual (as in decoding)", "skip": DECODE_ONLY},
    )
    dropout: float = field(default=0.0, metadata={"help": "residual dropout rate (plain masks instead)"})
    dropout_unit: str = field(
        default="sample",
        metadata={"help": "residual dropout per 'sample' or per 'position'", "choices": DROPOUT_UNITS},
    )
    source: str = field(
        default="noisy",
        metadata={
            "help": "residual source: the reference on the noisy x_t (paper), on a 'more-masked' copy, "
            "'self': the target's own no-grad prediction of the more-masked copy (inference's self-loop), "
            "or 'selfcond': the target's own no-grad prediction of x_t itself (self-conditioning; "
            "pair it with --res-dropout 0.5)",
            "choices": tuple(SOURCES),
        },
    )
    more_masked_fraction: float = field(
        default=0.25, metadata={"help": "extra masking rate of unmasked response tokens (more-masked, self)"}
    )
    unroll: int = field(
        default=1,
        metadata={
            "help": "source self: denoising steps of the self-loop unrolled, without backpropagation (K)"
        },
    )

    def __post_init__(self) -> None:
        if not 0.0 <= self.dropout <= 1.0 or not 0.0 <= self.more_masked_fraction <= 1.0:
            raise ValueError("residual dropout and more_masked_fraction must lie in [0, 1]")
        if self.unroll < 1 or (self.unroll > 1 and self.source != "self"):
            raise ValueError(
                f"residual unroll {self.unroll} with source {self.source!r}: unroll is >= 1, and above 1 "
                "only with source 'self' (--res-source self)"
            )
        if self.source not in SOURCES or self.dropout_unit not in DROPOUT_UNITS:
            raise ValueError(f"source must be one of {tuple(SOURCES)}, dropout_unit one of {DROPOUT_UNITS}")
        if any(getattr(self.residual, name) != getattr(ResidualConfig(), name) for name in DECODE_ONLY):
            raise ValueError(f"{', '.join(DECODE_ONLY)} are decoding options; training takes none of them")


@dataclass
class ReferenceSignal:
    """What the frozen reference says at the batch's masked positions (in `masked` order):
    its logits, or a cached (alpha, top-k index, top-k probabilities)."""

    logits: torch.Tensor | None = None
    alpha: torch.Tensor | None = None
    top_index: torch.Tensor | None = None
    top_probs: torch.Tensor | None = None


@torch.no_grad()
def reference_signal(
    reference: DiffusionModel,
    batch: NoisyBatch,
    block_length: int | None,
    options: ResidualTrainingConfig,
) -> ReferenceSignal:
    """The frozen reference's part of the residual source: its logits on what the source shows it."""
    source = SOURCES[options.source]
    seen = source.reference_view(batch, options)
    if seen is None:
        return ReferenceSignal()
    logits = noisy_logits(reference, reference.embed(seen.noisy), seen, block_length)
    return ReferenceSignal(logits=logits[source.signal_positions(batch, seen)])


class StageModule(nn.Module):
    """One training step's computation through the trainable model, inside one forward.

    Embedding lookup, residual mixing and the loss all run in `forward`, so DDP and FSDP
    see every use of the parameters (E included: Delta = p @ E_target is differentiable).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        attention: str | None = None,
        block_length: int | None = None,
        residual: ResidualTrainingConfig | None = None,
    ):
        super().__init__()
        self.model = model
        self.attention = attention
        self.block_length = block_length
        self.residual = residual
        if residual is not None:  # a learned feedback rule's module lives on the model (rcd.residual_rules)
            attach_rule_parameters(model, residual.residual, self.diffusion_model.embedding_weight.shape[1])

    @property
    def diffusion_model(self) -> DiffusionModel:
        return DiffusionModel.wrap(self.model, self.attention)

    def forward(self, batch: NoisyBatch, signal: ReferenceSignal | None = None) -> torch.Tensor:
        target = self.diffusion_model
        embeds = target.embed(batch.noisy)
        if signal is not None:
            options = self.residual or ResidualTrainingConfig()
            signal = SOURCES[options.source].target_signal(self, target, batch, signal)
            embeds = self.residual_inputs(target, batch, embeds, signal)
        return diffusion_loss(noisy_logits(target, embeds, batch, self.block_length), batch)

    def residual_inputs(
        self,
        target: DiffusionModel,
        batch: NoisyBatch,
        embeds: torch.Tensor,
        signal: ReferenceSignal,
        dropout: bool = True,
    ) -> torch.Tensor:
        """Eq. 2 at masked positions, with Delta over the target's own embedding table."""
        options = self.residual or ResidualTrainingConfig()
        weight = target.embedding_weight
        config = options.residual
        parameters = rule_parameters(target.model, config)
        if config.rule != "rcd":
            progress, place = block_features(batch.masked, batch.gen_start, self.block_length)
            features = (progress[batch.masked], place[batch.masked])
            delta, alpha = rule_residual_from_logits(signal.logits, weight, config, features, parameters)
        elif signal.logits is not None:
            delta, alpha = residual_from_logits(signal.logits, weight, config)
        else:
            delta = residual_from_top_k(signal.top_probs, signal.top_index, weight, options.residual)
            alpha = signal.alpha
        full_delta = embeds.new_zeros(embeds.shape, dtype=delta.dtype)
        full_delta[batch.masked] = delta
        full_alpha = torch.zeros(batch.masked.shape, dtype=alpha.dtype, device=alpha.device)
        full_alpha[batch.masked] = alpha
        if dropout and self.training and options.dropout > 0:  # held-out loss: residual always on
            full_alpha = full_alpha.masked_fill(
                dropped_residuals(batch, options.dropout, options.dropout_unit), 0.0
            )
        return residual_rule(config).mix(
            embeds, target.mask_embedding(), full_delta, full_alpha, batch.masked, parameters
        )
