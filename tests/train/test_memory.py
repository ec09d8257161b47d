"""Training memory: activation checkpointing, --dtype, the frozen reference (optimizer, FSDP sharding)."""

import copy
import os
import re
import subprocess
import sys
import textwrap

import pytest
import torch

import rcd
from rcd.train import ResidualTrainingConfig, TrainConfig, Trainer
from rcd.train.memory import ReferenceModule, enable_gradient_checkpointing
from rcd.train.noise import add_noise
from rcd.train.stages import StageModule
from test_train import data, quick, reference_dir  # noqa: F401  (module fixtures)

pytestmark = pytest.mark.slow  # trains models and runs process groups


def noisy_batch(tok, path, n=8):
    examples = rcd.data.load_sft(path, tok, max_prompt_length=20, max_response_length=20)[0][:n]
    batch = rcd.data.SftCollator(tok.pad_token_id, tok.eos_token_id)(examples)
    return add_noise(batch, mask_token_id=tok.mask_token_id, seed=0, epoch=0)


def loss_grads_and_layer_calls(model, reference, noisy, checkpointing):
    target = copy.deepcopy(model).train()
    if checkpointing:
        enable_gradient_checkpointing(target)
    calls, mlp = [], target.model.layers[0].mlp
    forward = mlp.forward
    mlp.forward = lambda *a, **kw: calls.append(1) or forward(*a, **kw)  # module hooks skip the recompute
    residual = ResidualTrainingConfig(source="self")  # the target also runs a no-grad pass
    module = StageModule(target, residual=residual)
    loss = module(noisy, ReferenceModule(reference, None, residual).signal(noisy))
    loss.backward()
    return loss.item(), [p.grad.clone() for p in target.parameters()], len(calls)


def test_gradient_checkpointing_same_loss_and_grads_with_recomputation(data, reference_dir):  # noqa: F811
    model, tok = rcd.load(reference_dir)
    reference, _ = rcd.load(reference_dir)
    noisy = noisy_batch(tok, data["eval"])
    loss_a, grads_a, calls_a = loss_grads_and_layer_calls(model, reference, noisy, checkpointing=False)
    loss_b, grads_b, calls_b = loss_grads_and_layer_calls(model, reference, noisy, checkpointing=True)
    assert loss_a == pytest.approx(loss_b, rel=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads_a, grads_b))
    assert calls_b == calls_a + 1  # the grad pass's layer ran again in backward: activations were not kept


def test_model_without_checkpointing_is_refused():
    with pytest.raises(ValueError, match="no activation checkpointing"):
        enable_gradient_checkpointing(torch.nn.Linear(2, 2))


def test_frozen_reference_in_eval_mode_outside_the_optimizer_and_dtype(tmp_path, data, reference_dir):  # noqa: F811
    trainer = Trainer(
        quick(
            tmp_path,
            data,
            stage="rcd",
            model=str(reference_dir),
            reference=str(reference_dir),
            max_steps=2,
            dtype="bfloat16",
            reference_dtype="float64",
            gradient_checkpointing=True,
        )
    )
    reference = trainer.reference.model
    optimized = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert optimized and not optimized & {id(p) for p in reference.parameters()}
    assert not any(p.requires_grad for p in reference.parameters())
    target = trainer.accelerator.unwrap_model(trainer.module).model
    assert {p.dtype for p in target.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in reference.parameters()} == {torch.float64}
    assert all(layer.gradient_checkpointing for layer in target.model.layers)
    summary = trainer.train()  # train() puts the module in train mode: the reference must stay in eval
    assert not reference.training and not trainer.reference.training
    assert summary["steps"] == 2 and summary["final_loss"] == summary["final_loss"]
    assert not trainer.optimizer.state.keys() & {p for p in reference.parameters()}


def test_dtype_and_mixed_precision_are_exclusive(tmp_path):
    with pytest.raises(ValueError, match="pass one of the two"):
        TrainConfig.of(data="d", out=str(tmp_path), dtype="bfloat16", mixed_precision="bf16")


HERE = os.path.dirname(os.path.abspath(__file__))  # test_memory, and conftest one folder up

SHARDED = textwrap.dedent(
    """
    import sys, torch, torch.distributed as dist, rcd
    from rcd.train.memory import ReferenceModule, shard_frozen
    from rcd.train.stages import ResidualTrainingConfig
    from test_memory import noisy_batch
    dist.init_process_group("gloo")
    model, tok = rcd.load(sys.argv[1])
    noisy = noisy_batch(tok, sys.argv[2])
    module = ReferenceModule(model, None, ResidualTrainingConfig())
    full_logits = module(noisy)
    full = sum(p.numel() for p in module.parameters())
    shard_frozen(module)
    local = sum(p.to_local().numel() for p in module.parameters())
    logits = module(noisy)
    after = sum(p.to_local().numel() for p in module.parameters())  # resharded after the forward
    assert torch.allclose(full_logits, logits, atol=1e-5), (full_logits - logits).abs().max()
    sys.stdout.write(f"SHARD {dist.get_rank()} {full} {local} {after}\\n")  # one write: atomic on a pipe
    sys.stdout.flush()
    dist.destroy_process_group()
    """
)


def test_reference_sharded_across_two_gloo_processes(tmp_path, data, reference_dir):  # noqa: F811
    """FSDP2 sharding of the reference (what `place_reference` does under FSDP) on CPU processes.

    Accelerate refuses FSDP without an accelerator, so the trainer's FSDP branch itself is
    not reached here; its sharding function is, with the same module and inputs.
    """
    script = tmp_path / "shard.py"
    script.write_text(SHARDED)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([HERE, os.path.dirname(HERE)])}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29531",
            str(script),
            str(reference_dir),
            data["eval"],
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # the two ranks share one stdout: find each report wherever another rank's output cut in
    rows = re.findall(r"SHARD (\d+) (\d+) (\d+) (\d+)", done.stdout)
    assert sorted(rank for rank, *_ in rows) == ["0", "1"], done.stdout[-3000:]
    for _, full, local, after in rows:
        assert int(local) == int(after) <= int(full) // 2 + 64  # half each (up to uneven shards)
