"""docs/usage.md's `bash local` blocks run as written, in order, in one fresh directory (a file
of its own, so that under xdist it runs beside the README's quick start, not after it)."""

import json

import pytest

from test_readme import USAGE, local_blocks, run_local_blocks


def test_usage_runs_every_training_stage_and_the_comparison():
    blocks = "\n".join(local_blocks(USAGE.read_text()))
    for command in ("--config", "--stage seqd", "--stage rcd", "rcd generate", "--baseline"):
        assert command in blocks, f"no `bash local` block of docs/usage.md runs {command}"


@pytest.mark.slow
@pytest.mark.long  # three training runs and a sweep
def test_usage_local_blocks_run_as_written(tmp_path):
    run_local_blocks(USAGE, tmp_path)
    for stage in ("ref", "seqd", "rcd"):
        assert (tmp_path / "runs" / stage / "train_summary.json").exists(), stage
    summary = json.loads((tmp_path / "runs/ref/train_summary.json").read_text())
    assert summary["steps"] == 100, "the YAML file's max-steps did not reach the run"
    curves = json.loads((tmp_path / "runs/sweep/report.json").read_text())["curves"]
    assert {"seqd", "rcd", "rcd-cold"} <= set(curves), sorted(curves)
