"""The Fast-dLLM v2 preset on its stand-in (tests/standins/modeling_fast_dllm_v2.py), with the
real vocabulary size (152064) and mask id (151665): loaded right, its sampler (block
threshold decoding in sub-blocks, each block's first token autoregressive) matched token for
token by `--threshold` with `--sub-block-length` against a re-statement
(tests/fastdllm_v2_reference.py), RCD decoding with the exact cache, a stage-2 training step."""

import pytest
import torch

import rcd
from conftest import one_stage2_step, slow_except
from fastdllm_v2_reference import fast_dllm_v2_generate
from rcd.decode.policy import SubBlocks
from rcd.models.adapter import DiffusionModel
from rcd.models.presets import PRESETS
from standins.checkpoints import save_checkpoint

VOCAB, MASK = 152064, 151665  # Fast_dLLM_v2_7B's config and its |<MASK>| token
B, SUB = 8, 4  # the stand-in's blocks and sub-blocks (the real ones: 32 and 8)
PROMPT = "7*8=56;12+34=46;9-5=4;"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("fast") / "Fast_dLLM_v2_7B"
    return save_checkpoint("fast-dllm-v2", path, seed=6, vocab_size=VOCAB, mask_token_id=MASK, bd_size=B)


@pytest.fixture(scope="module")
def fast(checkpoint):
    return rcd.load(checkpoint, trust_remote_code=True, dtype="float64")


def test_preset_facts(fast):
    model, _ = fast
    preset = PRESETS["fast-dllm-v2"]
    assert (preset.mask_token_id, preset.stop_token_ids, preset.config_block_field) == (
        151665,
        (151645, 151643),
        "bd_size",
    )
    config = model.config
    assert (config.rcd_preset, config.attention, config.block_length, config.rcd_block_grid) == (
        "fast-dllm-v2",
        "block-causal",
        B,  # from bd_size
        "absolute",
    )
    assert (config.mask_token_id, config.vocab_size) == (MASK, VOCAB)


def test_its_own_forward_ignores_masks_and_refuses_embeddings(fast):
    """Why rcd runs its layers itself: the model builds its own block mask from input_ids."""
    model, tok = fast
    ids = torch.tensor([tok(PROMPT)["input_ids"][:10]])
    with torch.no_grad(), torch.compiler.set_stance("force_eager"):
        plain = model(input_ids=ids, block_size=B).logits
        nothing_visible = torch.zeros(1, 1, 10, 10, dtype=torch.bool)
        masked = model(input_ids=ids, attention_mask=nothing_visible, block_size=B)
        with pytest.raises(AttributeError):
            model(inputs_embeds=model.model.embed_tokens(ids), block_size=B)
    assert torch.equal(plain, masked.logits)


def test_training_mode_goes_through_the_layers_out_of_training(fast):
    """Its attention's training path expects the doubled [noisy, clean] layout; rcd's calls
    keep it out of that path and gradients still reach the embeddings."""
    model, tok = fast
    dm = DiffusionModel.wrap(model)
    ids = torch.tensor([tok(PROMPT)["input_ids"][:12]])
    model.train()
    try:
        logits, _ = dm.forward(dm.embed(ids), key_valid=torch.ones_like(ids, dtype=torch.bool))
        logits[0, 3, 5].backward()
        assert dm.embedding_weight.grad.abs().sum() > 0
        assert all(layer.self_attn.training for layer in model.model.layers)
    finally:
        model.eval()
        model.zero_grad()


# (prompt length, threshold, gen length): a partial first block (prompt tail + masks), a
# prompt on a block boundary past the first block (its first new token autoregressive from
# the prefill), prompts shorter than one block; thresholds where the random 152k-row head's
# top probabilities (~1e-3 to 1e-2) sometimes pass, sometimes not; 1 commits one per step.
# The 152k-row head makes each case ~2 s: the fast tier keeps the first two.
SETTINGS = [(5, 0.003, 16), (16, 0.003, 16), (11, 0.002, 24), (3, 0.005, 16), (13, 1.0, 16), (17, 0.0025, 16)]


@pytest.mark.parametrize("length, threshold, gen", slow_except(SETTINGS, fast=set(SETTINGS[:2])))
@pytest.mark.parametrize("cache", ["exact", "none"])
def test_greedy_decoding_matches_fast_dllm_v2s_own_generate(fast, length, threshold, gen, cache):
    model, tok = fast
    ids = tok(PROMPT)["input_ids"][:length]
    expected = fast_dllm_v2_generate(model, ids, gen_length=gen, block=B, sub_block=SUB, threshold=threshold)
    out = rcd.generate(
        model,
        torch.tensor([ids]),
        gen_length=gen,
        block_length=B,
        threshold=threshold,
        sub_block_length=SUB,
        cache=cache,
    )
    assert out.generated[0].tolist() == expected


@pytest.mark.parametrize("length", slow_except([5, 16], fast={5}))
def test_a_stop_token_ends_both_at_the_same_place(fast, length):
    """Fast-dLLM v2 ends a block as soon as a stop token has no mask before it and cuts the
    output there; rcd stops after the block: the same tokens up to the stop."""
    model, tok = fast
    ids = tok(PROMPT)["input_ids"][:length]
    kw = {"gen_length": 24, "block_length": B, "threshold": 0.003, "sub_block_length": SUB}
    free = rcd.generate(model, torch.tensor([ids]), **kw).generated[0].tolist()
    stop = free[B + 2]  # a token it writes in its second block
    expected = fast_dllm_v2_generate(
        model, ids, gen_length=24, block=B, sub_block=SUB, threshold=0.003, stop_id=stop
    )
    out = (
        rcd.generate(model, torch.tensor([ids]), eos_token_id=stop, stop_at_eos=True, **kw)
        .generated[0]
        .tolist()
    )
    assert stop in expected and out[: out.index(stop) + 1] == expected


def test_the_settings_exercise_the_threshold_and_the_sub_blocks(fast):
    """Passes per block: fewer at 0.003 than one token a step; sub-blocks cost passes of their own."""
    model, tok = fast
    ids = torch.tensor([tok(PROMPT)["input_ids"][:9]])
    kw = {"gen_length": 24, "block_length": B}
    one_per_step = rcd.generate(model, ids, threshold=1.0, sub_block_length=SUB, **kw)
    sub_blocks = rcd.generate(model, ids, threshold=0.003, sub_block_length=SUB, **kw)
    whole_block = rcd.generate(model, ids, threshold=0.003, **kw)
    assert sub_blocks.nfe < one_per_step.nfe and whole_block.nfe < sub_blocks.nfe


def test_sub_blocks_commit_left_to_right_and_the_first_position_alone():
    policy = SubBlocks(threshold=0.5, sub_block_length=2)
    confidence = torch.tensor([[0.9, 0.9, 0.9, 0.9], [0.1, 0.2, 0.9, 0.8], [0.1, 0.2, 0.3, 0.9]])
    candidates = torch.tensor([[True] * 4, [False, True, True, True], [False, False, True, True]])
    chosen = policy.commit(confidence, candidates)
    assert chosen.tolist() == [
        [True, False, False, False],  # a masked first position alone
        [False, True, False, False],  # the first sub-block's top-1, though later ones are surer
        [False, False, False, True],  # all above 0.5 in the current sub-block
    ]


def test_sub_block_options_are_validated():
    with pytest.raises(ValueError, match="divisor"):
        rcd.DecodeConfig(gen_length=32, block_length=32, threshold=0.9, sub_block_length=5)
    with pytest.raises(ValueError, match="threshold"):
        rcd.DecodeConfig(gen_length=32, block_length=32, sub_block_length=8)
    with pytest.raises(ValueError, match="steps"):
        rcd.DecodeConfig(gen_length=32, block_length=32, threshold=0.9, steps=8, sub_block_length=8)
    assert rcd.DecodeConfig(gen_length=32, block_length=32, threshold=0.9, sub_block_length=8).describe() == (
        "tau=0.9 sub-block=8"
    )


@pytest.mark.slow  # ~5 s (the 152k-row head); the fast tier tests the cache on tiny models (tests/decode/test_cache.py)
def test_rcd_decodes_the_same_with_and_without_the_cache(fast):
    model, tok = fast
    ids, mask = rcd.encode_prompts(tok, ["12+34=", "7*8=56;"])
    kw = {
        "attention_mask": mask,
        "gen_length": 16,
        "block_length": B,
        "threshold": 0.003,
        "sub_block_length": SUB,
        "residual": rcd.ResidualConfig(),
    }
    cached, fresh = (rcd.generate(model, ids, cache=c, **kw) for c in ("exact", "none"))
    assert torch.equal(cached.sequences, fresh.sequences) and cached.nfe == fresh.nfe
    assert not (cached.generated == MASK).any()


def test_a_stage2_training_step_runs_on_it(checkpoint, tmp_path):
    summary = one_stage2_step(checkpoint, tmp_path)
    assert summary["steps"] == 1 and summary["final_loss"] > 0
