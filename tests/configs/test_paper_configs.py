"""The paper's setups ship as option files (`rcd.configs`, `paper/*.yaml`): each one parses
through the real command line into validated configs (no model loads), by short name or path."""

import pytest

from rcd.cli import main
from rcd.configs import options_file, shipped_names
from rcd.decode.policy import FixedSchedule, Threshold

PAPER = [name for name in shipped_names() if name.startswith("paper/")]
TRAINING = ["paper/llada-ref", "paper/llada-rcd", "paper/sdar-ref", "paper/sdar-rcd", "paper/sdar-seqd"]
EVALS = sorted(set(PAPER) - set(TRAINING))


def test_every_setup_ships():
    setups = ("llada-gsm8k", "llada-minerva", "sdar-gsm8k", "sdar-math500", "sdar-aime")
    assert set(TRAINING) <= set(PAPER)
    assert set(EVALS) == {f"paper/{s}" for s in setups} | {f"paper/{s}-seqd" for s in setups}


@pytest.fixture
def evaluations(monkeypatch):
    from rcd.cli import eval as eval_command

    calls = []
    monkeypatch.setattr(eval_command, "evaluate", lambda model, out, **options: calls.append(options))
    return calls


@pytest.fixture
def trainings(monkeypatch):
    from rcd.cli import train as train_command

    calls = []
    monkeypatch.setattr(train_command, "train", lambda config: calls.append(config) or {})
    return calls


@pytest.mark.parametrize("name", EVALS)
def test_each_evaluation_parses_into_valid_configs(name, evaluations):
    assert main(["eval", "--config", name, "--model", "M", "--reference", "R", "--out", "O"]) == 0
    options = evaluations[0]
    decode, residual, load = options["decode"], options["residual"], options["load_config"]
    assert load.trust_remote_code and load.dtype == "bfloat16" and decode.temperature in (0.0, 0.6)
    assert (residual is None) == name.endswith("-seqd")
    if "llada" in name:  # one block of 512, one token per step; T_res 0.92 / 0.98 with the warm start
        assert (decode.gen_length, decode.block_length, decode.steps) == (512, 512, 512)
        assert isinstance(decode.policy(), FixedSchedule) and decode.tokens_per_step == 1
        if residual is not None:
            assert residual.init == "reference" and residual.temperature == (
                0.92 if "gsm8k" in name else 0.98
            )
    else:  # SDAR: block 64, 64 steps per block, threshold 0.85 (low_confidence_dynamic), cold start
        policy = decode.policy()
        assert isinstance(policy, Threshold) and (policy.threshold, policy.steps_per_block) == (0.85, 64)
        assert decode.gen_length == 16384 and options["config"].chat and decode.stop_at_eos
        if residual is not None:
            assert residual.init == "zero" and residual.alpha == "entropy"
    if "aime" in name:
        assert options["config"].n_samples == 16 and decode.temperature == 0.6


@pytest.mark.parametrize("name", TRAINING)
def test_each_training_stage_parses_into_a_valid_config(name, trainings):
    reference = ["--reference", "R"] if name.endswith("-rcd") else []
    assert main(["train", "--config", name, "--out", "O", *reference]) == 0
    config = trainings[0]
    optim, data = config.optim, config.dataset
    assert optim.lr == 1e-5 and config.models.mixed_precision == "bf16" and config.models.trust_remote_code
    if "llada" in name:  # 2 x 48 per device, cosine, 2048 tokens
        assert (optim.batch_size, optim.grad_accum, optim.schedule, optim.epochs) == (2, 48, "cosine", 5)
        assert data.max_prompt_length + data.max_response_length == 2048
    else:  # 1 x 12 per device, constant after 3% warm-up, 8192 tokens; the 1.7B reference 10 epochs
        assert (optim.batch_size, optim.grad_accum, optim.schedule) == (1, 12, "constant_with_warmup")
        assert optim.warmup_ratio == 0.03 and data.max_prompt_length + data.max_response_length == 8192
        assert optim.epochs == (10 if name.endswith("-ref") else 5)
    if name.endswith("-rcd"):
        assert config.residual.residual.temperature == 1.0 and config.residual.source == "noisy"


def test_a_path_works_as_well_as_a_name_and_flags_override(evaluations, tmp_path):
    path = options_file("paper/sdar-aime")
    assert path.is_file() and options_file("paper/sdar-aime.yaml") == path
    assert main(["eval", "--config", str(path), "--model", "M", "--out", "O", "--task", "aime25"]) == 0
    assert evaluations[0]["config"].task == "aime25" and evaluations[0]["decode"].threshold == 0.85


def test_an_unknown_name_lists_the_shipped_ones(capsys):
    assert main(["eval", "--config", "paper/llada-gsm8", "--model", "M", "--out", "O"]) == 2
    err = capsys.readouterr().err
    assert "--config paper/llada-gsm8: cannot read it" in err and "paper/llada-gsm8k" in err
