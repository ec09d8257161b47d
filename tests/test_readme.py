"""The README's runnable commands, run exactly as written, so the docs cannot drift.

A fenced block whose info string is `bash local` (GitHub shows it as bash) uses only local
data and is run by this test, in order, in one fresh directory, with the `rcd` of this
checkout first on PATH. Other blocks (GPU runs, real checkpoints) are not run.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```", re.S | re.M)


def local_blocks(text: str) -> list[str]:
    return [body for info, body in FENCE.findall(text) if info.split()[:2] == ["bash", "local"]]


def test_readme_has_a_runnable_quick_start():
    blocks = "\n".join(local_blocks(README.read_text()))
    for command in ("rcd data", "rcd train", "rcd sweep"):
        assert command in blocks, f"no `bash local` block of the README runs {command}"


@pytest.mark.slow
def test_readme_local_blocks_run_as_written(tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for number, block in enumerate(local_blocks(README.read_text()), 1):
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=3600)
        assert done.returncode == 0, f"README block {number} failed:\n{block}\n{done.stderr[-3000:]}"
    # the quick start trains a working model, with the held-out loss the README states
    stated = float(re.search(r"held-out loss (\d\.\d+)", "\n".join(local_blocks(README.read_text())))[1])
    summary = json.loads((tmp_path / "runs/ref/train_summary.json").read_text())
    assert abs(summary["eval_loss"] - stated) < 0.02, summary["eval_loss"]
    curves = json.loads((tmp_path / "runs/sweep/report.json").read_text())["curves"]
    assert max(p["accuracy"] for points in curves.values() for p in points) > 0.1  # an untrained model: 0
