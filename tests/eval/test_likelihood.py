"""pass@k against hand-computed values; the Monte-Carlo likelihood bound against its exact value."""

import math

import pytest
import torch

import rcd
from conftest import make_model
from rcd.eval.likelihood import (
    LikelihoodConfig,
    exact_elbo,
    greedy_reproduces,
    mc_loglikelihood,
    stratified_mask_counts,
)
from rcd.eval.passk import pass_at_k, pass_at_k_table


def test_pass_at_k_hand_computed():
    # n=5, c=2: pass@2 = 1 - C(3,2)/C(5,2) = 1 - 3/10; pass@3 = 1 - C(3,3)/C(5,3) = 1 - 1/10; pass@4: 3 < 4 -> 1
    assert [pass_at_k(5, 2, k) for k in (1, 2, 3, 4, 5)] == pytest.approx([0.4, 0.7, 0.9, 1.0, 1.0])
    assert pass_at_k(16, 0, 8) == 0.0 and pass_at_k(16, 16, 1) == 1.0
    assert pass_at_k(100, 3, 10) == pytest.approx(1 - math.comb(97, 10) / math.comb(100, 10))
    rows = [{"index": 0, "correct": c} for c in (True, False, True, False, False)]
    rows += [{"index": 1, "correct": c} for c in (True, True, True, True, True, False)]
    table = pass_at_k_table(rows)
    assert list(table) == ["pass@1", "pass@2", "pass@3", "pass@4", "pass@5"]  # up to the fewest samples
    assert table["pass@1"] == pytest.approx((0.4 + 5 / 6) / 2)
    assert table["pass@2"] == pytest.approx((0.7 + 1.0) / 2)
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)


def test_mask_counts_cover_the_levels():
    counts = stratified_mask_counts(8, 8, torch.Generator().manual_seed(0))
    assert sorted(counts.tolist()) == list(range(1, 9))  # a batch as large as T: every level once
    many = torch.cat([stratified_mask_counts(5, 3, torch.Generator().manual_seed(s)) for s in range(500)])
    assert many.min() == 1 and many.max() == 5
    assert torch.bincount(many)[1:].float().div(len(many)).sub(0.2).abs().max() < 0.03  # uniform levels


@pytest.fixture(scope="module")
def model():
    return rcd.DiffusionModel.wrap(make_model(seed=4))


def test_one_token_continuation_is_exact(model):
    prefix, target = [5, 9, 13], [21]
    ids = torch.tensor([prefix + [model.mask_token_id]])
    with torch.no_grad():
        exact = model.model(input_ids=ids).logits[0, -1].log_softmax(-1)[21].item()
    estimate, _ = mc_loglikelihood(model, prefix, target, LikelihoodConfig(mc_num=4, mc_batch_size=2))
    assert estimate == pytest.approx(exact, abs=1e-9) and exact_elbo(model, prefix, target) == pytest.approx(
        exact
    )


def test_monte_carlo_estimate_converges_to_the_enumerated_bound(model):
    prefix, target = [5, 9, 13], [21, 7, 30, 11, 2]
    exact = exact_elbo(model, prefix, target)
    small, small_err = mc_loglikelihood(model, prefix, target, LikelihoodConfig(mc_num=8, mc_batch_size=8))
    large, large_err = mc_loglikelihood(
        model, prefix, target, LikelihoodConfig(mc_num=4096, mc_batch_size=512)
    )
    assert abs(large - exact) < 4 * large_err and large_err < small_err / 10
    assert abs(small - exact) < 6 * small_err
    with_cfg = exact_elbo(model, prefix, target, cfg=0.5)
    assert with_cfg != pytest.approx(exact)  # guidance changes the scores


def test_greedy_check_on_a_continuation_the_model_decodes(model):
    prefix = [5, 9, 13]
    out = rcd.generate(
        model.model, torch.tensor([prefix]), gen_length=3, block_length=3, steps=3
    )  # 1 per step
    target = out.generated[0].tolist()
    assert greedy_reproduces(model, prefix, target)
    assert not greedy_reproduces(
        model,
        prefix,
        [target[0], target[2], target[1]]
        if target[1] != target[2]
        else [(t + 1) % model.mask_token_id for t in target],
    )
