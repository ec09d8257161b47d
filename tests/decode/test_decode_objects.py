"""The decode room's public objects: a validated DecodeConfig, pluggable commit policies,
init rules as strategies."""

import pytest
import torch

import rcd
from conftest import MASK, random_prompts
from rcd.decode import INIT_STRATEGIES, CommitPolicy, FixedSchedule, Threshold
from rcd.decode.policy import commit_threshold
from rcd.residual import INIT_RULES


def test_config_builds_its_policy():
    fixed = rcd.DecodeConfig(gen_length=32, block_length=8, steps=16)
    policy = fixed.policy()
    assert isinstance(policy, FixedSchedule) and policy.steps_per_block == 4
    assert (policy.describe(), policy.name, fixed.tokens_per_step) == ("steps=16", "fixed", 2.0)
    dynamic = rcd.DecodeConfig(gen_length=32, block_length=8, threshold=0.9).policy()
    assert isinstance(dynamic, Threshold) and (dynamic.describe(), dynamic.name) == ("tau=0.9", "threshold")


def test_bad_decode_option_fails_before_the_model_loads(tmp_path, capsys):
    from rcd.cli import main

    missing = str(tmp_path / "no-such-model")
    code = main(["eval", "--model", missing, "--out", str(tmp_path / "out"), "--threshold", "2"])
    assert code == 2  # a usage error, one line, before any model loads
    assert "threshold must lie in [0, 1]" in capsys.readouterr().err


class LeftToRight(CommitPolicy):
    """A test-only rule: the leftmost masked position of the block, one per step."""

    name = "left-to-right"

    def commit(self, confidence, candidates):
        first = candidates.long().argmax(-1, keepdim=True)
        return candidates & torch.zeros_like(candidates).scatter_(-1, first, True)

    def describe(self):
        return "left-to-right"


def test_a_new_commit_rule_is_one_small_class(bidirectional):
    out = rcd.generate(
        bidirectional,
        random_prompts(2, 4),
        gen_length=8,
        block_length=4,
        policy=LeftToRight(),
        return_trace=True,
    )
    assert out.nfe == 8 and (out.generated != MASK).all()
    order = [int(step.committed[0].long().argmax()) + step.block_start for step in out.trace]
    assert order == sorted(order) and len(set(order)) == 8


def test_every_init_rule_has_its_strategy():
    assert set(INIT_STRATEGIES) == set(INIT_RULES)


@pytest.mark.parametrize("kind, threshold", [("margin", 0.05), ("entropy", None)])
def test_every_model_can_rank_by_dreams_confidences(models, kind, threshold):
    """margin / entropy reach the commit rule on both attention kinds, with RCD on: each step
    commits what the rule says of the recorded confidences, which are margins (in [0, 1]) or
    negative entropies (<= 0), not the chosen token's probability."""
    for model in models.values():
        rule = {"threshold": threshold} if threshold is not None else {"steps": 4}
        out = rcd.generate(
            model,
            random_prompts(2, 4),
            gen_length=8,
            block_length=4,
            confidence=kind,
            residual=rcd.ResidualConfig(),
            return_trace=True,
            **rule,
        )
        plain = rcd.generate(
            model,
            random_prompts(2, 4),
            gen_length=8,
            block_length=4,
            residual=rcd.ResidualConfig(),
            return_trace=True,
            **rule,
        )
        assert (out.generated != MASK).all()
        for step, plain_step in zip(out.trace, plain.trace):
            seen = step.confidence[~step.confidence.isnan()]
            assert (seen <= 0).all() if kind == "entropy" else ((seen >= 0) & (seen <= 1)).all()
            if step.step == 0:  # same inputs at a block's first step: other values than the probability
                assert not torch.allclose(step.confidence.nan_to_num(), plain_step.confidence.nan_to_num())
            if threshold is not None:
                candidates = ~step.confidence.isnan()
                expected = commit_threshold(step.confidence.nan_to_num(-1.0), candidates, threshold)
                assert torch.equal(step.committed, expected)
