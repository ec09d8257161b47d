"""`--schedule time` decodes a Dream checkpoint token for token like Dream's own
`diffusion_generate` (tests/dream_reference.py), on the Dream stand-in."""

import pytest
import torch

import rcd
from dream_reference import dream_generate
from rcd.decode.policy import TimeSchedule
from standins.checkpoints import save_checkpoint


@pytest.fixture(scope="module")
def dream(tmp_path_factory):
    path = save_checkpoint("dream", tmp_path_factory.mktemp("dream") / "dream", seed=5)
    return rcd.load(path, trust_remote_code=True, dtype="float32")[0]


@pytest.mark.parametrize("gen_length, steps", [(8, 8), (12, 5), (16, 4), (10, 3)])
def test_time_schedule_matches_dreams_own_procedure(dream, gen_length, steps):
    prompts = torch.tensor([[5, 9, 12, 7, 13], [44, 21, 8, 17, 30]])
    expected = dream_generate(dream, prompts, gen_length=gen_length, steps=steps)
    out = rcd.generate(
        dream, prompts, gen_length=gen_length, block_length=gen_length, steps=steps, schedule="time"
    )
    assert out.generated.tolist() == expected.tolist()
    assert out.nfe == steps


CONFIDENCE_OF = {"topk_margin": "margin", "entropy": "entropy"}


@pytest.mark.parametrize("alg", ["topk_margin", "entropy"])
@pytest.mark.parametrize("gen_length, steps", [(8, 8), (12, 5), (16, 4)])
def test_dreams_other_confidences_match_its_own_procedure(dream, alg, gen_length, steps):
    prompts = torch.tensor([[5, 9, 12, 7, 13], [44, 21, 8, 17, 30]])
    expected = dream_generate(dream, prompts, gen_length=gen_length, steps=steps, alg=alg)
    out = rcd.generate(
        dream,
        prompts,
        gen_length=gen_length,
        block_length=gen_length,
        steps=steps,
        schedule="time",
        confidence=CONFIDENCE_OF[alg],
    )
    assert out.generated.tolist() == expected.tolist()


def test_the_confidences_rank_positions_differently(dream):
    """On this stand-in the three rules commit in different orders (so each match above tests its rule)."""
    prompts = torch.tensor([[5, 9, 12, 7, 13], [44, 21, 8, 17, 30]])
    runs = {
        kind: rcd.generate(
            dream,
            prompts,
            gen_length=12,
            block_length=12,
            steps=5,
            schedule="time",
            confidence=kind,
            return_trace=True,
        )
        for kind in ("prob", "margin", "entropy")
    }
    first = {kind: out.trace[0].committed.tolist() for kind, out in runs.items()}
    assert (
        first["prob"] != first["margin"]
        and first["prob"] != first["entropy"]
        and first["margin"] != first["entropy"]
    )


def test_time_schedule_counts():
    """int(m (1 - s/t)) of the m masks left, the last step the rest: 12 masks over 5 steps."""
    policy = TimeSchedule(5)
    policy.start_block(torch.ones(1, 12, dtype=torch.bool))
    masked = torch.ones(1, 12, dtype=torch.bool)
    counts = []
    while masked.any() and not policy.done():
        commit = policy.commit(torch.rand(1, 12), masked)
        counts.append(int(commit.sum()))
        masked &= ~commit
    assert counts == [2, 2, 2, 2, 4] and not masked.any()  # 12 x 0.1998, 10 x 0.2497, 8 x 0.3328, 6 x 0.4987


def test_time_schedule_is_a_fixed_schedule_option():
    with pytest.raises(ValueError, match="threshold rule has no schedule"):
        rcd.DecodeConfig(threshold=0.9, schedule="time")
    with pytest.raises(ValueError, match="schedule must be one of"):
        rcd.DecodeConfig(schedule="cosine")
    assert (
        rcd.DecodeConfig(gen_length=8, block_length=8, steps=4, schedule="time").describe() == "steps=4 time"
    )
