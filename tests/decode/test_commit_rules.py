"""Edges of the commit rules, two of them found unchecked by the mutation run: a threshold is strict,
ties commit left to right, and the random order draws from the decode's generator."""

import torch

from rcd.decode.policy import commit_threshold, commit_top_k, order_scores


def test_a_confidence_equal_to_the_threshold_is_not_committed():
    confidence = torch.tensor([[0.5, 0.9, 0.5, 0.95]])
    candidates = torch.ones_like(confidence, dtype=torch.bool)
    committed = commit_threshold(confidence, candidates, threshold=0.9)
    assert committed.tolist() == [[False, False, False, True]]  # 0.9 is not above 0.9


def test_equal_confidences_commit_left_to_right():
    confidence = torch.full((2, 6), 0.25)
    candidates = torch.ones_like(confidence, dtype=torch.bool)
    candidates[1, 0] = False
    committed = commit_top_k(confidence, candidates, torch.tensor([2, 3]))
    assert committed.tolist() == [
        [True, True, False, False, False, False],
        [False, True, True, True, False, False],
    ]


def test_the_random_order_is_the_generators_and_neither_confidence_nor_position():
    confidence = torch.linspace(0.1, 0.9, 16).repeat(2, 1)

    def scores(seed):
        return order_scores("random", confidence, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(scores(0), scores(0)) and not torch.equal(scores(0), scores(1))
    ranking = scores(0).argsort(dim=-1, descending=True)
    by_confidence = order_scores("confidence", confidence).argsort(dim=-1, descending=True)
    by_position = order_scores("left-to-right", confidence).argsort(dim=-1, descending=True)
    assert not torch.equal(ranking, by_confidence) and not torch.equal(ranking, by_position)
    assert not torch.equal(ranking[0], ranking[1])  # a draw per row, not one order for the batch
