"""The TraDo preset (Gen-Verse dLLM-RL): SDAR's remote code under TraDo's name, on a tiny
random SDAR stand-in with TraDo's real vocabulary size (151936) and mask id (151669), saved
under a TraDo name. Detected from the name, decoded with blocks of 4 token for token like
its own `block_diffusion_generate` (SDAR's loop, tests/sdar_reference.py), RCD decoding
with the exact cache, and a stage-2 training step."""

from types import SimpleNamespace

import pytest
import torch

import rcd
from conftest import one_stage2_step, slow_except
from rcd.models.presets import PRESETS, detect_preset
from sdar_reference import sdar_generate
from standins.checkpoints import save_checkpoint

VOCAB, MASK = 151936, 151669  # Qwen3's embedding rows and SDAR's <|MASK|>, as TraDo's config
B = 4


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("trado") / "TraDo-4B-Instruct"
    return save_checkpoint("sdar", path, seed=5, vocab_size=VOCAB, mask_token_id=MASK, block_size=None)


@pytest.fixture(scope="module")
def trado(checkpoint):
    return rcd.load(checkpoint, trust_remote_code=True, dtype="float64")


def test_a_checkpoint_named_trado_loads_as_trado_with_blocks_of_4(trado):
    model, _ = trado
    config = model.config
    assert (config.rcd_preset, config.attention, config.block_length, config.rcd_block_grid) == (
        "trado",
        "block-causal",
        B,
        "absolute",
    )
    assert (config.mask_token_id, config.vocab_size, config.rcd_stop_token_ids) == (
        MASK,
        VOCAB,
        [151645, 151643],
    )


def test_detection_keeps_sdar_for_sdar_names_and_a_configs_own_block_size():
    sdar = SimpleNamespace(model_type="sdar", block_size=None)
    assert detect_preset(sdar, "Gen-Verse/TraDo-8B-Thinking").name == "trado"
    assert detect_preset(sdar, "Gen-Verse/TraDo-8B-Thinking").block_length == 4
    assert detect_preset(sdar, "JetLM/SDAR-4B-Chat-b32").name == "sdar"
    assert detect_preset(sdar, "JetLM/SDAR-4B-Chat-b32").block_length == 32
    assert detect_preset(SimpleNamespace(model_type="sdar", block_size=16), "my/trado-b16").block_length == 16
    assert PRESETS["trado"].forward == PRESETS["sdar"].forward == "sdar"


# (prompt length, steps per block, threshold). The random 152k-row head spreads probability
# thin (the top token has ~1e-3 to 1e-2), so the thresholds sit there: some steps commit
# more than the step's count, others fall back to the count's most confident. TraDo's own
# setting is 4 steps per block of 4 at threshold 0.9 (dLLM-RL's trado_eval.yaml).
# The fast tier keeps the first two (a count alone, and a threshold).
SETTINGS = [(5, 4, None), (5, 4, 0.002), (6, 2, None), (6, 4, 0.003), (9, 2, 0.002), (8, 2, 0.0025)]


@pytest.mark.parametrize("length, per_block, threshold", slow_except(SETTINGS, fast=set(SETTINGS[:2])))
@pytest.mark.parametrize("cache", ["exact", "none"])
def test_greedy_decoding_matches_trados_own_generate(trado, length, per_block, threshold, cache):
    model, tok = trado
    ids = tok("7*8=56;12+34=46;9-5=4")["input_ids"][:length]
    expected = sdar_generate(model, ids, gen_length=8, block=B, steps=per_block, threshold=threshold)
    out = rcd.generate(
        model,
        torch.tensor([ids]),
        gen_length=8,
        block_length=B,
        threshold=threshold,
        steps=per_block * 8 // B,
        cache=cache,
    )
    assert out.generated[0].tolist() == expected


def test_the_thresholds_above_commit_more_than_the_steps_count(trado):
    """The settings exercise the threshold: at 0.003 with 4 steps per block, fewer passes
    than the fixed schedule's 4 per block."""
    model, tok = trado
    ids = torch.tensor([tok("7*8=56;12+34=46;9-5=4")["input_ids"][:9]])
    fixed = rcd.generate(model, ids, gen_length=16, block_length=B, steps=16)
    dynamic = rcd.generate(model, ids, gen_length=16, block_length=B, steps=16, threshold=0.003)
    assert dynamic.nfe < fixed.nfe


def test_rcd_decodes_the_same_with_and_without_the_cache(trado):
    model, tok = trado
    ids, mask = rcd.encode_prompts(tok, ["12+34=", "7*8="])
    kw = {
        "attention_mask": mask,
        "gen_length": 8,
        "block_length": B,
        "threshold": 0.003,
        "residual": rcd.ResidualConfig(),
    }
    cached, fresh = (rcd.generate(model, ids, cache=c, **kw) for c in ("exact", "none"))
    assert torch.equal(cached.sequences, fresh.sequences) and cached.nfe == fresh.nfe
    assert not (cached.generated == MASK).any()


def test_a_stage2_training_step_runs_on_it(checkpoint, tmp_path):
    summary = one_stage2_step(checkpoint, tmp_path)
    assert summary["steps"] == 1 and summary["final_loss"] > 0
