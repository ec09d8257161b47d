"""The SDAR preset decodes on SDAR's block grid (blocks from each row's first token), token
for token like SDAR's own generation procedure (tests/sdar_reference.py), alone or in a batch."""

import pytest
import torch

import rcd
from rcd.decode.grid import layout
from rcd.models.adapter import DiffusionModel
from rcd.train.noise import NoisyBatch
from rcd.train.objectives import noisy_logits
from sdar_reference import sdar_generate
from standins.checkpoints import save_checkpoint

B = 4  # the stand-in's block size


@pytest.fixture(scope="module")
def sdar(tmp_path_factory):
    path = save_checkpoint("sdar", tmp_path_factory.mktemp("sdar") / "sdar", seed=3)
    model, tok = rcd.load(path, trust_remote_code=True, dtype="float64")
    assert model.config.rcd_block_grid == "absolute"
    return model, tok


def prompt(tok, n):
    return tok("7*8=56;12+34=46;9-5=4")["input_ids"][:n]


# (prompt length, steps per block, threshold): partial first blocks of 1-3 prompt tokens,
# one token per step or SDAR's dynamic threshold (at least one), two per step where the
# partial block's masks are even (SDAR's schedule counts on the full block); the threshold
# with 2 steps per block commits at least 2 a step (low_confidence_dynamic's fixed count),
# the partial first block's last step what is left
SETTINGS = [
    (5, 4, None),
    (7, 4, None),
    (6, 2, None),
    (8, 2, None),
    (3, 4, 0.6),
    (6, 4, 0.35),
    (9, 4, 0.8),
    (5, 2, 0.3),
    (6, 2, 0.6),
    (8, 2, 0.45),
    (7, 1, 0.9),
]


@pytest.mark.parametrize("length, per_block, threshold", SETTINGS)
@pytest.mark.parametrize("use_cache", [True, False], ids=["cache", "nocache"])
def test_decoding_matches_sdars_own_procedure(sdar, length, per_block, threshold, use_cache):
    model, tok = sdar
    ids = prompt(tok, length)
    gen = 8
    expected = sdar_generate(model, ids, gen_length=gen, block=B, steps=per_block, threshold=threshold)
    schedule = dict(threshold=threshold, steps=per_block * gen // B)
    out = rcd.generate(
        model, torch.tensor([ids]), gen_length=gen, block_length=B, use_cache=use_cache, **schedule
    )
    assert out.generated[0].tolist() == expected


@pytest.mark.parametrize("length, per_block", [(5, 2), (6, 4), (9, 2)])
def test_left_to_right_order_is_sdars_sequential_strategy(sdar, length, per_block):
    model, tok = sdar
    ids = prompt(tok, length)
    expected = sdar_generate(model, ids, gen_length=8, block=B, steps=per_block, sequential=True)
    out = rcd.generate(
        model, torch.tensor([ids]), gen_length=8, block_length=B, steps=per_block * 2, order="left-to-right"
    )
    assert out.generated[0].tolist() == expected


@pytest.mark.parametrize("residual", [None, rcd.ResidualConfig()], ids=["seqd", "rcd"])
def test_rows_decode_the_same_alone_or_in_a_batch(sdar, residual):
    model, tok = sdar
    prompts = [prompt(tok, n) for n in (3, 8, 6, 5)]  # four phases of the grid
    width = max(map(len, prompts))
    ids = torch.tensor([[tok.pad_token_id] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    kw = dict(gen_length=8, block_length=B, threshold=0.5, residual=residual)
    batch = rcd.generate(model, ids, attention_mask=mask, **kw)
    for row, p in enumerate(prompts):
        alone = rcd.generate(model, torch.tensor([p]), **kw)
        assert torch.equal(alone.generated[0], batch.generated[row])
        if residual is None:
            assert alone.generated[0].tolist() == sdar_generate(
                model, p, gen_length=8, block=B, steps=B, threshold=0.5
            )


def test_a_stop_token_inside_the_prompt_does_not_stop_generation(sdar):
    model, tok = sdar
    eos = tok.convert_tokens_to_ids(";")
    ids = prompt(tok, 6)  # "7*8=56": the first decoded block holds "56"; put a stop id there
    ids[-1] = eos
    out = rcd.generate(
        model, torch.tensor([ids]), gen_length=8, block_length=B, steps=8, eos_token_id=eos, stop_at_eos=True
    )
    assert (out.generated[0] != tok.mask_token_id).all() and out.generated_tokens[0] > 0


def test_absolute_layout_aligns_every_rows_grid():
    ids = torch.tensor([[0, 0, 0, 7, 8], [1, 2, 3, 4, 5]])
    mask = torch.tensor([[0, 0, 0, 1, 1], [1, 1, 1, 1, 1]])
    lay = layout(ids, mask, gen_length=8, block_length=B, mask_id=99, grid="absolute")
    # row 0 (2 tokens) decodes to 12 = 3 blocks, row 1 (5 tokens) to 16: row 0 is padded by 4
    assert lay.key_valid.sum(-1).tolist() == [12, 16] and lay.gen_starts.tolist() == [6, 5]
    assert lay.window_start == 4 and lay.n_blocks == 3
    assert lay.ids[0, 4:6].tolist() == [7, 8] and lay.ids[1, :5].tolist() == [1, 2, 3, 4, 5]


def test_block_diffusion_training_sees_what_sdar_decoding_sees(sdar):
    """Training's noisy block = the first decoded block on SDAR's grid: it holds the prompt's
    last 2 tokens and the first 2 masks, and sees the prompt's whole block before it."""
    model, tok = sdar
    dm = DiffusionModel.wrap(model)
    clean = torch.tensor([prompt(tok, 6) + tok("3*3=9;1")["input_ids"]])
    masked = torch.zeros_like(clean, dtype=torch.bool)
    masked[:, 6:] = True
    noisy = clean.masked_fill(masked, tok.mask_token_id)
    batch = NoisyBatch(
        clean=clean,
        noisy=noisy,
        masked=masked,
        weight=masked.double(),
        key_valid=torch.ones_like(masked),
        gen_start=6,
        mask_token_id=tok.mask_token_id,
        noise_key=(0, 0, [0]),
    )
    positions = torch.arange(clean.shape[1])[None]
    blocks = positions[0] // B
    with torch.no_grad():
        train = noisy_logits(dm, dm.embed(noisy), batch, B)
        decode = model(
            input_ids=noisy,
            attention_mask=(blocks[None, :] <= blocks[:, None])[None, None],
            position_ids=positions,
        ).logits
    assert torch.allclose(train[:, 4:8], decode[:, 4:8], atol=1e-10)
