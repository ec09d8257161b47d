"""The training core against independent expectations: the 1/t weight, Eq. 2 from a reference
with other weights, gradients into the target's embedding table, the residual sources.

Expected values are spelled out by hand (softmax, entropy, p @ E), never built with the
functions under test, and the reference always has other weights than the target, so a
residual taken from the wrong model cannot match by accident.
"""

import math

import pytest
import torch

from conftest import MASK, VOCAB, make_model
from rcd.models.adapter import DiffusionModel
from rcd.residual import ResidualConfig
from rcd.train import ResidualTrainingConfig
from rcd.train.noise import add_noise
from rcd.train.objectives import noisy_logits
from rcd.train.reference_cache import ReferenceCache
from rcd.train.stages import StageModule, reference_signal

PROMPT, LENGTH = 4, 16
USED = range(4, 20)  # tokens of the batch: embedding rows outside USED (and [M]) appear nowhere


def sft_batch(n=4, length=LENGTH, prompt=PROMPT, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "input_ids": torch.randint(USED.start, USED.stop, (n, length), generator=g),
        "attention_mask": torch.ones(n, length, dtype=torch.long),
        "prompt_length": torch.tensor(prompt),
        "index": torch.arange(n),
    }


def eq2_by_hand(logits, E, positions_embeds, where):
    """Eq. 1-3 written out: p = softmax(z), alpha = H(p) / log V, e = (1 - alpha) E[M] + alpha p @ E."""
    p = torch.softmax(logits.double(), -1)
    alpha = -(p * p.log()).sum(-1) / math.log(p.shape[-1])
    expect = positions_embeds.clone()
    expect[where] = ((1 - alpha[:, None]) * E[MASK] + alpha[:, None] * (p @ E.double())).to(expect.dtype)
    return expect


class Recorder:
    """inputs_embeds and logits of every forward call of a model."""

    def __init__(self, model):
        self.inputs, self.logits = [], []
        self.handles = [
            model.register_forward_pre_hook(
                lambda m, a, kw: self.inputs.append(kw["inputs_embeds"].detach()), with_kwargs=True
            ),
            model.register_forward_hook(lambda m, a, out: self.logits.append(out.logits.detach())),
        ]

    def remove(self):
        for h in self.handles:
            h.remove()


@pytest.mark.parametrize("block_length", [None, 8])
def test_noise_weight_makes_the_loss_unbiased(block_length):
    """E[sum_i 1[masked_i] / t] = R: the 1/t weight undoes the masking rate (per block too)."""
    response = 96 if block_length is None else 8
    n = 512
    batch = sft_batch(n=n, length=PROMPT + 96, seed=1)
    noisy = add_noise(batch, mask_token_id=MASK, seed=0, epoch=0, block_length=block_length)
    weight = noisy.weight[:, PROMPT:].reshape(n, -1, response)  # (examples, units, positions)
    per_unit = weight.sum(-1) / response  # E = 1 for each example (or block)
    assert per_unit.mean().item() == pytest.approx(1.0, abs=0.1)
    # a constant weight would give E[t] = 1/2: the test separates the two by far
    assert (noisy.weight[noisy.masked] > 1).float().mean() > 0.9
    assert torch.all(noisy.weight[~noisy.masked] == 0)
    if block_length is not None:  # block diffusion: each block has its own level
        levels = weight.amax(-1)  # 1/t of each block (0 if nothing was masked)
        seen = levels > 0
        assert all(len(row[row_seen].unique()) > 1 for row, row_seen in zip(levels[:8], seen[:8]))


def test_block_causal_training_defaults_to_the_models_block_length():
    model = make_model("block-causal", block_length=4)
    dm = DiffusionModel.wrap(model)
    noisy = add_noise(sft_batch(), mask_token_id=MASK, seed=0, epoch=0, block_length=4)
    with torch.no_grad():
        assert torch.equal(
            noisy_logits(dm, dm.embed(noisy.noisy), noisy, None),
            noisy_logits(dm, dm.embed(noisy.noisy), noisy, 4),
        )


@pytest.fixture
def pair():
    """A target and a reference with other weights (same vocabulary), in training mode."""
    target, reference = make_model(seed=0), make_model(seed=7)
    target.train()
    return target, reference


def test_rcd_inputs_are_eq2_of_the_reference_over_the_target_table(pair):
    target, reference = pair
    noisy = add_noise(sft_batch(), mask_token_id=MASK, seed=0, epoch=0)
    options = ResidualTrainingConfig()
    signal = reference_signal(
        DiffusionModel.wrap(reference), noisy, None, options
    )  # the reference is NOT frozen
    seen = Recorder(target)
    loss = StageModule(target, residual=options)(noisy, signal)
    seen.remove()
    loss.backward()
    E_target = target.get_input_embeddings().weight
    with torch.no_grad():
        z_ref = reference(noisy.noisy).logits[noisy.masked]
        expect = eq2_by_hand(z_ref, E_target, target.get_input_embeddings()(noisy.noisy), noisy.masked)
        z_target = target(noisy.noisy).logits[noisy.masked]
        wrong = eq2_by_hand(z_target, E_target, target.get_input_embeddings()(noisy.noisy), noisy.masked)
    assert len(seen.inputs) == 1
    assert torch.allclose(seen.inputs[0], expect, atol=1e-10)
    assert not torch.allclose(wrong, expect, atol=1e-3)  # the two sources are far apart here
    # the reference ran without autograd: no graph kept (memory), no gradient into it
    assert not signal.logits.requires_grad and all(p.grad is None for p in reference.parameters())


def test_delta_gradient_reaches_embedding_rows_absent_from_the_batch(pair):
    """Delta = p @ E_target is differentiable: rows of tokens that appear nowhere in the
    batch get gradient through it, and through nothing else (untied embeddings)."""
    target, reference = pair
    noisy = add_noise(sft_batch(), mask_token_id=MASK, seed=0, epoch=0)
    absent = torch.ones(VOCAB, dtype=torch.bool)
    absent[noisy.clean.unique()] = False
    absent[MASK] = False
    assert absent.sum() > 20
    module = StageModule(target, residual=ResidualTrainingConfig())
    E = target.get_input_embeddings().weight

    module(noisy).backward()  # plain objective: these rows are untouched
    assert torch.all(E.grad[absent] == 0)
    E.grad = None
    module(
        noisy, reference_signal(DiffusionModel.wrap(reference), noisy, None, ResidualTrainingConfig())
    ).backward()
    assert (E.grad[absent].abs().sum(-1) > 0).all()


@pytest.mark.parametrize("source", ["noisy", "more-masked", "self"])
def test_residual_sources(pair, source):
    """With more_masked_fraction 1 the more-masked copy masks the whole response; 'self'
    then feeds the target's own prediction of that copy into the real step (Eq. 2 by hand)."""
    target, reference = pair
    noisy = add_noise(sft_batch(), mask_token_id=MASK, seed=0, epoch=0)
    options = ResidualTrainingConfig(source=source, more_masked_fraction=1.0)
    all_masked = torch.zeros_like(noisy.masked)
    all_masked[:, PROMPT:] = True
    ref_seen, target_seen = Recorder(reference), Recorder(target)
    signal = reference_signal(DiffusionModel.wrap(reference), noisy, None, options)
    StageModule(target, residual=options)(noisy, signal)
    ref_seen.remove(), target_seen.remove()

    E_ref, E_target = reference.get_input_embeddings().weight, target.get_input_embeddings().weight
    ref_masks = (ref_seen.inputs[0] == E_ref[MASK]).all(-1)
    assert torch.equal(ref_masks, noisy.masked if source == "noisy" else all_masked)
    plain = target.get_input_embeddings()(noisy.noisy).detach()
    z_ref = ref_seen.logits[0]
    if source == "self":
        assert len(target_seen.inputs) == 2  # the previous step, then the trained step
        previous = target.get_input_embeddings()(noisy.clean.masked_fill(all_masked, MASK)).detach()
        assert torch.allclose(
            target_seen.inputs[0], eq2_by_hand(z_ref[all_masked], E_target, previous, all_masked)
        )
        z_own = target_seen.logits[0][noisy.masked]
        expect = eq2_by_hand(z_own, E_target, plain, noisy.masked)
    else:
        assert len(target_seen.inputs) == 1
        expect = eq2_by_hand(z_ref[noisy.masked], E_target, plain, noisy.masked)
    assert torch.allclose(target_seen.inputs[-1], expect, atol=1e-10)


def test_self_loop_unrolled_k_steps(pair):
    """unroll=3: the reference sees the input three steps back, the target predicts each
    later copy from the residual of the one before (Eq. 2 by hand at every step); the copies
    nest, each step back masks ~30% of what is still unmasked, and the trained step gets
    the target's prediction of the copy one step back."""
    target, reference = pair
    noisy = add_noise(sft_batch(n=64), mask_token_id=MASK, seed=0, epoch=0)
    options = ResidualTrainingConfig(source="self", more_masked_fraction=0.3, unroll=3)
    ref_seen, target_seen = Recorder(reference), Recorder(target)
    signal = reference_signal(DiffusionModel.wrap(reference), noisy, None, options)
    StageModule(target, residual=options)(noisy, signal)
    ref_seen.remove(), target_seen.remove()
    assert len(target_seen.inputs) == 4  # three unrolled steps, then the trained one

    E_ref, E_target = reference.get_input_embeddings().weight, target.get_input_embeddings().weight
    embed = target.get_input_embeddings()
    clean = embed(noisy.clean).detach()
    masks = [(ref_seen.inputs[0] == E_ref[MASK]).all(-1)]  # three steps back, then two, one
    masks += [(inputs != clean).any(-1) for inputs in target_seen.inputs[1:3]]
    masks.append(noisy.masked)
    response = torch.zeros_like(noisy.masked)
    response[:, PROMPT:] = True
    for earlier, later in zip(masks, masks[1:]):
        assert (
            torch.equal(earlier | later, earlier) and (earlier & ~later).any()
        )  # nested, each step unmasks some
        fresh = (earlier & ~later).sum() / (response & ~later).sum()
        assert abs(fresh.item() - 0.3) < 0.08
    logits = [ref_seen.logits[0]] + target_seen.logits[:3]
    for step in range(3):  # step k reads the residual of the logits before it at its own masks
        where = masks[step]
        plain = embed(noisy.clean.masked_fill(where, MASK)).detach()
        assert torch.allclose(
            target_seen.inputs[step], eq2_by_hand(logits[step][where], E_target, plain, where), atol=1e-10
        )
    plain = embed(noisy.noisy).detach()
    expect = eq2_by_hand(target_seen.logits[2][noisy.masked], E_target, plain, noisy.masked)
    assert torch.allclose(target_seen.inputs[3], expect, atol=1e-10)


def test_unroll_needs_the_self_source():
    with pytest.raises(ValueError, match="unroll"):
        ResidualTrainingConfig(source="noisy", unroll=2)
    with pytest.raises(ValueError, match="unroll"):
        ResidualTrainingConfig(source="self", unroll=0)


def trained_inputs(target, noisy, signal, options, training=True):
    """inputs_embeds of the trained step of StageModule (train or eval mode)."""
    module = StageModule(target, residual=options)
    module.train(training)
    seen = Recorder(target)
    with torch.no_grad():
        module(noisy, signal)
    seen.remove()
    return seen.inputs[-1]


@pytest.mark.parametrize("unit", ["sample", "position"])
def test_residual_dropout_feeds_plain_masks_where_it_drops(pair, unit):
    """Dropped positions get E[M] alone, kept ones Eq. 2; 'sample' drops whole examples;
    rate 1 drops all in training and none in eval mode (the held-out loss keeps it on)."""
    target, reference = pair
    noisy = add_noise(sft_batch(n=64), mask_token_id=MASK, seed=0, epoch=0)
    signal = reference_signal(DiffusionModel.wrap(reference), noisy, None, ResidualTrainingConfig())
    E = target.get_input_embeddings().weight
    plain = target.get_input_embeddings()(noisy.noisy).detach()
    with torch.no_grad():
        eq2 = eq2_by_hand(signal.logits, E, plain, noisy.masked)
    inputs = trained_inputs(target, noisy, signal, ResidualTrainingConfig(dropout=0.5, dropout_unit=unit))
    dropped = (inputs == E[MASK]).all(-1) & noisy.masked
    kept = noisy.masked & ~dropped
    assert torch.allclose(inputs[kept], eq2[kept], atol=1e-10) and torch.equal(
        inputs[~noisy.masked], plain[~noisy.masked]
    )
    if unit == "sample":  # an example keeps all its residuals or none; about half the examples
        rows = noisy.masked.any(-1)
        assert torch.equal(dropped.any(-1)[rows], (dropped == noisy.masked).all(-1)[rows])
        assert 0.2 < dropped.any(-1)[rows].float().mean() < 0.8
    else:
        assert 0.3 < dropped.sum() / noisy.masked.sum() < 0.7
    everything = ResidualTrainingConfig(dropout=1.0, dropout_unit=unit)
    assert (trained_inputs(target, noisy, signal, everything)[noisy.masked] == E[MASK]).all()
    assert torch.allclose(trained_inputs(target, noisy, signal, everything, training=False), eq2, atol=1e-10)


def test_top_k_training_residual_is_the_renormalised_top_k_with_full_alpha(pair):
    target, reference = pair
    noisy = add_noise(sft_batch(), mask_token_id=MASK, seed=0, epoch=0)
    options = ResidualTrainingConfig(residual=ResidualConfig(top_k=3))
    signal = reference_signal(DiffusionModel.wrap(reference), noisy, None, options)
    E = target.get_input_embeddings().weight.detach().double()
    p = torch.softmax(signal.logits.double(), -1)
    alpha = -(p * p.log()).sum(-1) / math.log(VOCAB)  # from the full distribution
    top, index = p.topk(3, dim=-1)
    delta = ((top / top.sum(-1, keepdim=True))[..., None] * E[index]).sum(-2)
    expect = target.get_input_embeddings()(noisy.noisy).detach().clone()
    expect[noisy.masked] = (1 - alpha[:, None]) * E[MASK] + alpha[:, None] * delta
    assert torch.allclose(trained_inputs(target, noisy, signal, options), expect, atol=1e-10)


def test_cached_reference_signal_gives_the_inputs_of_the_live_one(pair):
    """The cache keeps alpha and the top-k (fp16) per example; a batch with other masks misses."""
    target, reference = pair
    noisy = add_noise(sft_batch(), mask_token_id=MASK, seed=0, epoch=0)
    options = ResidualTrainingConfig(residual=ResidualConfig(top_k=VOCAB))
    live = reference_signal(DiffusionModel.wrap(reference), noisy, None, options)
    cache = ReferenceCache(VOCAB, options.residual)
    cache.store(noisy, live.logits)
    cached = cache.lookup(noisy, torch.device("cpu"))
    assert cached is not None and cached.logits is None
    assert torch.allclose(
        trained_inputs(target, noisy, cached, options),
        trained_inputs(target, noisy, live, options),
        atol=1e-3,
    )  # fp16 probabilities
    other = add_noise(sft_batch(), mask_token_id=MASK, seed=0, epoch=1)  # new masks: stale entries
    assert cache.lookup(other, torch.device("cpu")) is None and (cache.hits, cache.misses) == (1, 1)


def test_a_training_block_length_other_than_the_models_is_the_one_used():
    """StageModule(block_length=8) trains a block-4 model on the 8-token block-diffusion mask."""
    model = make_model("block-causal", block_length=4)
    noisy = add_noise(sft_batch(), mask_token_id=MASK, seed=0, epoch=0, block_length=8)
    with torch.no_grad():
        loss = {b: float(StageModule(model, attention="block-causal", block_length=b)(noisy)) for b in (4, 8)}
        dm = DiffusionModel.wrap(model)
        logits8 = noisy_logits(dm, dm.embed(noisy.noisy), noisy, 8)[noisy.masked]
        by_hand = torch.nn.functional.cross_entropy(
            logits8.double(), noisy.clean[noisy.masked], reduction="none"
        )
        rows = noisy.masked.nonzero()[:, 0]
        per_example = torch.zeros(len(noisy.clean), dtype=torch.double).index_add(
            0, rows, by_hand * noisy.weight[noisy.masked]
        )
    assert loss[8] == pytest.approx(float(per_example.mean() / (LENGTH - PROMPT)), rel=1e-6)
    assert loss[4] != pytest.approx(loss[8])
