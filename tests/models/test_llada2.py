"""The LLaDA2.0 preset (MoE, block diffusion) on its stand-in: loaded right under transformers
5, decoding token for token like LLaDA2.0's own generate (tests/llada2_reference.py), RCD
decoding with the exact cache, and a stage-2 training step."""

import contextlib
import sys

import pytest
import torch
from transformers import DynamicCache

import rcd
from conftest import one_stage2_step
from llada2_reference import llada2_generate
from rcd.models import legacy_remote, loading
from rcd.models.compat import TRANSFORMERS_MAJOR
from rcd.models.presets import PRESETS
from standins.checkpoints import eager_copy, save_checkpoint

B = 4  # the stand-in is decoded with blocks of 4 (the real models: 32, the preset's default)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_checkpoint("llada2", tmp_path_factory.mktemp("llada2") / "llada2", seed=4)


@pytest.fixture(scope="module")
def llada2(checkpoint):
    model, tok = rcd.load(checkpoint, trust_remote_code=True, dtype="float64", block_length=B)
    return model, tok


def block_causal(n: int, dtype) -> torch.Tensor:
    blocks = torch.arange(n) // B
    return torch.zeros(n, n, dtype=dtype).masked_fill(blocks[None, :] > blocks[:, None], float("-inf"))[
        None, None
    ]


def test_preset_facts(llada2):
    model, _ = llada2
    preset = PRESETS["llada2"]
    assert (preset.block_length, preset.mask_token_id, preset.stop_token_ids) == (32, 156895, (156892,))
    assert (model.config.rcd_preset, model.config.attention, model.config.rcd_block_grid) == (
        "llada2",
        "block-causal",
        "absolute",
    )


def test_loaded_model_equals_the_eager_build_routing_bias_included(checkpoint):
    model, _ = rcd.load(checkpoint, trust_remote_code=True, dtype="float32", block_length=B)
    eager = eager_copy("llada2", checkpoint)
    bias = dict(eager.named_buffers())["model.layers.1.mlp.gate.expert_bias"]
    assert bias.abs().sum() > 0  # a trained, saved buffer: loading must keep it
    ids, positions = torch.tensor([[5, 9, 12, 7, 13, 44, 21, 8, 17, 30]]), torch.arange(10)[None]
    with torch.no_grad():
        ours = model(
            input_ids=ids,
            attention_mask=block_causal(10, torch.float32),
            position_ids=positions,
            use_cache=False,
        ).logits
        theirs = eager(
            input_ids=ids,
            attention_mask=block_causal(10, torch.float32),
            position_ids=positions,
            use_cache=False,
        ).logits
    assert torch.allclose(ours, theirs, atol=1e-6)


SETTINGS = [(5, 4, 0.5), (6, 2, 0.3), (9, 2, 0.6), (8, 1, 0.9), (7, 4, 0.95)]


@pytest.mark.parametrize("length, per_block, threshold", SETTINGS)
@pytest.mark.parametrize("cache", ["exact", "none"])
def test_decoding_matches_llada2s_own_generate(llada2, length, per_block, threshold, cache):
    model, tok = llada2
    ids = tok("7*8=56;12+34=46;9-5=4")["input_ids"][:length]
    expected = llada2_generate(model, ids, gen_length=8, block=B, steps=per_block, threshold=threshold)
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


def test_rcd_decoding_is_the_same_with_and_without_the_cache(llada2):
    model, tok = llada2
    ids, mask = rcd.encode_prompts(tok, ["12+34=", "7*8="])
    kw = {
        "attention_mask": mask,
        "gen_length": 8,
        "block_length": B,
        "threshold": 0.4,
        "residual": rcd.ResidualConfig(),
    }
    cached, fresh = (rcd.generate(model, ids, cache=c, **kw) for c in ("exact", "none"))
    assert torch.equal(cached.sequences, fresh.sequences) and cached.nfe == fresh.nfe
    assert not (cached.generated == tok.mask_token_id).any()


def test_a_stage2_training_step_runs_on_it(checkpoint, tmp_path):
    summary = one_stage2_step(checkpoint, tmp_path, block_length=B)
    assert summary["steps"] == 1 and summary["final_loss"] > 0


@pytest.mark.skipif(TRANSFORMERS_MAJOR < 5, reason="transformers 4 still has what these shims put back")
def test_each_transformers4_piece_is_needed(checkpoint, monkeypatch):
    """Without rcd's names the file does not import (is_torch_fx_available, gone in 5.x); with a
    plain 5.x cache its forward fails on `get_usable_length`."""
    with monkeypatch.context() as patched:
        patched.setattr(loading, "transformers4_names", contextlib.nullcontext)
        for name in [n for n in sys.modules if n.startswith("transformers_modules")]:
            patched.delitem(sys.modules, name)  # import the remote file afresh
        with pytest.raises(ImportError, match="is_torch_fx_available"):
            rcd.load(checkpoint, trust_remote_code=True, dtype="float32", block_length=B)
    model, _ = rcd.load(checkpoint, trust_remote_code=True, dtype="float32", block_length=B)
    monkeypatch.setattr(legacy_remote, "LayerIndexedCache", DynamicCache)
    with pytest.raises(AttributeError, match="get_usable_length"):
        rcd.generate(model, torch.tensor([[5, 9, 12]]), gen_length=4, block_length=B, cache="exact")
