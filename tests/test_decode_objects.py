"""The decode room's public objects: a validated DecodeConfig, pluggable commit policies,
init rules as strategies."""

import pytest
import torch

import rcd
from conftest import MASK, random_prompts
from rcd.decode import INIT_STRATEGIES, CommitPolicy, FixedSchedule, Threshold
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
    out = rcd.generate(bidirectional, random_prompts(2, 4), gen_length=8, block_length=4,
                       policy=LeftToRight(), return_trace=True)
    assert out.nfe == 8 and (out.generated != MASK).all()
    order = [int(step.committed[0].long().argmax()) + step.block_start for step in out.trace]
    assert order == sorted(order) and len(set(order)) == 8


def test_every_init_rule_has_its_strategy():
    assert set(INIT_STRATEGIES) == set(INIT_RULES)
