"""TrainConfig's option groups: frozen, each checked where it is built, the flags and the saved
form as flat as before the groups (a run saved then reads back and is continued)."""

from __future__ import annotations

import dataclasses
import json

import pytest

import rcd
from rcd.config import dataclass_from_dict, flat_dict
from rcd.demo import DemoConfig
from rcd.models.presets import checkpoint_block_length
from rcd.train import DataConfig, LoraConfig, ModelConfig, OptimConfig, RuntimeConfig, TrainConfig, Trainer
from rcd.train.run_record import INPUTS, OPERATIONAL, train_record

# asdict(TrainConfig(...)) of the flat 53-field TrainConfig (main at 48d5b94): what a run of
# then wrote to OUT/train_summary.json, and, less its inputs and operational options, to OUT/options.json
OLD_FLAT = json.loads(
    """{"stage": "rcd", "model": "tiny-s", "data": "train.jsonl", "out": "runs/rcd",
    "reference": "runs/ref", "residual": {"residual": {"alpha": "entropy", "fixed_alpha": 0.3,
    "temperature": 1.0, "init": "zero", "reinit_blocks": false, "dirichlet_concentration": 1.0,
    "top_k": null, "feedback": "self", "rule": "rcd", "smooth_start": 0.15, "smooth_end": 0.3},
    "dropout": 0.3, "dropout_unit": "sample", "source": "self", "more_masked_fraction": 0.25,
    "unroll": 1}, "tokenizer": null, "attention": null, "block_length": null, "eval_data": "test.jsonl",
    "data_split": "train", "eval_split": "train", "prompt_field": "prompt", "response_field": "response",
    "messages_field": "messages", "group_by_length": false, "streaming": false, "cache_dir": null,
    "max_prompt_length": 256, "max_response_length": 256, "response_padding": "max", "overflow": "drop",
    "epochs": 1, "max_steps": 7, "batch_size": 4, "grad_accum": 1, "lr": 0.001, "weight_decay": 0.0,
    "warmup_steps": 0, "warmup_ratio": 0.1, "schedule": "cosine", "max_grad_norm": 1.0,
    "mixed_precision": "no", "dtype": null, "reference_dtype": null, "gradient_checkpointing": false,
    "seed": 3, "eps": 0.001, "log_every": 10, "eval_every": 0, "save_every": 5, "keep_checkpoints": 2,
    "resume": true, "overwrite": false, "cache_reference": false, "cache_top_k": 64, "lora_rank": 0,
    "lora_alpha": 16.0, "lora_targets": "q_proj,k_proj,v_proj,o_proj", "trust_remote_code": false,
    "progress": true, "report_to": "none", "run_name": null}"""
)


def test_a_config_saved_before_the_groups_reads_back_into_them_and_saves_alike():
    config = TrainConfig.from_saved(OLD_FLAT)
    assert (config.optim.lr, config.optim.max_steps, config.optim.warmup_ratio) == (1e-3, 7, 0.1)
    assert (config.dataset.data, config.runtime.out, config.models.reference) == (
        "train.jsonl",
        "runs/rcd",
        "runs/ref",
    )
    assert (config.residual.dropout, config.residual.source, config.seed) == (0.3, "self", 3)
    assert json.loads(json.dumps(config.saved())) == OLD_FLAT
    # the same run, spelled in flat options as the flags are
    assert config == TrainConfig.of(
        **{k: v for k, v in OLD_FLAT.items() if k != "residual"}, residual=config.residual
    )


def test_the_run_record_of_a_run_made_before_the_groups_is_unchanged(tmp_path):
    """A rerun into an old run's --out continues it only when its record matches OUT/options.json."""
    for name in ("train.jsonl", "test.jsonl"):
        (tmp_path / name).write_text('{"prompt": "1+1=", "response": "2"}\n')
    old = {**OLD_FLAT, "data": str(tmp_path / "train.jsonl"), "eval_data": str(tmp_path / "test.jsonl")}
    old["reference"] = str(tmp_path)  # a directory that exists
    config = TrainConfig.from_saved(old)
    options, inputs = train_record(config, config.residual)
    assert json.loads(json.dumps(options)) == {k: v for k, v in old.items() if k not in INPUTS + OPERATIONAL}
    assert inputs["model"] == {"preset": "tiny-s"} and inputs["data"] is not None


def test_configs_and_their_groups_are_frozen():
    config = TrainConfig.of(data="d.jsonl", out="o")
    for target, name in (
        (config, "stage"),
        (config.optim, "lr"),
        (config.dataset, "data"),
        (config.lora, "rank"),
    ):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(target, name, None)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: OptimConfig(batch_size=0), "--batch-size, --grad-accum and --epochs must be >= 1"),
        (lambda: OptimConfig(lr=float("nan")), "--lr must be > 0"),
        (lambda: OptimConfig(warmup_steps=5, warmup_ratio=0.1), "--warmup-ratio must lie in [0, 1)"),
        (lambda: OptimConfig(schedule="cosin"), "--schedule must be one of"),
        (lambda: DataConfig(), "a training run needs --data"),
        (lambda: DataConfig(data="d", response_padding="min"), "--response-padding must be one of"),
        (lambda: RuntimeConfig(), "a training run needs --out"),
        (lambda: RuntimeConfig(out="o", log_every=0), "--log-every >= 1"),
        (lambda: ModelConfig(attention="block-causal"), "give its --block-length"),
        (lambda: ModelConfig(dtype="bfloat16", mixed_precision="bf16"), "pass one of the two"),
        (lambda: LoraConfig(rank=-1), "--lora-rank must be >= 0"),
        (lambda: LoraConfig(rank=4, targets=" , "), "--lora-targets must name at least one module"),
        (lambda: TrainConfig.of(data="d", out="o", streaming=True), "--streaming needs --max-steps"),
        (lambda: TrainConfig.of(data="d", out="o", reference_dtype="bfloat16"), "--reference-dtype applies"),
        (lambda: TrainConfig.of(data="d", out="o", cache_top_k=0), "--cache-top-k must be >= 1"),
        (lambda: TrainConfig.of(data="d", out="o", lora_rank=4), "LoRA adapts a saved model"),
    ],
)
def test_each_group_refuses_a_bad_option_in_one_line_that_names_its_flag(build, message):
    with pytest.raises(ValueError) as err:
        build()
    assert message in str(err.value) and "\n" not in str(err.value)


def test_an_option_that_is_none_is_refused_by_name():
    with pytest.raises(TypeError, match="TrainConfig has no option bogus"):
        TrainConfig.of(data="d", out="o", bogus=1)


def test_the_learning_rate_default_depends_on_the_model_and_is_set_once():
    assert TrainConfig.of(data="d", out="o").optim.lr == 1e-3  # a tiny preset, from scratch
    assert TrainConfig.of(data="d", out="o", model="runs/ref").optim.lr == 1e-5  # fine-tuning
    assert TrainConfig.of(data="d", out="o", model="runs/ref", lr=2e-4).optim.lr == 2e-4


def test_the_demo_holds_the_optimiser_group_and_saves_its_options_as_before():
    demo = DemoConfig()
    assert isinstance(demo.optim, OptimConfig) and (demo.optim.batch_size, demo.optim.lr) == (32, 1.5e-3)
    saved = flat_dict(demo)
    assert (saved["batch_size"], saved["lr"]) == (32, 1.5e-3)
    assert "warmup_steps" not in saved  # no flag sets it
    # a report written before the groups (report.json's "config": batch_size and lr at the top level)
    old = {**json.loads(json.dumps(saved)), "batch_size": 16, "lr": 3e-4}
    again = dataclass_from_dict(DemoConfig, old)
    assert (again.optim.batch_size, again.optim.lr, again.optim.warmup_steps) == (16, 3e-4, 200)
    assert again == dataclasses.replace(demo, optim=dataclasses.replace(demo.optim, batch_size=16, lr=3e-4))


def test_a_checkpoint_declares_its_block_length_in_its_config_or_its_name():
    class Sdar:
        block_size = 4

    class Unsized:
        pass

    assert checkpoint_block_length(Sdar(), "x-b32") == 4
    assert checkpoint_block_length(Unsized(), "JetLM/SDAR-1.7B-Chat-b32") == 32
    assert checkpoint_block_length(Unsized(), "SDAR-1.7B-Chat") is None


@pytest.mark.parametrize(("flag", "trained"), [(None, 8), (4, 4)])
def test_training_a_saved_model_uses_one_block_length_from_flag_or_model(tmp_path, flag, trained):
    tok = rcd.char_tokenizer()
    model = rcd.tiny_model(
        len(tok),
        mask_token_id=tok.mask_token_id,
        eos_token_id=tok.eos_token_id,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        attention="block-causal",
        block_length=8,
    )
    model.save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    (tmp_path / "d.jsonl").write_text('{"prompt": "1+1=", "response": "2"}\n' * 4)
    config = TrainConfig.of(
        model=str(tmp_path / "model"),
        data=str(tmp_path / "d.jsonl"),
        out=str(tmp_path / "o"),
        block_length=flag,
    )
    trainer = Trainer(config)
    assert trainer.block_length == trained == trainer.module.block_length
