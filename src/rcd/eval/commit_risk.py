"""Does the residual's train/test mismatch predict a wrong commit? (docs/method.md, section 3)

Each committed position is linked to the KL of the last residual fed into it before its
commit (`AlignmentRecord`): that residual is the one in the input of the pass that chose the
committed token, where an average over earlier updates would mix in residuals the commit
never saw. The outcome is whether the token differs from the gold one at that position
(tasks with one answer per position, such as Sudoku's unique solution). Confidence at the
commit, the decoder's own signal, is the baseline the KL has to beat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..decode.output import TraceStep
from .alignment import AlignmentRecord

NO_GOLD = -1  # a gold id where the position has no gold token (not scored)


@dataclass(frozen=True)
class CommitLink:
    """One entry per committed, scored position (CPU tensors)."""

    kl: torch.Tensor  # KL(p_reference || p_self) of the last residual fed before the commit (NaN: none fed)
    entropy: torch.Tensor  # the self-loop's normalised entropy at that update (NaN: none fed)
    confidence: torch.Tensor  # the committing pass's probability of the token it committed
    wrong: torch.Tensor  # bool: the committed token is not the gold one

    @property
    def fed(self) -> torch.Tensor:
        """Commits that a self-loop residual fed (those on a block's first pass read only its init)."""
        return ~self.kl.isnan()

    def by_kl_quantile(self, bins: int = 5) -> list[dict]:
        """Wrong-commit rate per KL quantile bin of the fed commits (ties share a bin)."""
        kl, wrong = self.kl[self.fed], self.wrong[self.fed]
        if not kl.numel():
            return []
        edges = torch.quantile(kl, torch.linspace(0, 1, bins + 1, dtype=kl.dtype))
        index = torch.bucketize(kl, edges[1:-1])  # edges[i-1] < kl <= edges[i] -> bin i
        return [
            {
                "kl_from": float(edges[b]),
                "kl_to": float(edges[b + 1]),
                "count": int((index == b).sum()),
                "wrong_rate": _rate(wrong[index == b]),
            }
            for b in range(bins)
        ]

    def aucs(self, strata: int = 5) -> dict:
        """AUC of each signal as a predictor of a wrong commit, over the fed commits; and the AUC
        of KL within confidence quantile strata: what KL adds beyond the confidence."""
        fed = self.fed
        kl, entropy, confidence, wrong = (
            t[fed] for t in (self.kl, self.entropy, self.confidence, self.wrong)
        )
        return {
            "kl": roc_auc(kl, wrong),
            "self_entropy": roc_auc(entropy, wrong),
            "low_confidence": roc_auc(-confidence, wrong),
            "kl_within_confidence": stratified_auc(kl, wrong, confidence, strata),
        }

    def summary(self, bins: int = 5) -> dict:
        fed = self.fed
        return {
            "commits": int(self.wrong.numel()),
            "fed_commits": int(fed.sum()),
            "wrong_rate_fed": _rate(self.wrong[fed]),
            "wrong_rate_unfed": _rate(self.wrong[~fed]),
            "by_kl_quantile": self.by_kl_quantile(bins),
            "auc": self.aucs(bins),
        }

    @staticmethod
    def concat(links: list[CommitLink]) -> CommitLink:
        fields = CommitLink.__dataclass_fields__
        return CommitLink(**{f: torch.cat([getattr(link, f) for link in links]) for f in fields})


def _rate(flags: torch.Tensor) -> float:
    return float(flags.double().mean()) if flags.numel() else math.nan


def link_commits(record: AlignmentRecord, trace: list[TraceStep], gold: torch.Tensor) -> CommitLink:
    """Link the commits of one decode (`generate(..., return_trace=True)`, its `record`) to the
    last residual update that fed each position. `gold`: (B, G) gold ids of the first G generated
    positions, NO_GOLD where a position is not scored; commits past G are not scored, nor positions
    a stop filled with EOS after its block (no pass committed them: one block, as on Sudoku, has none)."""
    if any(step.gen_starts is None for step in trace):
        raise ValueError("the trace has no gen_starts: decode with return_trace=True")
    rows, columns, generated, tokens, confidence = [], [], [], [], []
    for step in trace:
        r, j = step.committed.nonzero(as_tuple=True)
        rows.append(r)
        columns.append(step.block_start + j)
        generated.append(step.block_start + j - step.gen_starts[r])
        tokens.append(step.tokens[r, j])
        confidence.append(step.confidence[r, j])
    rows, columns, generated, tokens, confidence = (
        torch.cat(t) if t else torch.empty(0, dtype=torch.long)
        for t in (rows, columns, generated, tokens, confidence)
    )
    scored = generated < gold.shape[1]
    rows, columns, generated, tokens, confidence = (
        t[scored] for t in (rows, columns, generated, tokens, confidence)
    )
    gold_ids = gold[rows, generated]
    keep = gold_ids != NO_GOLD
    rows, columns, tokens, confidence, gold_ids = (
        t[keep] for t in (rows, columns, tokens, confidence, gold_ids)
    )

    # the last update of each (row, column): entries are in update order, so the largest index
    size = [1 + int(t.max()) if t.numel() else 1 for t in (rows, columns, record.row, record.position)]
    height, width = max(size[0], size[2]), max(size[1], size[3])
    last = torch.full((height * width,), -1, dtype=torch.long)
    if record.kl.numel():
        keys = record.row.long() * width + record.position.long()
        last.scatter_reduce_(0, keys, torch.arange(record.kl.numel()), "amax")
    entry = last[rows * width + columns]
    fed = entry >= 0
    nan = torch.full(entry.shape, math.nan, dtype=torch.float64)
    kl, entropy = nan.clone(), nan.clone()
    kl[fed] = record.kl[entry[fed]].double()
    entropy[fed] = record.entropy[entry[fed]].double()
    return CommitLink(kl=kl, entropy=entropy, confidence=confidence.double(), wrong=tokens != gold_ids)


def roc_auc(score: torch.Tensor, label: torch.Tensor) -> float:
    """P(score of a positive > score of a negative), ties counting half (Mann-Whitney U);
    NaN without both classes."""
    positives = int(label.sum())
    negatives = label.numel() - positives
    if not positives or not negatives:
        return math.nan
    _, inverse, counts = torch.unique(score.double(), return_inverse=True, return_counts=True)
    upper = counts.cumsum(0).double()  # 1-based rank of each distinct value's last copy
    ranks = (upper - (counts - 1) / 2)[inverse]  # tied values share their mean rank
    u = ranks[label.bool()].sum() - positives * (positives + 1) / 2
    return float(u / (positives * negatives))


def stratified_auc(score: torch.Tensor, label: torch.Tensor, by: torch.Tensor, strata: int) -> float:
    """AUC of `score` over the (positive, negative) pairs that share a quantile stratum of `by`:
    how well it ranks outcomes that `by` alone cannot tell apart."""
    if not label.numel():
        return math.nan
    edges = torch.quantile(by.double(), torch.linspace(0, 1, strata + 1, dtype=torch.float64))
    index = torch.bucketize(by.double(), edges[1:-1])
    total = pairs = 0.0
    for s in range(strata):
        inside = index == s
        positives = int(label[inside].sum())
        weight = positives * (int(inside.sum()) - positives)
        if weight:
            total += roc_auc(score[inside], label[inside]) * weight
            pairs += weight
    return total / pairs if pairs else math.nan
