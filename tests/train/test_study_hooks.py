"""The decoding and training options the study needs: commit order, train-aligned residual
feedback, self-conditioning training, and the held-out loss with the residual on."""

from __future__ import annotations

import pytest
import torch

import rcd
import rcd.residual
from rcd.train import ResidualTrainingConfig
from rcd.train.noise import add_noise
from rcd.train.stages import StageModule


def tiny(seed=0):
    tok = rcd.char_tokenizer()
    return rcd.tiny_model(len(tok), mask_token_id=tok.mask_token_id, seed=seed), tok


def prompts(tok):
    return rcd.encode_prompts(tok, ["12+34=", "7*8=", "99-1="])


def committed_positions(out):
    return [step.committed[0].nonzero().flatten().tolist() for step in out.trace]


def test_left_to_right_order_commits_positions_in_order():
    model, tok = tiny()
    ids, mask = prompts(tok)
    out = rcd.generate(
        model,
        ids,
        attention_mask=mask,
        gen_length=8,
        block_length=8,
        steps=4,
        order="left-to-right",
        return_trace=True,
    )
    assert committed_positions(out) == [[0, 1], [2, 3], [4, 5], [6, 7]]


def test_random_order_is_seeded_and_not_the_confidence_order():
    model, tok = tiny()
    ids, mask = prompts(tok)

    def run(order):
        out = rcd.generate(
            model,
            ids,
            attention_mask=mask,
            gen_length=16,
            block_length=16,
            steps=16,
            order=order,
            return_trace=True,
        )
        return committed_positions(out)

    assert run("random") == run("random") != run("confidence")
    with pytest.raises(ValueError, match="threshold"):
        rcd.generate(
            model, ids, attention_mask=mask, gen_length=8, block_length=8, threshold=0.9, order="random"
        )


def test_reference_feedback_counts_its_passes_and_uses_the_reference():
    model, tok = tiny(0)
    reference, _ = tiny(1)
    ids, mask = prompts(tok)
    aligned = rcd.ResidualConfig(init="reference", feedback="reference")
    out = rcd.generate(
        model,
        ids,
        attention_mask=mask,
        gen_length=8,
        block_length=8,
        steps=8,
        residual=aligned,
        reference=reference,
        return_trace=True,
    )
    # one warm-start pass, then one reference pass after every step that leaves masks
    assert out.nfe == 8 and out.reference_nfe == 8 and out.tokens_per_step == pytest.approx(0.5)
    # the alpha fed at step 1 is the reference's entropy on the sequence after step 0
    seq = out.sequences.clone()
    gen = seq[:, out.prompt_length :]
    later = torch.ones_like(gen, dtype=torch.bool)
    for step in out.trace[:1]:
        later &= ~step.committed
    gen[later] = tok.mask_token_id
    with torch.no_grad():
        logits = reference(seq, attention_mask=torch.cat([mask, torch.ones_like(gen)], 1)).logits
    _, alpha = rcd.residual.residual_from_logits(
        logits[:, out.prompt_length :], model.get_input_embeddings().weight, rcd.ResidualConfig()
    )
    fed = out.trace[1].alpha
    assert torch.allclose(fed[later], alpha[later].float(), atol=1e-5)
    self_loop = rcd.generate(
        model,
        ids,
        attention_mask=mask,
        gen_length=8,
        block_length=8,
        steps=8,
        residual=rcd.ResidualConfig(init="reference"),
        reference=reference,
        return_trace=True,
    )
    assert not torch.allclose(self_loop.trace[1].alpha[later], fed[later])
    with pytest.raises(ValueError, match="reference"):
        rcd.generate(model, ids, attention_mask=mask, gen_length=8, block_length=8, residual=aligned)


def batch_of(tok, tmp_path):
    path = tmp_path / "rows.jsonl"
    rcd.data.write_jsonl(path, [{"prompt": f"{a}+{a}=", "response": str(2 * a)} for a in range(10, 18)])
    examples = rcd.data.load_sft(str(path), tok, max_prompt_length=20, max_response_length=20)[0]
    batch = rcd.data.SftCollator(tok.pad_token_id, tok.eos_token_id)(examples)
    return add_noise(batch, mask_token_id=tok.mask_token_id, seed=0, epoch=0)


def test_selfcond_feeds_the_targets_own_plain_mask_prediction(tmp_path):
    model, tok = tiny()
    noisy = batch_of(tok, tmp_path)
    module = StageModule(model, residual=ResidualTrainingConfig(source="selfcond"))
    seen = []
    hook = model.register_forward_pre_hook(
        lambda m, a, kw: seen.append(kw["inputs_embeds"].detach()), with_kwargs=True
    )
    module(noisy, rcd.train.stages.ReferenceSignal())
    hook.remove()
    assert len(seen) == 2  # the no-grad plain-mask pass, then the pass with its residual
    E = model.get_input_embeddings().weight
    with torch.no_grad():
        logits = model(inputs_embeds=seen[0], attention_mask=noisy.key_valid).logits[noisy.masked]
        delta, alpha = rcd.residual.residual_from_logits(logits, E, rcd.ResidualConfig())
    expect = seen[0].clone()
    expect[noisy.masked] = (1 - alpha[:, None]) * E[tok.mask_token_id] + alpha[:, None] * delta
    assert torch.allclose(seen[1], expect, atol=1e-5)


def test_held_out_loss_keeps_the_residual_on_whatever_the_dropout(tmp_path):
    model, tok = tiny()
    noisy = batch_of(tok, tmp_path)
    loss = {}
    for rate in (0.0, 1.0):
        module = StageModule(model, residual=ResidualTrainingConfig(source="selfcond", dropout=rate))
        module.eval()
        with torch.no_grad():
            loss["eval", rate] = float(module(noisy, rcd.train.stages.ReferenceSignal()))
        module.train()
        with torch.no_grad():
            loss["train", rate] = float(module(noisy, rcd.train.stages.ReferenceSignal()))
    plain = StageModule(model)
    plain.train()
    with torch.no_grad():
        no_residual = float(plain(noisy))
    assert loss["eval", 1.0] == pytest.approx(loss["eval", 0.0]) == pytest.approx(loss["train", 0.0])
    assert loss["train", 1.0] == pytest.approx(no_residual) != pytest.approx(loss["train", 0.0])
