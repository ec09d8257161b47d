"""Faults lose nothing: a resumed run continues exactly (in-process, mid-epoch), a damaged
checkpoint is passed over (or refused, naming the file), and a full disk during a checkpoint
or a prediction row keeps everything written before it and ends with one line."""

import errno
import json
import os
import shutil

import pytest
import torch
from safetensors.torch import load_file

from rcd.cli import main
from rcd.eval.predictions import RowWriter, read_rows
from rcd.train import TrainConfig, checkpoint, train
from rcd.train.checkpoint import CheckpointError, checkpoint_damage, latest_checkpoint
from rcd.train.trainer import Trainer
from test_bad_input import save_tiny, write_jsonl

STEPS, SAVE_EVERY = 6, 2  # 32 examples in batches of 8: 4 batches an epoch, so step 2 and 6 are mid-epoch


def no_space():
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    return write_jsonl(
        root / "train.jsonl", [{"prompt": f"{a}+{a}=", "response": str(2 * a)} for a in range(32)]
    )


def config(out, rows, **kw):
    base = {
        "model": "tiny-xs",
        "data": rows,
        "out": str(out),
        "batch_size": 8,
        "lr": 3e-3,
        "log_every": 1,
        "progress": False,
        "max_steps": STEPS,
        "save_every": SAVE_EVERY,
        "keep_checkpoints": 3,
    }
    return TrainConfig.of(**{**base, **kw})


def cli_args(out, rows):
    return [
        "train",
        "--model",
        "tiny-xs",
        "--data",
        rows,
        "--out",
        str(out),
        "--batch-size",
        "8",
        "--lr",
        "3e-3",
        "--log-every",
        "1",
        "--no-progress",
        "--max-steps",
        str(STEPS),
        "--save-every",
        str(SAVE_EVERY),
        "--keep-checkpoints",
        "3",
    ]


@pytest.fixture(scope="module")
def straight(tmp_path_factory, rows):
    """The uninterrupted run every interrupted one must equal."""
    out = tmp_path_factory.mktemp("straight")
    train(config(out, rows))
    return out


class Killed(Exception):
    """Stands for SIGKILL right after a checkpoint."""


def kill_after_checkpoint(monkeypatch, step):
    save = Trainer._save_checkpoint

    def save_then_die(self):
        save(self)
        if self.state.step == step:
            raise Killed

    monkeypatch.setattr(Trainer, "_save_checkpoint", save_then_die)


def assert_same_run(out, straight):
    def losses(path):
        return [(r["step"], r["loss"]) for r in read_rows(path / "metrics.jsonl") if "loss" in r]

    assert [s for s, _ in losses(out)] == [s for s, _ in losses(straight)]  # each step logged once
    assert [v for _, v in losses(out)] == pytest.approx([v for _, v in losses(straight)], rel=1e-6)
    a, b = load_file(out / "model.safetensors"), load_file(straight / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, rows):
    """A run killed after its checkpoint at step 4 (of 6): checkpoints at steps 2 and 4."""
    out = tmp_path_factory.mktemp("interrupted")
    with pytest.MonkeyPatch.context() as monkeypatch:
        kill_after_checkpoint(monkeypatch, 4)
        with pytest.raises(Killed):
            train(config(out, rows))
    assert sorted(p.name for p in checkpoint.checkpoints_dir(out).iterdir()) == [
        "step-00000002",
        "step-00000004",
    ]
    return out


def copy_of(run, tmp_path):
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run"


# ----------------------------------------------------------------- resume mid-epoch, in process
def test_resume_mid_epoch_gives_the_uninterrupted_run(interrupted, straight, tmp_path, rows):
    out = copy_of(interrupted, tmp_path)
    os.remove(out / "checkpoints" / "step-00000004" / "trainer_state.json")  # back to step 2: mid-epoch 0
    state = json.loads((out / "checkpoints" / "step-00000002" / "trainer_state.json").read_text())
    assert state["epoch"] == 0 and state["batch_in_epoch"] == 2
    train(config(out, rows))
    assert_same_run(out, straight)


# ----------------------------------------------------------------- damaged checkpoints
def truncate(path):
    os.truncate(path, path.stat().st_size // 2)


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("model.safetensors", truncate),
        ("optimizer.bin", truncate),
        ("trainer_state.json", lambda p: p.write_text('{"step": 4, "epo')),
    ],
)
def test_a_damaged_checkpoint_is_passed_over_for_the_one_before(
    interrupted, straight, tmp_path, rows, capsys, name, damage
):
    out = copy_of(interrupted, tmp_path)
    damage(out / "checkpoints" / "step-00000004" / name)
    path, notices = latest_checkpoint(out)
    assert path.name == "step-00000002" and len(notices) == 1 and name in notices[0]
    if name == "model.safetensors":  # the whole way: one notice, then the exact run
        train(config(out, rows))
        err = capsys.readouterr().err
        assert err.count("is damaged") == 1 and "resuming from step-00000002" in err
        assert_same_run(out, straight)


def test_without_an_intact_checkpoint_resume_is_refused_naming_the_file(interrupted, tmp_path, rows, capsys):
    out = copy_of(interrupted, tmp_path)
    truncate(out / "checkpoints" / "step-00000004" / "model.safetensors")
    (out / "checkpoints" / "step-00000002" / "trainer_state.json").write_text("not json")
    with pytest.raises(CheckpointError, match="step-00000004 is damaged \\(model.safetensors: .*no intact"):
        latest_checkpoint(out)
    assert main(cli_args(out, rows)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.safetensors" in err[0]


def test_intact_checkpoints_pass(interrupted):
    for path in checkpoint.checkpoints_dir(interrupted).iterdir():
        assert checkpoint_damage(path) is None


# ----------------------------------------------------------------- a full disk
def test_full_disk_during_a_checkpoint_keeps_the_previous_one(tmp_path, rows, straight, capsys, monkeypatch):
    out = tmp_path / "run"
    real_save = torch.save

    def fill_the_disk(obj, f, *args, **kwargs):
        if "step-00000004" in str(f):  # the second checkpoint's optimizer: half written, then ENOSPC
            with open(f, "wb") as partial:
                partial.write(b"PK\x03\x04 half an archive")
            raise no_space()
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", fill_the_disk)
    assert main(cli_args(out, rows)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert (
        "could not write checkpoint step-00000004 (No space left on device); step-00000002 is intact"
        in err[0]
    )
    checkpoints = sorted(p.name for p in checkpoint.checkpoints_dir(out).iterdir())
    assert (
        checkpoints == ["step-00000002"]
        and checkpoint_damage(checkpoint.checkpoints_dir(out) / checkpoints[0]) is None
    )
    monkeypatch.undo()
    assert main(cli_args(out, rows)) == 0  # space freed: the same command resumes
    assert_same_run(out, straight)


def test_full_disk_during_a_prediction_row_keeps_every_earlier_row(tmp_path, monkeypatch):
    path = tmp_path / "predictions.jsonl"
    rows = [{"index": i, "sample": 0, "completion": "x" * 40} for i in range(4)]
    with RowWriter(path) as writer:
        for row in rows[:3]:
            writer.write(row)
        before = path.read_bytes()
        real_write = os.write

        def fill_the_disk(fd, data):
            if fd != writer.fd:
                return real_write(fd, data)
            real_write(fd, data[:10])  # the disk takes 10 bytes of the row, then is full
            raise no_space()

        monkeypatch.setattr(os, "write", fill_the_disk)
        with pytest.raises(
            OSError,
            match="could not append a row to .*predictions.jsonl \\(No space left on "
            "device\\); its earlier rows are intact",
        ):
            writer.write(rows[3])
        monkeypatch.undo()
        assert path.read_bytes() == before and read_rows(path) == rows[:3]
        writer.write(rows[3])  # space freed: the next row starts on a line of its own
    assert read_rows(path) == rows


def test_a_short_write_is_completed(tmp_path, monkeypatch):
    path = tmp_path / "predictions.jsonl"
    real_write = os.write
    with RowWriter(path) as writer:
        monkeypatch.setattr(
            os, "write", lambda fd, data: real_write(fd, data[:7] if fd == writer.fd else data)
        )
        writer.write({"index": 0, "sample": 0, "completion": "a longer completion"})
    monkeypatch.undo()
    assert read_rows(path) == [{"index": 0, "sample": 0, "completion": "a longer completion"}]


def test_full_disk_during_eval_ends_with_one_line_and_resumes(tmp_path, monkeypatch, capsys):
    model = save_tiny(tmp_path / "model")
    data = write_jsonl(
        tmp_path / "gsm.jsonl", [{"question": f"{a}+{a}=?", "answer": f"#### {2 * a}"} for a in range(5)]
    )
    out = tmp_path / "eval"
    argv = [
        "eval",
        "--model",
        str(model),
        "--data",
        data,
        "--out",
        str(out),
        "--task",
        "gsm8k",
        "--shots",
        "0",
        "--gen-length",
        "8",
        "--block-length",
        "8",
        "--batch-size",
        "1",
    ]
    real_init, real_write, writers, calls = RowWriter.__init__, os.write, [], []

    def remember(self, path):
        real_init(self, path)
        writers.append(self.fd)

    def fill_the_disk(fd, data):
        if writers and fd == writers[-1]:
            calls.append(1)
            if len(calls) == 3:
                real_write(fd, data[:5])
                raise no_space()
        return real_write(fd, data)

    monkeypatch.setattr(RowWriter, "__init__", remember)
    monkeypatch.setattr(os, "write", fill_the_disk)
    assert main(argv) == 1
    monkeypatch.undo()
    err = [
        line for line in capsys.readouterr().err.splitlines() if line.startswith("rcd:")
    ]  # (and eval's bar)
    assert len(err) == 1 and "No space left on device" in err[0] and "earlier rows are intact" in err[0], err
    first = read_rows(out / "predictions.jsonl")
    assert [r["index"] for r in first] == [0, 1]
    assert main(argv) == 0
    rows = read_rows(out / "predictions.jsonl")
    assert [r["index"] for r in rows] == [0, 1, 2, 3, 4] and rows[:2] == first
