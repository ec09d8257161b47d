"""The training loop: stages, accumulation, resume after SIGKILL, DDP, LoRA, reference cache."""

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

import rcd
from conftest import require_extra
from rcd.train import ResidualTrainingConfig, TrainConfig, Trainer, train

pytestmark = pytest.mark.slow  # every test trains models (make test-fast leaves them out)


def addition_rows(n, seed, digits=3):
    r = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = r.randrange(10**digits), r.randrange(10**digits)
        rows.append({"prompt": f"{a:0{digits}d}+{b:0{digits}d}=", "response": f"{a + b:0{digits + 1}d}"})
    return rows


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    return {
        "train": write_rows(root / "train.jsonl", addition_rows(256, 0)),
        "eval": write_rows(root / "eval.jsonl", addition_rows(64, 1)),
    }


def quick(out, data, **kw):
    base = dict(
        model="tiny-xs",
        data=data["train"],
        eval_data=data["eval"],
        out=str(out),
        batch_size=16,
        lr=3e-3,
        log_every=5,
        progress=False,
        schedule="constant",
    )
    base.update(kw)
    return TrainConfig.of(**base)


@pytest.fixture(scope="module")
def reference_dir(tmp_path_factory, data):
    out = tmp_path_factory.mktemp("ref")
    train(quick(out, data, stage="ref", max_steps=60))
    return out


def test_ref_then_rcd_lowers_held_out_loss_and_decodes(tmp_path, data, reference_dir):
    ref_summary = json.loads((reference_dir / "train_summary.json").read_text())
    assert ref_summary["eval_loss"] < 0.8 * __import__("math").log(len(rcd.char_tokenizer()))
    trainer = Trainer(
        quick(
            tmp_path, data, stage="rcd", model=str(reference_dir), reference=str(reference_dir), max_steps=30
        )
    )
    before = trainer.evaluate()
    summary = trainer.train()
    assert summary["eval_loss"] < before
    model, tok = rcd.load(tmp_path)
    ref, _ = rcd.load(reference_dir)
    ids, mask = rcd.encode_prompts(tok, ["123+456=", "999+001="])
    out = rcd.generate(
        model,
        ids,
        attention_mask=mask,
        gen_length=8,
        block_length=8,
        steps=4,
        residual=rcd.ResidualConfig(init="reference"),
        reference=ref,
    )
    assert out.nfe == 4 and out.reference_nfe == 1 and (out.generated != tok.mask_token_id).all()


def test_reference_frozen_and_untouched_by_training(tmp_path, data, reference_dir):
    digest = hashlib.sha256((reference_dir / "model.safetensors").read_bytes()).hexdigest()
    trainer = Trainer(
        quick(
            tmp_path, data, stage="rcd", model=str(reference_dir), reference=str(reference_dir), max_steps=3
        )
    )
    trainer.train()
    reference = trainer.reference.model
    assert not reference.training  # eval mode: no dropout in the signal
    assert not any(p.requires_grad or p.grad is not None for p in reference.parameters())
    assert hashlib.sha256((reference_dir / "model.safetensors").read_bytes()).hexdigest() == digest


def test_reference_smaller_than_target(tmp_path, data, reference_dir):
    """A tiny-xs reference (64 wide, 2 layers) feeds a tiny-s target (128 wide, 4 layers)."""
    summary = train(
        quick(tmp_path, data, stage="rcd", model="tiny-s", reference=str(reference_dir), max_steps=2)
    )
    assert summary["steps"] == 2 and summary["final_loss"] > 0
    assert rcd.load(tmp_path)[0].config.hidden_size == 128


def accumulated_gradients(config):
    """Train one optimizer step; return the loss and the gradients the optimizer stepped with."""
    trainer = Trainer(config)
    grads = []
    params = [p for p in trainer.module.parameters() if p.requires_grad]
    trainer.optimizer.optimizer.register_step_pre_hook(
        lambda *_: grads.append([p.grad.detach().clone() for p in params])
    )
    summary = trainer.train()
    assert len(grads) == 1
    return summary["final_loss"], grads[0]


def test_gradient_accumulation_invariance(tmp_path, data):
    loss_a, grads_a = accumulated_gradients(
        quick(tmp_path / "a", data, max_steps=1, batch_size=8, log_every=1)
    )
    loss_b, grads_b = accumulated_gradients(
        quick(tmp_path / "b", data, max_steps=1, batch_size=4, grad_accum=2, log_every=1)
    )
    loss_c, grads_c = accumulated_gradients(
        quick(tmp_path / "c", data, max_steps=1, batch_size=2, grad_accum=4, log_every=1)
    )
    assert loss_a == pytest.approx(loss_b, rel=1e-5) and loss_a == pytest.approx(loss_c, rel=1e-5)
    for ga, gb, gc in zip(grads_a, grads_b, grads_c):
        assert torch.allclose(ga, gb, rtol=1e-4, atol=1e-7) and torch.allclose(ga, gc, rtol=1e-4, atol=1e-7)
    assert max(g.abs().max().item() for g in grads_a) > 1e-3  # real gradients, not zeros


def test_block_causal_training_runs(tmp_path, data):
    summary = train(
        quick(tmp_path, data, stage="ref", attention="block-causal", block_length=4, max_steps=20)
    )
    model, _ = rcd.load(tmp_path)
    assert model.config.attention == "block-causal" and model.config.block_length == 4
    assert summary["eval_loss"] < summary_loss_at_start(tmp_path, data)


def summary_loss_at_start(tmp_path, data):
    cfg = quick(tmp_path / "start", data, stage="ref", attention="block-causal", block_length=4, max_steps=1)
    return Trainer(cfg).evaluate()


def test_reference_cache_reused_in_later_epochs(tmp_path, data, reference_dir):
    config = quick(
        tmp_path,
        data,
        stage="rcd",
        model=str(reference_dir),
        reference=str(reference_dir),
        epochs=2,
        batch_size=64,
        cache_reference=True,
        cache_top_k=8,
    )
    summary = train(config)
    assert summary["reference_cache"] == {"hits": 4, "misses": 4}  # epoch 1 computes, epoch 2 reuses
    assert (tmp_path / "reference_cache.pt").exists()


def test_lora_adapters_are_merged_into_the_saved_weights(tmp_path, data, reference_dir):
    require_extra("peft", "lora")
    train(
        quick(
            tmp_path,
            data,
            stage="rcd",
            model=str(reference_dir),
            reference=str(reference_dir),
            max_steps=3,
            lora_rank=4,
        )
    )
    base, merged = load_file(reference_dir / "model.safetensors"), load_file(tmp_path / "model.safetensors")
    assert merged.keys() == base.keys()  # a plain model, no adapter tensors
    adapted = [
        k for k in base if k.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight"))
    ]
    assert adapted and all((merged[k] - base[k]).abs().max() > 1e-6 for k in adapted)  # the adapters' update
    assert all(torch.equal(merged[k], base[k]) for k in base if k not in adapted)  # nothing else trained


def test_tokenizer_mismatch_is_refused(tmp_path, data, reference_dir):
    other = tmp_path / "other"
    model, _ = rcd.load(reference_dir)
    model.save_pretrained(other)
    rcd.char_tokenizer("0123456789+=abc").save_pretrained(other)
    with pytest.raises(ValueError, match="different tokenizer"):
        Trainer(
            quick(
                tmp_path / "o", data, stage="rcd", model=str(reference_dir), reference=str(other), max_steps=1
            )
        )


def test_warmup_ratio_then_constant(tmp_path, data):
    """The SDAR recipe's schedule: linear warmup over 3% (here 25% of 8 = 2 steps), then constant."""
    train(
        quick(
            tmp_path,
            data,
            stage="ref",
            max_steps=8,
            log_every=1,
            schedule="constant_with_warmup",
            warmup_ratio=0.25,
            lr=1e-3,
        )
    )
    rates = [
        r["lr"] for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines()) if "lr" in r
    ]
    assert rates[0] < rates[1] == rates[-1] == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="instead of --warmup-steps"):
        quick(tmp_path, data, warmup_ratio=0.1, warmup_steps=5)


def cli(out, data, *extra):
    return [
        sys.executable,
        "-m",
        "rcd",
        "train",
        "--stage",
        "ref",
        "--model",
        "tiny-xs",
        "--data",
        data["train"],
        "--out",
        str(out),
        "--batch-size",
        "8",
        "--lr",
        "3e-3",
        "--log-every",
        "2",
        "--no-progress",
        "--schedule",
        "cosine",
        "--warmup-steps",
        "3",
        *extra,
    ]


def losses(out):
    return [
        (r["step"], r["loss"])
        for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
        if "loss" in r
    ]


def test_sigkill_and_resume_reproduce_uninterrupted_run(tmp_path, data):
    steps = ["--max-steps", "24", "--save-every", "6"]
    subprocess.run(cli(tmp_path / "full", data, *steps), check=True, capture_output=True)
    proc = subprocess.Popen(
        cli(tmp_path / "cut", data, *steps), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    checkpoints = tmp_path / "cut" / "checkpoints"
    deadline = time.time() + 120
    while not list(checkpoints.glob("step-00000006")) and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = sorted(p.name for p in checkpoints.glob("step-*"))
    assert done and done[-1] < "step-00000024"
    # the exact same command resumes (no --resume needed)
    subprocess.run(cli(tmp_path / "cut", data, *steps), check=True, capture_output=True)
    full, cut = losses(tmp_path / "full"), losses(tmp_path / "cut")
    assert [s for s, _ in cut] == [s for s, _ in full]
    assert [loss for _, loss in cut] == pytest.approx([loss for _, loss in full], rel=1e-6)
    a, b = (
        load_file(tmp_path / "full" / "model.safetensors"),
        load_file(tmp_path / "cut" / "model.safetensors"),
    )
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_ddp_two_cpu_processes_equal_one_process_at_the_same_global_batch(tmp_path, data):
    """2 gloo processes x 4 examples = 1 process x 8: same data, noise and averaged gradients,
    so the same weights; without gradient sync each process would step on its own half."""
    launch = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        "29517",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two processes on two cores
    steps = ["--max-steps", "4"]
    ddp = cli(tmp_path / "ddp", data, *steps)[1:]
    ddp[ddp.index("--batch-size") + 1] = "4"
    done = subprocess.run([*launch, *ddp], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    subprocess.run(cli(tmp_path / "one", data, *steps), check=True, capture_output=True, env=env)
    summary = json.loads((tmp_path / "ddp" / "train_summary.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 4
    (ddp_steps, ddp_loss), (one_steps, one_loss) = (
        zip(*losses(tmp_path / "ddp")),
        zip(*losses(tmp_path / "one")),
    )
    assert ddp_steps == one_steps and ddp_loss == pytest.approx(one_loss, rel=1e-5)
    a, b = (
        load_file(tmp_path / "ddp" / "model.safetensors"),
        load_file(tmp_path / "one" / "model.safetensors"),
    )
    gap = max((a[k] - b[k]).abs().max().item() for k in a)
    assert gap < 1e-5, gap


@pytest.mark.parametrize("source", ["more-masked", "self", "selfcond"])
def test_residual_sources_beyond_the_paper(tmp_path, data, reference_dir, source):
    residual = ResidualTrainingConfig(source=source, more_masked_fraction=0.5, dropout=0.3)
    summary = train(
        quick(
            tmp_path, data, stage="rcd", model=str(reference_dir), reference=str(reference_dir), max_steps=4
        ),
        residual,
    )
    assert summary["residual"]["source"] == source and summary["eval_loss"] > 0
