"""Approximate caches for bidirectional models (Fast-dLLM prefix / dual) and the cache API.

Where they are provably exact: a block's first step is a full pass, so with one step per
block nothing is approximated; with a single layer, keys/values depend on the input
embeddings only, so the prefix (fixed tokens) is exact, and so is the suffix for SeqD (it
stays plain masks) or when there is no suffix (one block). Elsewhere they drift; the
benchmark (`python -m benchmarks`) measures by how much.
"""

import pytest
import torch
from conftest import make_model, random_prompts

import rcd
from rcd.models.conventions import get_convention

RESIDUALS = {
    "seqd": None,
    "rcd-zero": rcd.ResidualConfig(),
    "rcd-self": rcd.ResidualConfig(init="self", temperature=0.9),
}
POLICIES = {"fixed": dict(steps=16), "threshold": dict(threshold=0.3)}


@pytest.fixture(scope="module")
def one_layer():
    return make_model("bidirectional", seed=4, num_hidden_layers=1)


@pytest.fixture(scope="module")
def padded_prompts():
    prompts = random_prompts(3, 5, seed=3)
    mask = torch.ones_like(prompts)
    mask[1, :2] = 0
    return prompts, mask


def _generate(model, prompts, mask, cache, residual, block_length=4, **policy):
    return rcd.generate(
        model,
        prompts,
        attention_mask=mask,
        gen_length=16,
        block_length=block_length,
        residual=residual,
        cache=cache,
        **policy,
    )


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("residual", RESIDUALS)
def test_prefix_cache_is_exact_for_one_layer(one_layer, padded_prompts, policy, residual):
    kw = dict(residual=RESIDUALS[residual], **POLICIES[policy])
    exact = _generate(one_layer, *padded_prompts, "none", **kw)
    prefix = _generate(one_layer, *padded_prompts, "prefix", **kw)
    assert torch.equal(prefix.sequences, exact.sequences) and prefix.nfe == exact.nfe


@pytest.mark.parametrize("policy", POLICIES)
def test_dual_cache_is_exact_for_one_layer_seqd(one_layer, padded_prompts, policy):
    exact = _generate(one_layer, *padded_prompts, "none", None, **POLICIES[policy])
    dual = _generate(one_layer, *padded_prompts, "dual", None, **POLICIES[policy])
    assert torch.equal(dual.sequences, exact.sequences)


@pytest.mark.parametrize("residual", ["rcd-zero", "rcd-self"])
def test_dual_cache_with_residuals_is_exact_for_one_layer_single_block(one_layer, padded_prompts, residual):
    kw = dict(residual=RESIDUALS[residual], block_length=16, threshold=0.3)
    exact = _generate(one_layer, *padded_prompts, "none", **kw)
    dual = _generate(one_layer, *padded_prompts, "dual", **kw)
    assert torch.equal(dual.sequences, exact.sequences)


@pytest.mark.parametrize("cache", ["prefix", "dual"])
@pytest.mark.parametrize("residual", RESIDUALS)
def test_one_step_per_block_is_exact_at_any_depth(bidirectional, padded_prompts, cache, residual):
    kw = dict(residual=RESIDUALS[residual], steps=4)  # 4 blocks, each decoded in its first (full) pass
    exact = _generate(bidirectional, *padded_prompts, "none", **kw)
    cached = _generate(bidirectional, *padded_prompts, cache, **kw)
    assert torch.equal(cached.sequences, exact.sequences)


@pytest.mark.parametrize("cache", ["prefix", "dual"])
@pytest.mark.parametrize("residual", ["seqd", "rcd-self"])
def test_approximate_caches_are_batch_invariant(bidirectional, cache, residual):
    lengths = [3, 6]
    prompts = [random_prompts(1, n, seed=20 + n)[0] for n in lengths]
    batch = torch.zeros(2, 6, dtype=torch.long)
    mask = torch.zeros_like(batch)
    for i, p in enumerate(prompts):
        batch[i, 6 - len(p) :], mask[i, 6 - len(p) :] = p, 1
    kw = dict(gen_length=12, block_length=4, threshold=0.3, residual=RESIDUALS[residual], cache=cache)
    together = rcd.generate(bidirectional, batch, attention_mask=mask, **kw)
    for i, p in enumerate(prompts):
        assert (
            together.generated[i].tolist() == rcd.generate(bidirectional, p[None], **kw).generated[0].tolist()
        )


def test_cache_errors(bidirectional, block_causal):
    prompts = random_prompts(1, 3)
    kw = dict(gen_length=8, block_length=4)
    with pytest.raises(ValueError, match="cache must be one of"):
        rcd.generate(bidirectional, prompts, cache="kv", **kw)
    with pytest.raises(ValueError, match="contradicts"):
        rcd.generate(bidirectional, prompts, cache="dual", use_cache=False, **kw)
    with pytest.raises(ValueError, match="exact already"):
        rcd.generate(block_causal, prompts, cache="prefix", **kw)
    no_cache = rcd.DiffusionModel(
        bidirectional, bidirectional.config.mask_token_id, convention=get_convention("llada")
    )
    with pytest.raises(ValueError, match="llada forward lacks"):
        rcd.generate(no_cache, prompts, cache="dual", **kw)


def test_use_cache_false_is_cache_none(block_causal):
    kw = dict(gen_length=8, block_length=4, steps=4)
    a = rcd.generate(block_causal, random_prompts(2, 3), use_cache=False, **kw)
    b = rcd.generate(block_causal, random_prompts(2, 3), cache="none", **kw)
    assert torch.equal(a.sequences, b.sequences)
