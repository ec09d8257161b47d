"""The application layer: one device rule, one generation-length rule that the demo and the sweep share."""

import pytest
import torch

from rcd.app import SweepJob, choose_device, generation_length, lengths, run_sweep
from rcd.data import write_jsonl
from rcd.demo import DemoConfig, prepare_data
from rcd.errors import UsageError
from rcd.eval.sweep import SweepConfig
from rcd.tokenizer import char_tokenizer
from test_bad_input import save_tiny


def test_generation_length_holds_the_longest_answer_in_units_every_setting_divides():
    tokenizer = char_tokenizer("0123456789")
    answers = ["1", "12345", "123"]  # the longest: 5 tokens, + EOS = 6
    assert generation_length(tokenizer, answers, None, (1, 2, 4, 8)) == 8
    assert generation_length(tokenizer, answers, None, (1, 3)) == 6
    assert generation_length(tokenizer, answers, 4, (1, 2)) == 8
    assert generation_length(tokenizer, answers, 4, (3,)) == 12  # lcm(4, 3)
    assert generation_length(tokenizer, ["1234567"], None, (1, 2, 4, 8)) == 8  # 7 + EOS fits exactly
    with pytest.raises(ValueError, match="no answers"):
        generation_length(tokenizer, [], None, (1,))


class Sized(Exception):
    pass


def test_demo_and_sweep_size_generation_by_the_one_rule(tmp_path, monkeypatch):
    calls = []

    def spy(tokenizer, answers, block_length, tokens_per_step):
        calls.append((list(answers), block_length, tuple(tokens_per_step)))
        raise Sized

    monkeypatch.setattr(lengths, "generation_length", spy)
    demo = DemoConfig(
        task="mul", n_train=4, n_test=2, block_length=4, sweep=SweepConfig(tokens_per_step=(1, 2))
    )
    with pytest.raises(Sized):
        prepare_data(demo, tmp_path / "demo")
    assert len(calls[0][0]) == 6 and calls[0][1:] == (4, (1, 2))

    save_tiny(tmp_path / "model")
    write_jsonl(
        tmp_path / "eval.jsonl", [{"prompt": "1+1=", "answer": "2"}, {"prompt": "2+2=", "response": "4"}]
    )
    job = SweepJob(
        model=str(tmp_path / "model"),
        data=str(tmp_path / "eval.jsonl"),
        block_length=8,
        settings=SweepConfig(tokens_per_step=(1, 4), thresholds=()),
    )
    with pytest.raises(Sized):
        run_sweep(job)
    assert calls[1] == (["2", "4"], 8, (1, 4))


def test_device_rule():
    assert choose_device("cpu") == "cpu"
    assert choose_device(None) == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="no CUDA GPU"):
            choose_device("cuda:0")


def test_sweep_job_refuses_what_the_sweep_sets_itself():
    with pytest.raises(UsageError, match="set by the sweep"):
        SweepJob(model="m", data="d", decode={"steps": 4})
    with pytest.raises(UsageError, match="nothing to sweep"):
        SweepJob(model="m", data="d", settings=SweepConfig(tokens_per_step=(), thresholds=()))
