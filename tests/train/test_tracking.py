"""Experiment tracking through Accelerate's trackers, next to metrics.jsonl."""

import json

import pytest

from rcd.train import TrainConfig, train
from test_train import data, quick  # noqa: F401  (module fixture)


def test_report_to_tensorboard_logs_what_metrics_jsonl_logs(tmp_path, data):  # noqa: F811
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(quick(tmp_path, data, stage="ref", max_steps=4, log_every=2, report_to="tensorboard"))
    events = [p for p in tmp_path.rglob("events.out.tfevents.*")]
    assert events
    acc = EventAccumulator(str(events[0].parent)).Reload()
    logged = [(e.step, e.value) for e in acc.Scalars("loss")]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert logged == [(r["step"], pytest.approx(r["loss"])) for r in rows if "loss" in r]
    assert [e.step for e in acc.Scalars("eval_loss")] == [4]


def test_missing_tracker_package_fails_before_any_model_loads(tmp_path, monkeypatch):
    import accelerate.utils

    monkeypatch.setattr(accelerate.utils, "is_wandb_available", lambda: False)
    with pytest.raises(ValueError, match="pip install wandb"):
        TrainConfig.of(data="d.jsonl", out=str(tmp_path), report_to="wandb")
