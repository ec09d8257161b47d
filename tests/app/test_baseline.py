"""The SeqD baseline of `rcd sweep` and of the demo is plain decoding: every call that decodes
the baseline model passes no residual and no reference, and gives the tokens of
`rcd.generate(..., residual=None)`."""

from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

import rcd
from rcd import demo
from rcd.cli import main
from rcd.eval import decoder as decoder_module
from rcd.eval.sweep import SweepConfig
from test_bad_input import save_tiny, write_jsonl


@pytest.fixture
def decode_calls(monkeypatch):
    """Every `generate` call of the one text decoder: (model, input ids, config, keywords, tokens)."""
    calls = []
    real = decoder_module.generate

    def spy(model, input_ids, config=None, **kwargs):
        out = real(model, input_ids, config, **kwargs)
        calls.append((model, input_ids.clone(), config, kwargs, out.generated.clone()))
        return out

    monkeypatch.setattr(decoder_module, "generate", spy)
    return calls


def assert_plain_decoding(calls, baseline_dir: Path, n_settings: int) -> None:
    mine = [c for c in calls if c[0].config._name_or_path == str(baseline_dir)]
    assert len(mine) >= n_settings  # the baseline was decoded under every setting
    for model, input_ids, config, kwargs, tokens in mine:
        assert kwargs.get("residual") is None and kwargs.get("reference") is None, (
            "the baseline got a residual"
        )
        plain = rcd.generate(
            model,
            input_ids,
            config,
            residual=None,
            attention_mask=kwargs["attention_mask"],
            eos_token_id=kwargs["eos_token_id"],
        )
        assert torch.equal(tokens, plain.generated)


def test_sweep_decodes_its_baseline_plainly(tmp_path, decode_calls):
    models = {name: save_tiny(tmp_path / name, seed=seed) for seed, name in enumerate(("rcd", "ref", "seqd"))}
    data = write_jsonl(
        tmp_path / "sweep.jsonl", [{"prompt": f"{a}+{a}=", "answer": str(2 * a)} for a in range(3)]
    )
    assert (
        main(
            [
                "sweep",
                "--model",
                str(models["rcd"]),
                "--reference",
                str(models["ref"]),
                "--baseline",
                str(models["seqd"]),
                "--data",
                data,
                "--out",
                str(tmp_path / "out"),
                "--tokens-per-step",
                "2",
                "--thresholds",
                "0.5",
                "--gen-length",
                "8",
                "--block-length",
                "8",
            ]
        )
        == 0
    )
    assert_plain_decoding(decode_calls, models["seqd"], n_settings=2)
    residuals = [c[3].get("residual") for c in decode_calls]
    assert any(r is not None for r in residuals)  # the spy sees the RCD methods' residuals too


def test_demo_decodes_its_baseline_plainly(tmp_path, decode_calls, monkeypatch):
    seeds = {"ref": 0, "seqd": 1, "rcd": 2}

    def trained(config, residual=None):  # stands for training: a tiny model per stage
        models = config.models
        tokenizer = AutoTokenizer.from_pretrained(models.tokenizer if config.stage == "ref" else models.model)
        save_tiny(Path(config.runtime.out), seed=seeds[config.stage], tokenizer=tokenizer)
        return {
            "steps": 1,
            "train_seconds": 0.0,
            "tokens_per_second": 0.0,
            "final_loss": 1.0,
            "eval_loss": 1.0,
        }

    monkeypatch.setattr(demo, "train", trained)
    config = demo.DemoConfig(
        task="mul",
        out=str(tmp_path / "demo"),
        n_train=8,
        n_test=3,
        ref_steps=1,
        stage_steps=1,
        sweep=SweepConfig(tokens_per_step=(8,), thresholds=(), batch_size=4),
    )
    report = demo.run_demo(config)
    assert set(report["curves"]) == {"seqd", "rcd"}
    assert_plain_decoding(decode_calls, tmp_path / "demo" / "seqd", n_settings=1)
