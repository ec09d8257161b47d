"""Linking commits to the residual that fed them (rcd.eval.commit_risk), against loops."""

import itertools
import math

import pytest
import torch

from conftest import make_model, random_prompts
from rcd.eval.alignment import residual_alignment
from rcd.eval.commit_risk import NO_GOLD, CommitLink, link_commits, roc_auc, stratified_auc
from rcd.residual import ResidualConfig

GEN, BLOCK = 8, 4


def auc_by_pairs(score, label):
    positives = [s for s, y in zip(score.tolist(), label.tolist()) if y]
    negatives = [s for s, y in zip(score.tolist(), label.tolist()) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(positives, negatives))
    return wins / (len(positives) * len(negatives))


def test_auc_counts_pairs_with_half_ties():
    g = torch.Generator().manual_seed(0)
    score = torch.randint(0, 6, (60,), generator=g).double()  # many ties
    label = torch.rand(60, generator=g) < 0.3 + 0.1 * score
    assert roc_auc(score, label) == pytest.approx(auc_by_pairs(score, label), abs=1e-12)
    assert roc_auc(score, label) > 0.5  # the label leans on the score
    assert roc_auc(-score, label) == pytest.approx(1 - roc_auc(score, label))
    assert math.isnan(roc_auc(score, torch.zeros(60, dtype=torch.bool)))


def test_stratified_auc_counts_only_pairs_within_a_stratum():
    """`by` carries most of the information; within its strata what is left is the score's."""
    g = torch.Generator().manual_seed(1)
    by = torch.arange(200).double()
    label = (torch.rand(200, generator=g) < torch.linspace(0.05, 0.95, 200)).bool()
    score = torch.rand(200, generator=g)
    assert roc_auc(by, label) > 0.8
    index = torch.bucketize(by, torch.quantile(by, torch.linspace(0, 1, 5, dtype=torch.float64))[1:-1])
    wins = pairs = 0.0
    for s in range(4):
        inside = index == s
        n_pos = int(label[inside].sum())
        weight = n_pos * (int(inside.sum()) - n_pos)
        if weight:
            wins += auc_by_pairs(score[inside], label[inside]) * weight
            pairs += weight
    assert stratified_auc(score, label, by, 4) == pytest.approx(wins / pairs)
    assert (
        stratified_auc(by, label, by, 4) < roc_auc(by, label) - 0.15
    )  # little is left to `by` within a stratum
    assert stratified_auc(score, label, by, 4) < 0.7  # noise stays near chance


@pytest.mark.parametrize("attention", ["bidirectional", "block-causal"])
def test_each_commit_links_to_its_last_fed_residual(attention):
    model, reference = make_model(attention, seed=0), make_model(attention, seed=7)
    prompts = random_prompts(3, 4)
    out, record = residual_alignment(
        model,
        reference,
        prompts,
        gen_length=GEN,
        block_length=BLOCK,
        threshold=0.3,
        residual=ResidualConfig(),
        return_trace=True,
    )
    g = torch.Generator().manual_seed(3)
    gold = torch.randint(4, 47, (3, GEN - 1), generator=g)
    gold[:, :2] = out.generated[:, :2]  # some right commits
    gold[0, 3] = NO_GOLD
    link = link_commits(record, out.trace, gold)

    expected = []  # by loops: commit order of the trace, the last record entry of its (row, column)
    for step in out.trace:
        for r, j in step.committed.nonzero().tolist():
            column = step.block_start + j
            generated = column - int(step.gen_starts[r])
            assert out.generated[r, generated] == step.tokens[r, j]  # the trace's column is the sequence's
            if generated >= gold.shape[1] or gold[r, generated] == NO_GOLD:
                continue
            entries = [
                i for i in range(record.kl.numel()) if record.row[i] == r and record.position[i] == column
            ]
            kl = float(record.kl[entries[-1]]) if entries else math.nan
            wrong = bool(step.tokens[r, j] != gold[r, generated])
            expected.append((kl, float(step.confidence[r, j]), wrong, len(entries)))
    assert link.wrong.tolist() == [e[2] for e in expected]
    assert link.confidence.tolist() == pytest.approx([e[1] for e in expected])
    assert link.kl.nan_to_num(-1).tolist() == pytest.approx(
        [-1 if math.isnan(e[0]) else e[0] for e in expected]
    )
    fed = [e[3] > 0 for e in expected]
    assert any(fed) and not all(fed)  # a block's first pass commits what only the init fed
    assert link.wrong.any() and not link.wrong.all()
    assert link.fed.tolist() == fed


def test_wrong_rate_by_kl_quantile_partitions_the_fed_commits():
    g = torch.Generator().manual_seed(2)
    kl = torch.rand(100, generator=g).double()
    kl[:10] = math.nan  # unfed
    wrong = torch.rand(100, generator=g) < kl.nan_to_num(0.5)
    link = CommitLink(
        kl=kl, entropy=torch.rand(100, generator=g).double(), confidence=1 - kl.nan_to_num(0.5), wrong=wrong
    )
    table = link.by_kl_quantile(4)
    assert sum(row["count"] for row in table) == 90
    for row in table:
        inside = (kl > row["kl_from"]) & (kl <= row["kl_to"]) if row is not table[0] else kl <= row["kl_to"]
        assert row["count"] == int(inside.sum())
        assert row["wrong_rate"] == pytest.approx(wrong[inside].double().mean().item())
    assert table[-1]["wrong_rate"] > table[0]["wrong_rate"]
    summary = link.summary(4)
    assert summary["fed_commits"] == 90 and summary["commits"] == 100
    assert summary["auc"]["kl"] == pytest.approx(auc_by_pairs(kl[10:], wrong[10:]))
