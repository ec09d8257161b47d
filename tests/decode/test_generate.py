import pytest
import torch

import rcd
from conftest import MASK, make_model, random_prompts, slow_except
from naive import naive_generate

MODES = ["bidirectional", "block-causal"]
RESIDUALS = {
    "seqd": None,
    "rcd-zero": dict(alpha="entropy", temperature=1.0, init="zero"),
    "rcd-self-tres": dict(alpha="entropy", temperature=0.9, init="self"),
    "rcd-confidence": dict(alpha="confidence", temperature=1.0, init="zero"),
    "rcd-one": dict(alpha="one", temperature=1.2, init="self"),
    "rcd-reference": dict(alpha="entropy", temperature=1.0, init="reference"),
}
# fixed-3: 3 steps per block of 4, so the schedule has a remainder (2, 1, 1 commits)
POLICIES = {
    "fixed-1": dict(steps=12),
    "fixed-2": dict(steps=6),
    "fixed-3": dict(steps=9),
    "threshold": dict(threshold=0.3),
}


@pytest.fixture(scope="module")
def references():
    return {mode: make_model(mode, seed=7) for mode in MODES}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("residual", slow_except(RESIDUALS, fast={"rcd-self-tres"}))
def test_matches_naive_reference_loop(models, references, mode, policy, residual):
    model, ref = models[mode], references[mode]
    spec = RESIDUALS[residual]
    prompts = random_prompts(2, 5, seed=3)
    config = None if spec is None else rcd.ResidualConfig(**spec)
    out = rcd.generate(
        model,
        prompts,
        gen_length=12,
        block_length=4,
        residual=config,
        reference=ref if residual == "rcd-reference" else None,
        **POLICIES[policy],
    )
    for row in range(2):
        expect, nfe, ref_nfe = naive_generate(
            model,
            prompts[row].tolist(),
            gen_length=12,
            block_length=4,
            residual=spec,
            reference=ref,
            **POLICIES[policy],
        )
        assert out.sequences[row].tolist() == expect
        if policy.startswith("fixed"):
            assert (out.nfe, out.reference_nfe) == (nfe, ref_nfe)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("policy", ["fixed-2", "threshold"])
@pytest.mark.parametrize("residual", slow_except(["rcd-self-tres", "rcd-one"], fast={"rcd-self-tres"}))
def test_residual_free_confidence_matches_naive_loop(models, mode, policy, residual):
    """confidence_pass='plain': the residual pass picks the tokens, a second pass over plain masks
    gives their confidence; every row's passes (the extra one per step included) as the naive loop counts them."""
    model, spec = models[mode], RESIDUALS[residual]
    prompts = random_prompts(2, 5, seed=4)
    out = rcd.generate(
        model,
        prompts,
        gen_length=12,
        block_length=4,
        residual=rcd.ResidualConfig(**spec),
        confidence_pass="plain",
        **POLICIES[policy],
    )
    for row in range(2):
        expect, nfe, _ = naive_generate(
            model,
            prompts[row].tolist(),
            gen_length=12,
            block_length=4,
            residual=spec,
            confidence_pass="plain",
            **POLICIES[policy],
        )
        assert out.sequences[row].tolist() == expect
        assert int(out.row_forward_passes[row]) == nfe


@pytest.mark.parametrize("mode", MODES)
def test_residual_free_confidence_is_plain_decodings_and_costs_a_pass_per_step(models, mode):
    """With a warm start the first step's residual pass already carries a residual; its
    residual-free confidence is what plain decoding (no residual) reads at that step wherever
    both choose the same token (elsewhere plain decoding's own argmax scores higher), not the
    residual pass's own; and each of the 6 steps pays one more forward pass."""
    model = models[mode]
    common = dict(gen_length=12, block_length=4, steps=6, return_trace=True)
    prompts = random_prompts(2, 5, seed=5)
    warm = rcd.ResidualConfig(
        init="self", alpha="fixed", fixed_alpha=0.1
    )  # a light residual: tokens mostly agree
    free = rcd.generate(model, prompts, residual=warm, confidence_pass="plain", **common)
    own = rcd.generate(model, prompts, residual=warm, **common)
    plain = rcd.generate(model, prompts, **common)
    first = [out.trace[0].confidence.nan_to_num() for out in (free, own, plain)]
    same = free.trace[0].tokens == plain.trace[0].tokens
    assert same.any() and torch.allclose(first[0][same], first[2][same])
    assert (first[0] <= first[2] + 1e-12).all() and not torch.allclose(first[0], first[1])
    assert free.nfe == own.nfe + 6
    assert torch.equal(free.row_forward_passes, own.row_forward_passes + 6)
    assert free.tokens_per_step == pytest.approx(24 / int(free.row_forward_passes.sum()))
    # plain decoding's step pass is residual-free already: the option changes nothing there
    again = rcd.generate(model, prompts, confidence_pass="plain", **common)
    assert torch.equal(again.sequences, plain.sequences) and again.nfe == plain.nfe == 6


def test_fixed_schedule_counts_forward_passes():
    model = make_model()
    out = rcd.generate(model, random_prompts(1, 4), gen_length=16, block_length=8, steps=4)
    assert out.nfe == 4 and out.tokens_per_step == 4.0
    assert (out.generated != MASK).all()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("residual", ["seqd", "rcd-self-tres"])
def test_matches_naive_loop_with_block_5_and_2_steps(references, mode, residual):
    """3 + 2 commits per block: the remainder goes to the earliest step."""
    model = make_model(mode, seed=2, block_length=5)
    spec = RESIDUALS[residual]
    prompts = random_prompts(2, 4, seed=8)
    config = None if spec is None else rcd.ResidualConfig(**spec)
    out = rcd.generate(model, prompts, gen_length=10, block_length=5, steps=4, residual=config)
    for row in range(2):
        expect, nfe, _ = naive_generate(
            model, prompts[row].tolist(), gen_length=10, block_length=5, steps=4, residual=spec
        )
        assert out.sequences[row].tolist() == expect and out.nfe == nfe


@pytest.mark.parametrize("mode", MODES)
def test_warm_start_pass_counts(models, references, mode):
    out = rcd.generate(
        models[mode],
        random_prompts(1, 4),
        gen_length=12,
        block_length=4,
        steps=12,
        residual=rcd.ResidualConfig(init="reference"),
        reference=references[mode],
    )
    # bidirectional: all positions are predicted from the first step on -> one warm-start pass;
    # block-causal: every new block is unseen -> one pass per block
    assert out.reference_nfe == (1 if mode == "bidirectional" else 3)
    assert out.nfe == 12
    assert out.tokens_per_step == pytest.approx(12 / (12 + out.reference_nfe))
    again = rcd.generate(
        models[mode],
        random_prompts(1, 4),
        gen_length=12,
        block_length=4,
        steps=12,
        residual=rcd.ResidualConfig(init="reference", reinit_blocks=True),
        reference=references[mode],
    )
    assert again.reference_nfe == 3
    # a reference without a residual is unused (SeqD), not an error
    kw = dict(gen_length=12, block_length=4, steps=12)
    with pytest.warns(UserWarning):
        plain = rcd.generate(models[mode], random_prompts(1, 4), reference=references[mode], **kw)
    assert plain.reference_nfe == 0
    assert torch.equal(plain.sequences, rcd.generate(models[mode], random_prompts(1, 4), **kw).sequences)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("residual", ["seqd", "rcd-self-tres"])
def test_kv_cache_equals_recompute(block_causal, policy, residual):
    spec = RESIDUALS[residual]
    config = None if spec is None else rcd.ResidualConfig(**spec)
    prompts = random_prompts(3, 6, seed=5)
    mask = torch.ones_like(prompts)
    mask[1, :2] = 0
    mask[2, :4] = 0
    kw = dict(gen_length=16, block_length=4, residual=config, attention_mask=mask, **POLICIES[policy])
    if policy != "threshold":
        kw["steps"] = 16 // (12 // kw["steps"])
    cached = rcd.generate(block_causal, prompts, use_cache=True, **kw)
    recomputed = rcd.generate(block_causal, prompts, use_cache=False, **kw)
    assert torch.equal(cached.sequences, recomputed.sequences)
    assert cached.nfe == recomputed.nfe


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("policy", ["fixed-2", "threshold"])
@pytest.mark.parametrize(
    "residual", slow_except(["seqd", "rcd-zero", "rcd-self-tres"], fast={"rcd-self-tres"})
)
def test_batch_invariance_with_left_padding(models, mode, policy, residual):
    spec = RESIDUALS[residual]
    config = None if spec is None else rcd.ResidualConfig(**spec)
    lengths = [3, 7, 5]
    prompts = [random_prompts(1, n, seed=10 + n)[0] for n in lengths]
    width = max(lengths)
    batch = torch.zeros(len(lengths), width, dtype=torch.long)
    mask = torch.zeros_like(batch)
    for i, p in enumerate(prompts):
        batch[i, width - len(p) :] = p
        mask[i, width - len(p) :] = 1
    kw = dict(gen_length=12, block_length=4, residual=config, **POLICIES[policy])
    together = rcd.generate(models[mode], batch, attention_mask=mask, **kw)
    for i, p in enumerate(prompts):
        alone = rcd.generate(models[mode], p[None], **kw)
        assert together.generated[i].tolist() == alone.generated[0].tolist()
        assert together.row_forward_passes[i] == alone.row_forward_passes[0]


def test_early_stop_at_eos_fills_tail(block_causal):
    prompts = random_prompts(1, 5, seed=2)
    full = rcd.generate(block_causal, prompts, gen_length=16, block_length=4, steps=16)
    eos = int(full.generated[0, 5])  # a token that appears in the second block
    first_block = next(b for b in range(4) if eos in full.generated[0, 4 * b : 4 * b + 4].tolist())
    out = rcd.generate(
        block_causal, prompts, gen_length=16, block_length=4, steps=16, eos_token_id=eos, stop_at_eos=True
    )
    done = 4 * (first_block + 1)
    assert out.generated[0, :done].tolist() == full.generated[0, :done].tolist()
    assert (out.generated[0, done:] == eos).all()
    assert out.nfe == done and out.generated_tokens.item() == done
    assert out.generated_tokens.dtype == out.row_forward_passes.dtype == torch.long  # counts, not floats


def test_trace_records_every_step(bidirectional):
    out = rcd.generate(
        bidirectional,
        random_prompts(2, 4),
        gen_length=8,
        block_length=4,
        threshold=0.3,
        residual=rcd.ResidualConfig(),
        return_trace=True,
    )
    assert len(out.trace) == out.nfe
    committed = sum(step.committed.long().sum(-1) for step in out.trace)
    assert committed.tolist() == [8, 8]
    first = out.trace[0]
    assert torch.all(first.alpha[~first.confidence.isnan()] == 0)  # cold start: plain masks
    later = [s for s in out.trace if s.block == 0 and s.step > 0]
    assert later and (later[0].alpha.nan_to_num() > 0).any()  # residuals flow afterwards
    for block in (0, 1):  # steps numbered 0, 1, ... within each block
        steps = [s.step for s in out.trace if s.block == block]
        assert steps == list(range(len(steps)))
    final = torch.stack([torch.where(s.committed, s.tokens, 0) for s in out.trace if s.block == 0]).sum(0)
    assert final.tolist() == out.generated[:, :4].tolist()  # each step's tokens, where committed


def test_a_row_stopped_at_eos_leaves_the_other_rows_as_they_decode_alone(block_causal):
    """Rows stop at different blocks: the stopped one idles (no commits, no passes counted,
    no residual updates) while the others decode exactly as they would alone."""
    prompts = random_prompts(2, 5, seed=2)
    kw = dict(gen_length=16, block_length=4, steps=16, residual=rcd.ResidualConfig())
    first, second = (
        rcd.generate(block_causal, prompts[i : i + 1], **kw).generated[0].tolist() for i in range(2)
    )
    eos = next(t for t in first[4:8] if t not in second)  # row 0 stops by its second block, row 1 never
    together = rcd.generate(block_causal, prompts, eos_token_id=eos, stop_at_eos=True, **kw)
    for i in range(2):
        alone = rcd.generate(block_causal, prompts[i : i + 1], eos_token_id=eos, stop_at_eos=True, **kw)
        assert together.generated[i].tolist() == alone.generated[0].tolist()
        assert together.row_forward_passes[i] == alone.row_forward_passes[0]
        assert together.generated_tokens[i] == alone.generated_tokens[0]
    assert together.row_forward_passes[0] < together.row_forward_passes[1]


def test_sampling_is_reproducible(bidirectional):
    kw = dict(gen_length=8, block_length=4, steps=8, temperature=1.0)
    a = rcd.generate(bidirectional, random_prompts(2, 4), generator=torch.Generator().manual_seed(0), **kw)
    b = rcd.generate(bidirectional, random_prompts(2, 4), generator=torch.Generator().manual_seed(0), **kw)
    c = rcd.generate(bidirectional, random_prompts(2, 4), generator=torch.Generator().manual_seed(1), **kw)
    assert torch.equal(a.sequences, b.sequences) and not torch.equal(a.sequences, c.sequences)


def test_dirichlet_init_is_random_and_seeded(bidirectional):
    """The first pass sees random residuals: not plain masks (zero init), new ones per seed."""
    E = bidirectional.get_input_embeddings().weight

    def first_inputs(seed):
        seen = []
        hook = bidirectional.register_forward_pre_hook(
            lambda m, a, kw: seen.append(kw["inputs_embeds"][0, 4:]), with_kwargs=True
        )
        out = rcd.generate(
            bidirectional,
            random_prompts(1, 4),
            gen_length=8,
            block_length=4,
            steps=4,
            residual=rcd.ResidualConfig(init="dirichlet"),
            generator=torch.Generator().manual_seed(seed),
        )
        hook.remove()
        assert out.nfe == 4 and out.reference_nfe == 0
        return seen[0]

    a, b, c = first_inputs(0), first_inputs(0), first_inputs(1)
    assert torch.equal(a, b)
    assert (a - E[MASK]).abs().amax(-1).min() > 1e-3  # every generated position carries a residual
    assert (a - c).abs().amax(-1).min() > 1e-3


def test_generate_runs_both_models_in_eval_mode_and_restores_training_mode():
    target, reference = make_model(seed=0), make_model(seed=3)
    seen = []
    for m in (target, reference):
        m.train()
        m.register_forward_pre_hook(lambda module, args: seen.append(module.training))
    rcd.generate(
        target,
        random_prompts(1, 3),
        gen_length=4,
        block_length=4,
        steps=2,
        residual=rcd.ResidualConfig(init="reference"),
        reference=reference,
    )
    assert len(seen) == 3 and not any(seen)  # reference warm start + 2 steps, no dropout in any
    assert target.training and reference.training


@pytest.mark.parametrize("mode", MODES)
def test_on_step_sees_the_trace_as_it_happens(models, references, mode):
    """The live callback gets exactly the steps `return_trace` records, each after its commits,
    and its positions map the block onto each row's generated positions (left padding included)."""
    prompts, mask = torch.tensor([[0, 5, 6, 7], [8, 9, 10, 11]]), torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    kw = dict(
        gen_length=8,
        block_length=4,
        threshold=0.3,
        attention_mask=mask,
        residual=rcd.ResidualConfig(init="reference"),
        reference=references[mode],
    )
    seen = []
    out = rcd.generate(models[mode], prompts, return_trace=True, on_step=seen.append, **kw)
    assert len(seen) == len(out.trace) == out.nfe
    for live, recorded in zip(seen, out.trace):
        assert (live.block, live.step, live.block_start) == (
            recorded.block,
            recorded.step,
            recorded.block_start,
        )
        for name in ("committed", "tokens", "gen_starts"):
            assert torch.equal(getattr(live, name), getattr(recorded, name))
        assert torch.equal(live.confidence.isnan(), recorded.confidence.isnan())
    canvas = torch.full((2, 8), -1)
    for step in seen:
        for row in range(2):
            columns = step.block_start + torch.arange(4) - step.gen_starts[row]
            keep = step.committed[row] & (columns >= 0) & (columns < 8)
            canvas[row, columns[keep]] = step.tokens[row, keep]
    assert canvas.tolist() == out.generated.tolist()
    assert (
        rcd.generate(models[mode], prompts, **kw).sequences.tolist() == out.sequences.tolist()
    )  # no callback


def test_row_reference_passes_split_the_row_counts(bidirectional, references):
    prompts = random_prompts(2, 4)
    warm = rcd.generate(
        bidirectional,
        prompts,
        gen_length=8,
        block_length=4,
        steps=4,
        reference=references["bidirectional"],
        residual=rcd.ResidualConfig(init="reference", reinit_blocks=True),
    )
    assert (
        warm.row_reference_passes.tolist() == [2, 2] and warm.reference_nfe == 2
    )  # one warm start per block
    assert (warm.row_forward_passes - warm.row_reference_passes).tolist() == [warm.nfe] * 2
    plain = rcd.generate(bidirectional, prompts, gen_length=8, block_length=4, steps=4)
    assert plain.row_reference_passes.tolist() == [0, 0]


def test_check_generation_refuses_what_generate_refuses(block_causal):
    check, config = rcd.decode.check_generation, rcd.DecodeConfig(gen_length=8, block_length=4)
    with pytest.raises(ValueError, match="trained with block_length 4"):
        check(block_causal, rcd.DecodeConfig(gen_length=8, block_length=8))
    with pytest.raises(ValueError, match="exceed the model's context"):
        check(block_causal, config, prompt_length=10**6)
    with pytest.raises(ValueError, match="needs reference="):
        check(block_causal, config, residual=rcd.ResidualConfig(init="reference"))
    assert check(block_causal, config) == "exact"


def test_reference_feedback_counts_each_rows_own_passes(bidirectional, references):
    """Under feedback="reference" a row pays a reference pass after each of its steps that leaves masks, and
    none once it is done; rows that finish at different steps are counted apart (from the trace)."""
    out = rcd.generate(
        bidirectional,
        random_prompts(4, 4, seed=3),
        gen_length=8,
        block_length=8,
        threshold=0.2,
        reference=references["bidirectional"],
        residual=rcd.ResidualConfig(init="reference", feedback="reference"),
        return_trace=True,
    )
    stepped = torch.stack([~step.confidence.isnan().all(-1) for step in out.trace])  # (steps, rows)
    left = torch.stack([(~step.confidence.isnan() & ~step.committed).any(-1) for step in out.trace])
    assert len(set(stepped.sum(0).tolist())) > 1  # the rows finish at different steps
    assert (out.row_forward_passes - out.row_reference_passes).tolist() == stepped.sum(0).tolist()
    # the warm start, then one reference pass per step that leaves masks
    assert out.row_reference_passes.tolist() == (1 + left.sum(0)).tolist()
