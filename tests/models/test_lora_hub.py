"""Models by Hub id (offline, from a local Hub cache), and LoRA adapters that load like checkpoints."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

import rcd
from rcd.train import TrainConfig, train
from test_train import data, quick  # noqa: F401  (module fixtures)


@pytest.fixture(scope="module")
def reference_dir(tmp_path_factory, data):  # noqa: F811
    """A saved model to adapt and to load by Hub id: one step of training makes it (its quality plays no part)."""
    out = tmp_path_factory.mktemp("ref")
    train(quick(out, data, stage="ref", max_steps=1))
    return out


def test_lora_adapter_loads_and_decodes_as_the_merged_model(tmp_path, data, reference_dir):  # noqa: F811
    pytest.importorskip("peft")
    train(
        quick(
            tmp_path,
            data,
            stage="rcd",
            model=str(reference_dir),
            reference=str(reference_dir),
            max_steps=3,
            lora_rank=4,
            lr=3e-2,
        )
    )
    adapter = tmp_path / "adapter"
    assert (adapter / "adapter_model.safetensors").exists() and not (adapter / "config.json").exists()
    merged, tok = rcd.load(tmp_path)
    from_adapter, tok_a = rcd.load(adapter)
    base, _ = rcd.load(reference_dir)
    merged_state, adapter_state = merged.state_dict(), from_adapter.state_dict()
    assert merged_state.keys() == adapter_state.keys()
    assert all(torch.allclose(merged_state[k], adapter_state[k], atol=1e-6) for k in merged_state)
    assert any(not torch.equal(merged_state[k], base.state_dict()[k]) for k in merged_state)  # LoRA did train
    ids, mask = rcd.encode_prompts(tok, ["123+456=", "999+001="])
    decode = dict(attention_mask=mask, gen_length=8, block_length=8, steps=4)
    assert torch.equal(
        rcd.generate(merged, ids, **decode).generated, rcd.generate(from_adapter, ids, **decode).generated
    )


def test_lora_on_a_preset_is_refused(tmp_path):
    with pytest.raises(ValueError, match="LoRA adapts a saved model"):
        TrainConfig.of(data="d.jsonl", out=str(tmp_path), model="tiny-xs", lora_rank=4)


def hub_cache(root, repo_id, source):
    """The layout huggingface_hub keeps a downloaded model in (refs/main -> snapshots/<commit>)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = root / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(source, repo / "snapshots" / commit)
    return root


@pytest.mark.slow  # a training run in a fresh process
def test_model_and_reference_by_hub_id(tmp_path, data, reference_dir):  # noqa: F811
    cache = hub_cache(tmp_path / "hub", "rcd-test/tiny-ref", reference_dir)
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    out = tmp_path / "run"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rcd",
            "train",
            "--stage",
            "rcd",
            "--model",
            "rcd-test/tiny-ref",
            "--reference",
            "rcd-test/tiny-ref",
            "--data",
            data["train"],
            "--out",
            str(out),
            "--max-steps",
            "2",
            "--batch-size",
            "8",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == 2 and summary["config"]["model"] == "rcd-test/tiny-ref"
