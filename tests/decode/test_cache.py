"""Approximate caches for bidirectional models (Fast-dLLM prefix / dual) and the cache API.

Where they are provably exact: a block's first step is a full pass, so with one step per
block nothing is approximated; with a single layer, keys/values depend on the input
embeddings only, so the prefix (fixed tokens) is exact, and so is the suffix for SeqD (it
stays plain masks) or when there is no suffix (one block). Elsewhere they drift; the
benchmark (`python -m benchmarks`) measures by how much.
"""

import pytest
import torch

import rcd
from conftest import make_model, random_prompts
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


def fed_lengths(model, prompts, watch=None, **kw):
    """Positions fed by each forward pass of `watch` (default: `model`) during one generate call."""
    fed = []
    hook = (watch or model).register_forward_pre_hook(
        lambda m, a, k: fed.append(k["inputs_embeds"].shape[1]), with_kwargs=True
    )
    try:
        rcd.generate(model, prompts, **kw)
    finally:
        hook.remove()
    return fed


@pytest.mark.parametrize("residual", ["seqd", "rcd-zero"])
def test_caches_feed_fewer_positions(bidirectional, block_causal, residual):
    """Equality with recomputation is also what a disabled cache gives: count the positions
    each pass feeds. Prompt 5, 4 blocks of 4, 4 steps per block (sequence length 21)."""
    prompts = random_prompts(1, 5, seed=3)
    kw = dict(gen_length=16, block_length=4, steps=16, residual=RESIDUALS[residual])
    assert fed_lengths(bidirectional, prompts, cache="none", **kw) == [21] * 16
    starts = [5, 9, 13, 17]
    # prefix: a full first pass per block, then the block and everything after it
    assert fed_lengths(bidirectional, prompts, cache="prefix", **kw) == [
        n for s in starts for n in [21] + [21 - s] * 3
    ]
    # dual: a full first pass per block, then the block alone
    assert fed_lengths(bidirectional, prompts, cache="dual", **kw) == [
        n for _ in starts for n in [21] + [4] * 3
    ]
    # block-causal: recomputation feeds everything up to the block's end; the KV cache feeds
    # the prompt once, then at most the block (and the finished one before it, once)
    assert fed_lengths(block_causal, prompts, cache="none", **kw) == [n for s in starts for n in [s + 4] * 4]
    cached = fed_lengths(block_causal, prompts, cache="exact", **kw)
    assert len(cached) == 16 and cached[0] == 9 and max(cached[1:]) <= 8 and sum(cached) <= 16 * 4 + 3 * 4 + 5


def test_reference_passes_use_the_kv_cache_too(block_causal):
    """The frozen reference's passes (warm start, train-aligned feedback) read the block-causal
    KV cache like the target's: the prompt once, then at most the block and the one before it."""
    reference = make_model("block-causal", seed=4)
    fed = fed_lengths(
        block_causal,
        random_prompts(1, 5, seed=3),
        watch=reference,
        gen_length=16,
        block_length=4,
        steps=16,
        cache="exact",
        reference=reference,
        residual=rcd.ResidualConfig(init="reference", feedback="reference"),
    )
    # per block: a warm start, then a feedback pass after each of its first 3 steps
    assert len(fed) == 16 and fed[0] == 9 and max(fed[1:]) <= 8
