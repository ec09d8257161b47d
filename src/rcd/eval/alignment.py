"""The train/test alignment of the residual (docs/method.md, section 3): stage rcd trains the
target on residuals from the frozen reference's prediction of the noisy input, but decoding
feeds the target its own previous prediction (the self-loop). This instrument decodes with
the self-loop and, at every residual update, also runs the reference on the sequence the
residual is fed into, then records KL(p_reference || p_self) at each fed position: both at
T_res, and with the reference at the temperature stage rcd trained at (what the model was
fed in training, whatever T_res decoding uses). The reference's passes are the instrument's own: they change no token and are not
counted in the decode's `nfe`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..decode import GenerationOutput, generate
from ..decode.passes import DecodeSequence, ModelPass
from ..models.adapter import DiffusionModel, check_reference
from ..residual import ResidualConfig, align_vocab, normalized_entropy


@dataclass(frozen=True)
class AlignmentRecord:
    """One entry per fed position and residual update (n entries, all CPU tensors)."""

    kl: torch.Tensor  # KL(p_reference || p_self) in nats, both at T_res
    kl_trained: torch.Tensor  # KL(p_reference at the training temperature || p_self at T_res)
    entropy: torch.Tensor  # H(p_self) / log V: what RCD's alpha reads
    reference_entropy: torch.Tensor  # H(p_reference) / log V
    step: torch.Tensor  # the residual update (0, 1, ...: one per denoising pass) that fed it
    row: torch.Tensor  # batch row
    position: torch.Tensor  # absolute column in the decoded sequence

    def by_entropy_bin(self, bins: int = 10) -> list[dict]:
        """Mean KL per bin of the self-loop's normalised entropy ([0, 1] in `bins` equal bins)."""
        index = (self.entropy * bins).long().clamp_(0, bins - 1)
        return [
            {"entropy_from": b / bins, "entropy_to": (b + 1) / bins, **self._means(index == b)}
            for b in range(bins)
        ]

    def by_step(self) -> list[dict]:
        """Mean KL per residual update, in decoding order."""
        return [{"step": int(s), **self._means(self.step == s)} for s in self.step.unique().tolist()]

    def summary(self, bins: int = 10) -> dict:
        return {
            **self._means(torch.ones_like(self.kl, dtype=torch.bool)),
            "by_entropy_bin": self.by_entropy_bin(bins),
            "by_step": self.by_step(),
        }

    def _means(self, where: torch.Tensor) -> dict:
        count = int(where.sum())
        return {
            "count": count,
            "mean_kl": float(self.kl[where].double().mean()) if count else math.nan,
            "mean_kl_trained": float(self.kl_trained[where].double().mean()) if count else math.nan,
        }


class AlignmentProbe:
    """A residual observer (`generate(..., residual_observer=)`): the reference's prediction of
    the sequence each self-loop update feeds, against the self-loop's own, per position."""

    def __init__(
        self, reference: nn.Module | DiffusionModel, temperature: float, train_temperature: float = 1.0
    ):
        self.reference = DiffusionModel.wrap(reference)
        self.temperature, self.train_temperature = temperature, train_temperature
        self.steps = 0
        self.parts: list[dict[str, torch.Tensor]] = []

    def __call__(self, where: torch.Tensor, lo: int, logits: torch.Tensor, sequence: DecodeSequence) -> None:
        hi = lo + logits.shape[1]
        reference_pass = ModelPass(self.reference, sequence, "none")
        reference_logits, _ = reference_pass.logits(
            lambda start, end: self.reference.embed(sequence.ids[:, start:end]), lo, hi, lo
        )
        log_self = torch.log_softmax(logits[where].double() / self.temperature, -1)
        p_reference, p_trained = (
            align_vocab(torch.softmax(reference_logits[where].double() / t, -1), log_self.shape[-1])
            for t in (self.temperature, self.train_temperature)
        )
        rows, columns = where.nonzero(as_tuple=True)
        self.parts.append(
            {
                "kl": _kl(p_reference, log_self),
                "kl_trained": _kl(p_trained, log_self),
                "entropy": normalized_entropy(log_self.exp()),
                "reference_entropy": normalized_entropy(p_reference),
                "step": torch.full_like(rows, self.steps),
                "row": rows,
                "position": columns + lo,
            }
        )
        self.steps += 1

    def record(self) -> AlignmentRecord:
        fields = tuple(AlignmentRecord.__dataclass_fields__)
        if not self.parts:
            return AlignmentRecord(*(torch.empty(0) for _ in fields))
        return AlignmentRecord(*(torch.cat([part[f] for part in self.parts]).cpu() for f in fields))


def _kl(p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) per row, in nats (0 log 0 = 0)."""
    return (torch.special.xlogy(p, p) - p * log_q).sum(-1).clamp_min(0.0)


def residual_alignment(
    model: nn.Module | DiffusionModel,
    reference: nn.Module | DiffusionModel,
    input_ids: torch.Tensor,
    config=None,
    *,
    residual: ResidualConfig | None = None,
    train_temperature: float = 1.0,
    **generate_options,
) -> tuple[GenerationOutput, AlignmentRecord]:
    """Decode with RCD's self-loop (`rcd.generate` with these options) and measure, at every
    residual update, how far the fed residual lies from the reference's (AlignmentRecord).
    `reference` is also the warm start's model under `init="reference"`; `train_temperature` is the
    T_res stage rcd trained at (the paper's and rcd's default: 1)."""
    residual = residual or ResidualConfig()
    if not (train_temperature > 0 and math.isfinite(train_temperature)):
        raise ValueError(
            f"train_temperature must be a finite number > 0 (stage rcd's T_res), got {train_temperature}"
        )
    if residual.feedback != "self":
        raise ValueError(
            "the alignment instrument measures the self-loop: use ResidualConfig(feedback='self')"
        )
    check_reference(DiffusionModel.wrap(model), DiffusionModel.wrap(reference))
    if residual.init == "reference":  # the warm start reads the same reference
        generate_options["reference"] = reference
    probe = AlignmentProbe(reference, residual.temperature, train_temperature)
    ref_module = probe.reference.model
    training = ref_module.training
    ref_module.eval()
    try:
        out = generate(
            model, input_ids, config, residual=residual, residual_observer=probe, **generate_options
        )
    finally:
        ref_module.train(training)
    return out, probe.record()
