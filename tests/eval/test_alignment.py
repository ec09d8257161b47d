"""The alignment instrument (rcd.eval.alignment) against a by-hand replay of the first updates."""

import json
import math

import pytest
import torch

import rcd
from conftest import MASK, make_model, random_prompts
from rcd.eval.alignment import residual_alignment
from rcd.residual import ResidualConfig

GEN, BLOCK, STEPS = 8, 4, 4


def kl_by_hand(z_reference, z_self, temperature, reference_temperature=None):
    p = torch.softmax(z_reference.double() / (reference_temperature or temperature), -1)
    q = torch.softmax(z_self.double() / temperature, -1)
    return (p * (p.log() - q.log())).sum(-1)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_first_updates_match_a_by_hand_replay(temperature):
    """Step 0 feeds step 1: the self-loop's p is the model on plain masks (cold start), the
    reference's is the reference on the sequence after step 0's commits."""
    model, reference = make_model(seed=0), make_model(seed=7)
    prompts = random_prompts(2, 4)
    residual = ResidualConfig(temperature=temperature)
    out, record = residual_alignment(
        model,
        reference,
        prompts,
        gen_length=GEN,
        block_length=BLOCK,
        steps=STEPS,
        residual=residual,
        train_temperature=1.3,
        return_trace=True,
    )
    plain = rcd.generate(model, prompts, gen_length=GEN, block_length=BLOCK, steps=STEPS, residual=residual)
    assert torch.equal(out.sequences, plain.sequences) and out.nfe == plain.nfe  # the probe changes nothing

    first = out.trace[0]
    sequence = torch.cat([prompts, torch.full((2, GEN), MASK)], 1)
    with torch.no_grad():
        z_self = model(sequence).logits
        block = sequence[:, 4 : 4 + BLOCK]
        block[first.committed] = first.tokens[first.committed]
        z_reference = reference(sequence).logits
    still = sequence == MASK
    expect = kl_by_hand(z_reference[still], z_self[still], temperature)
    at_step = record.step == 0
    assert record.position[at_step].tolist() == still.nonzero()[:, 1].tolist()
    assert record.kl[at_step].tolist() == pytest.approx(expect.tolist(), rel=1e-9)
    assert (record.kl[at_step] > 1e-3).all()  # two different models: far from zero
    trained = kl_by_hand(z_reference[still], z_self[still], temperature, reference_temperature=1.3)
    assert record.kl_trained[at_step].tolist() == pytest.approx(trained.tolist(), rel=1e-9)
    assert not torch.allclose(record.kl_trained, record.kl)  # the training temperature is its own

    q = torch.softmax(z_self[still].double() / temperature, -1)
    entropy = -(q * q.log()).sum(-1) / math.log(q.shape[-1])
    assert record.entropy[at_step].tolist() == pytest.approx(entropy.tolist(), rel=1e-9)
    # bidirectional: every pass but the last leaves masks somewhere in the generation to feed
    assert record.step.unique().tolist() == list(range(out.nfe - 1))


def test_tables_partition_the_entries():
    """A block-causal pair with the warm start, which takes the same reference."""
    model, reference = make_model("block-causal", seed=0), make_model("block-causal", seed=7)
    out, record = residual_alignment(
        model,
        reference,
        random_prompts(3, 4),
        gen_length=GEN,
        block_length=BLOCK,
        steps=STEPS,
        residual=ResidualConfig(init="reference"),
    )
    assert out.reference_nfe == 2  # one warm start per block; the instrument's passes are not counted
    bins = record.by_entropy_bin(4)
    assert sum(b["count"] for b in bins) == record.kl.numel() > 0
    for b in bins:
        inside = (record.entropy >= b["entropy_from"]) & (record.entropy < b["entropy_to"])
        if b["count"]:
            assert b["count"] == int(inside.sum()) and b["mean_kl"] == pytest.approx(
                record.kl[inside].mean().item()
            )
    steps = record.by_step()
    assert [s["step"] for s in steps] == sorted(set(record.step.tolist()))
    assert sum(s["count"] for s in steps) == record.kl.numel()


def test_feedback_from_the_reference_is_refused():
    """The instrument measures the self-loop; a decode fed by the reference has none."""
    model = make_model(seed=0)
    with pytest.raises(ValueError, match="self-loop"):
        residual_alignment(
            model,
            model,
            random_prompts(1, 4),
            gen_length=GEN,
            block_length=BLOCK,
            steps=STEPS,
            residual=ResidualConfig(feedback="reference", init="reference"),
        )


def test_alignment_command_writes_its_tables(tmp_path, capsys):
    from experiments.alignment import main

    tok = rcd.char_tokenizer()
    for name, seed in (("rcd", 0), ("ref", 7)):
        model = rcd.tiny_model(len(tok), mask_token_id=tok.mask_token_id, seed=seed)
        model.save_pretrained(tmp_path / name)
        tok.save_pretrained(tmp_path / name)
    rows = [("1+1=", "2"), ("12+30=", "42"), ("7+8=", "15"), ("2+2=", "4")]
    (tmp_path / "test.jsonl").write_text(
        "".join(json.dumps({"prompt": p, "response": r}) + "\n" for p, r in rows)
    )
    args = [
        "--model",
        str(tmp_path / "rcd"),
        "--reference",
        str(tmp_path / "ref"),
        "--data",
        str(tmp_path / "test.jsonl"),
        "--skip",
        "1",
        "--limit",
        "2",
        "--bins",
        "5",
        "--gen-length",
        "8",
        "--block-length",
        "4",
        "--steps",
        "4",
        "--temperatures",
        "0.5,1.5",
        "--json",
        str(tmp_path / "out.json"),
        "--plot",
        str(tmp_path / "kl.png"),
    ]
    assert main(args) == 0
    runs = json.loads((tmp_path / "out.json").read_text())["runs"]
    assert [run["res_temperature"] for run in runs] == [0.5, 1.5]
    for run in runs:
        assert run["problems"] == 2
        assert (
            run["count"]
            == sum(b["count"] for b in run["by_entropy_bin"])
            == sum(s["count"] for s in run["by_step"])
            > 0
        )
        assert len(run["by_entropy_bin"]) == 5 and run["mean_kl"] > 0
        # gold responses of 1-2 tokens: the commits scored are those of the first two positions
        assert 2 <= run["commits"]["commits"] <= 4 and run["solved"] == 0.0
    assert runs[0]["mean_kl"] != runs[1]["mean_kl"]  # T_res reaches the probe
    assert (tmp_path / "kl.png").stat().st_size > 0
    assert "mean KL(reference || self)" in capsys.readouterr().out
