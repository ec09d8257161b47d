"""Losses against hand computations, and the block-diffusion 2L layout against a per-block loop."""

import torch
import torch.nn.functional as F

from conftest import make_model
from naive import _logits as naive_logits
from rcd.models.adapter import DiffusionModel
from rcd.train.noise import NoisyBatch, add_noise, with_extra_masks
from rcd.train.objectives import diffusion_loss, noisy_logits

MASK = 47


def fixed_batch(gen_start=3, length=11, block_length=None):
    g = torch.Generator().manual_seed(0)
    clean = torch.randint(4, MASK, (2, length), generator=g)
    masked = torch.zeros(2, length, dtype=torch.bool)
    masked[0, [3, 5, 6]] = True
    masked[1, [4, 7, 8, 10]] = True
    t = torch.tensor([[0.5], [0.25]]).expand(2, length).clone()
    if block_length:  # one level per block: blocks [3,7) and [7,11)
        t[:, 7:] = torch.tensor([[0.75], [0.9]])
    weight = torch.where(masked, 1 / t, 0.0)
    return NoisyBatch(
        clean=clean,
        noisy=clean.masked_fill(masked, MASK),
        masked=masked,
        weight=weight,
        key_valid=torch.ones_like(masked),
        gen_start=gen_start,
        mask_token_id=MASK,
        noise_key=(0, 0, [0, 1]),
    ), t


def hand_loss(logits, batch, t):
    total = 0.0
    for b in range(2):
        s = 0.0
        for i in batch.masked[b].nonzero()[:, 0].tolist():
            s += -F.log_softmax(logits[b, i], -1)[batch.clean[b, i]] / t[b, i]
        total += s / (batch.clean.shape[1] - batch.gen_start)
    return total / 2


def test_masked_objective_matches_hand_computation():
    model = make_model()
    dm = DiffusionModel.wrap(model)
    batch, t = fixed_batch()
    with torch.no_grad():
        logits = noisy_logits(dm, dm.embed(batch.noisy), batch, None)
        assert torch.allclose(logits, model(batch.noisy).logits)  # full bidirectional attention
        assert torch.allclose(diffusion_loss(logits, batch), hand_loss(logits, batch, t))


def test_block_diffusion_2l_layout_equals_per_block_loop():
    model = make_model("block-causal", block_length=4)
    dm = DiffusionModel.wrap(model)
    batch, t = fixed_batch(block_length=4)
    E = model.get_input_embeddings().weight
    with torch.no_grad():
        two_l = noisy_logits(dm, dm.embed(batch.noisy), batch, 4)
        # per block k: clean prefix + noisy block k, block-causal mask (what a KV-cached decode sees)
        looped = torch.zeros_like(two_l)
        for b in range(2):
            for start in (3, 7):
                seq = torch.cat([batch.clean[b, :start], batch.noisy[b, start : start + 4]])
                z = naive_logits(model, E[seq], 3, 4, block_causal=True)
                looped[b, start : start + 4] = z[start : start + 4]
        resp = slice(3, None)
        assert torch.allclose(two_l[:, resp], looped[:, resp], atol=1e-10)
        assert torch.allclose(diffusion_loss(two_l, batch), hand_loss(looped, batch, t))


def test_block_diffusion_is_padding_invariant():
    model = make_model("block-causal", block_length=4)
    dm = DiffusionModel.wrap(model)
    batch, _ = fixed_batch()
    pad = 2
    padded = NoisyBatch(
        clean=F.pad(batch.clean, (pad, 0)),
        noisy=F.pad(batch.noisy, (pad, 0)),
        masked=F.pad(batch.masked, (pad, 0)),
        weight=F.pad(batch.weight, (pad, 0)),
        key_valid=F.pad(batch.key_valid, (pad, 0)),
        gen_start=batch.gen_start + pad,
        mask_token_id=MASK,
        noise_key=batch.noise_key,
    )
    with torch.no_grad():
        a = diffusion_loss(noisy_logits(dm, dm.embed(batch.noisy), batch, 4), batch)
        b = diffusion_loss(noisy_logits(dm, dm.embed(padded.noisy), padded, 4), padded)
    assert torch.allclose(a, b)


def test_noise_levels_and_masks():
    batch = {
        "input_ids": torch.randint(4, MASK, (64, 40)),
        "attention_mask": torch.ones(64, 40, dtype=torch.bool),
        "prompt_length": torch.tensor(8),
        "index": torch.arange(64),
    }
    noisy = add_noise(batch, mask_token_id=MASK, seed=0, epoch=0)
    assert not noisy.masked[:, :8].any()  # the prompt is never masked
    t = 1 / noisy.weight[noisy.masked]
    assert (t > 1e-3).all() and (t <= 1).all()
    assert abs(noisy.masked[:, 8:].float().mean().item() - 0.5) < 0.1  # E[t] = 1/2
    again = add_noise(batch, mask_token_id=MASK, seed=0, epoch=0)
    assert torch.equal(again.masked, noisy.masked)
    other = add_noise(batch, mask_token_id=MASK, seed=0, epoch=1)
    assert not torch.equal(other.masked, noisy.masked)
    # per-example streams: an example's noise does not depend on its batch
    half = add_noise(
        {k: (v[:32] if v.dim() else v) for k, v in batch.items()}, mask_token_id=MASK, seed=0, epoch=0
    )
    assert torch.equal(half.masked, noisy.masked[:32])
    blocks = add_noise(batch, mask_token_id=MASK, seed=0, epoch=0, block_length=8)
    levels = (1 / blocks.weight).where(blocks.masked, torch.nan)[0, 8:].reshape(4, 8)
    for row in levels:  # one level per block
        seen = row[~row.isnan()]
        assert len(seen) == 0 or torch.allclose(seen, seen[0].expand_as(seen))
    more = with_extra_masks(noisy, 0.3)
    assert (more.masked >= noisy.masked).all() and more.masked.sum() > noisy.masked.sum()
    assert not more.masked[:, :8].any() and torch.equal(more.noisy == MASK, more.masked)
