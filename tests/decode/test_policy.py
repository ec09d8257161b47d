import pytest
import torch

import rcd
from rcd.decode.policy import (
    FixedSchedule,
    Threshold,
    choose_tokens,
    commit_threshold,
    commit_top_k,
    fixed_schedule,
    position_confidence,
    token_confidence,
)


def test_fixed_schedule_even_split_remainder_first():
    assert fixed_schedule(torch.tensor([10, 4, 3]), 4).tolist() == [[3, 3, 2, 2], [1, 1, 1, 1], [1, 1, 1, 0]]
    assert fixed_schedule(torch.tensor([32]), 1).tolist() == [[32]]


def test_top_k_among_candidates_only():
    conf = torch.tensor([[0.9, 0.1, 0.8, 0.7, 0.95]])
    cand = torch.tensor([[True, True, True, True, False]])
    assert commit_top_k(conf, cand, torch.tensor([2])).tolist() == [[True, False, True, False, False]]
    assert commit_top_k(conf, cand, torch.tensor([0])).sum() == 0


def test_threshold_commits_above_tau_and_at_least_one():
    conf = torch.tensor([[0.9, 0.5, 0.86, 0.99], [0.2, 0.3, 0.1, 0.4]])
    cand = torch.tensor([[True, True, True, False], [True, True, True, False]])
    got = commit_threshold(conf, cand, 0.85)
    assert got.tolist() == [[True, False, True, False], [False, True, False, False]]


def test_threshold_with_a_step_budget_commits_at_least_the_fixed_count():
    """SDAR's low_confidence_dynamic: 8 positions over 3 steps need 3, 3, 2 per step; above
    tau counts only when it reaches that number, else the number's most confident."""
    policy = Threshold(0.85, steps_per_block=3)
    candidates = torch.ones(2, 8, dtype=torch.bool)
    policy.start_block(candidates)
    confidence = torch.tensor(
        [
            [0.9, 0.95, 0.99, 0.86, 0.1, 0.2, 0.3, 0.4],  # 4 above tau >= 3: all 4
            [0.9, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7],
        ]
    )  # 1 above tau < 3: top 3
    first = policy.commit(confidence, candidates)
    assert first.sum(-1).tolist() == [4, 3]
    assert first[1].nonzero().flatten().tolist() == [0, 6, 7]
    candidates &= ~first
    second = policy.commit(torch.full((2, 8), 0.99), candidates)  # all above: every candidate
    assert torch.equal(second, candidates) and not policy.done()
    policy.commit(confidence, candidates & ~second)
    assert policy.done() and policy.describe() == "tau=0.85 steps=3"


def test_greedy_choice_and_confidence():
    z = torch.tensor([[[0.0, 2.0, 1.0]]])
    tok, conf = choose_tokens(z)
    assert tok.item() == 1 and conf.item() == torch.softmax(z, -1)[0, 0, 1].item()


def test_gumbel_sampling_is_seeded_and_follows_softmax():
    z = torch.log(torch.tensor([0.6, 0.3, 0.1])).expand(4000, 3)
    a, _ = choose_tokens(z, 1.0, torch.Generator().manual_seed(0))
    b, _ = choose_tokens(z, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    freq = torch.bincount(a, minlength=3).float() / a.numel()
    assert torch.allclose(freq, torch.tensor([0.6, 0.3, 0.1]), atol=0.03)
    # temperature sharpens: at T=0.25 the top token dominates
    c, _ = choose_tokens(z, 0.25, torch.Generator().manual_seed(0))
    assert (c == 0).float().mean() > 0.9


def test_margin_and_entropy_confidences():
    probs = torch.tensor([[0.5, 0.3, 0.2, 0.0], [1.0, 0.0, 0.0, 0.0]])
    tokens = torch.tensor([0, 0])
    assert torch.allclose(position_confidence(probs, tokens, "margin"), torch.tensor([0.2, 1.0]))
    entropy = -(
        0.5 * torch.log(torch.tensor(0.5))
        + 0.3 * torch.log(torch.tensor(0.3))
        + 0.2 * torch.log(torch.tensor(0.2))
    )
    assert torch.allclose(
        position_confidence(probs, tokens, "entropy"), torch.stack([-entropy, torch.tensor(0.0)])
    )
    assert torch.equal(position_confidence(probs, tokens, "prob"), torch.tensor([0.5, 1.0]))


def test_token_confidence_of_another_pass_leaves_the_mask_out():
    """The residual-free pass scores tokens another pass chose: p renormalised without [M]
    (id 2 here: 0.4 / 0.1 / 0.5 becomes 0.8 / 0.2), read at the given token, not its own argmax."""
    logits = torch.log(torch.tensor([[0.4, 0.1, 0.5], [0.4, 0.1, 0.5]]))
    tokens = torch.tensor([1, 0])
    assert torch.allclose(token_confidence(logits, tokens, "prob", banned=2), torch.tensor([0.2, 0.8]))
    assert torch.allclose(token_confidence(logits, tokens, "margin", banned=2), torch.tensor([0.6, 0.6]))
    assert torch.allclose(token_confidence(logits, tokens, "prob"), torch.tensor([0.1, 0.4]))


def test_commit_temperature_draws_like_dreams_alg_temp():
    """Two commits of five: each position's chance of being among them equals that of
    torch.multinomial(softmax(c / T), 2) without replacement (Dream's alg_temp)."""
    rows, temperature = 6000, 0.5
    confidence = torch.tensor([0.9, 0.6, 0.5, 0.2, 0.1]).expand(rows, -1)
    candidates = torch.ones(rows, 5, dtype=torch.bool)
    policy = FixedSchedule(1, commit_temperature=temperature, generator=torch.Generator().manual_seed(0))
    policy.start_block(torch.ones(rows, 2, dtype=torch.bool))  # 2 masks in one step: commit 2
    ours = policy.commit(confidence, candidates).float().mean(0)
    drawn = torch.multinomial(
        torch.softmax(confidence / temperature, -1), 2, generator=torch.Generator().manual_seed(1)
    )
    dreams = torch.zeros(rows, 5).scatter_(1, drawn, 1.0).mean(0)
    assert torch.allclose(ours, dreams, atol=0.03)
    assert ours[0] < 0.9 and ours[4] > 0.05  # drawn, not the top 2


def test_dreams_options_are_validated_where_the_config_is_built():
    with pytest.raises(ValueError, match="confidence must be one of"):
        rcd.DecodeConfig(confidence="logit")
    with pytest.raises(ValueError, match="no \\[0, 1\\] scale"):
        rcd.DecodeConfig(threshold=0.9, confidence="entropy")
    with pytest.raises(ValueError, match="commit_temperature draws a fixed schedule"):
        rcd.DecodeConfig(threshold=0.9, commit_temperature=0.5)
    with pytest.raises(ValueError, match="commit_temperature must be >= 0"):
        rcd.DecodeConfig(commit_temperature=-1)
    setting = rcd.DecodeConfig(
        gen_length=8, block_length=8, steps=4, confidence="margin", commit_temperature=0.5
    )
    assert setting.describe() == "steps=4 commit-T=0.5 margin"
    assert rcd.DecodeConfig(threshold=0.8, confidence="margin").describe() == "tau=0.8 margin"
    assert rcd.DecodeConfig(threshold=0.8, confidence_pass="plain").describe() == "tau=0.8 plain-pass"
    with pytest.raises(ValueError, match="confidence_pass must be one of"):
        rcd.DecodeConfig(threshold=0.8, confidence_pass="reference")
