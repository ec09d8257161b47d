"""The README and docs/usage.md: their runnable commands run exactly as written, their links resolve,
and the README stays a guide (short), so the docs cannot drift.

A fenced block whose info string is `bash local` (GitHub shows it as bash) uses only local
data and is run by this test, a document's blocks in order in one fresh directory, with the
`rcd` of this checkout first on PATH. Other blocks (GPU runs, real checkpoints) are not run.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
USAGE = ROOT / "docs" / "usage.md"
README_MAX_BYTES = 12_000  # a guide; the reference lives in docs/
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```", re.S | re.M)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
INLINE_CODE = re.compile(r"`[^`\n]*`")


def local_blocks(text: str) -> list[str]:
    return [body for info, body in FENCE.findall(text) if info.split()[:2] == ["bash", "local"]]


def relative_links(text: str) -> list[str]:
    prose = INLINE_CODE.sub("", FENCE.sub("", text))
    return [target for target in LINK.findall(prose) if not re.match(r"[a-z]+:|#", target)]


def test_readme_is_a_guide_not_a_manual():
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, (
        f"README.md is {size} bytes (at most {README_MAX_BYTES}): move reference to docs/"
    )


def test_readme_has_a_runnable_quick_start():
    blocks = "\n".join(local_blocks(README.read_text()))
    for command in ("rcd data", "rcd train", "rcd sweep"):
        assert command in blocks, f"no `bash local` block of the README runs {command}"


DOCUMENTS = [
    README,
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "benchmarks" / "README.md",
    *sorted((ROOT / "experiments").rglob("*.md")),
]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_existing_files(document):
    missing = [
        target
        for target in relative_links(document.read_text())
        if not (document.parent / target.split("#")[0]).exists()
    ]
    assert not missing, f"{document.relative_to(ROOT)} links to missing files: {missing}"


def test_link_finder_sees_links_and_skips_urls_anchors_and_code():
    text = "[a](docs/x.md#s) ![b](p.png) [c](https://x.org) [d](#top) `[e](f.md)`\n```\n[g](h.md)\n```\n"
    assert relative_links(text) == ["docs/x.md#s", "p.png"]


def run_local_blocks(document: Path, cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    blocks = local_blocks(document.read_text())
    assert blocks, f"{document.name} has no `bash local` block"
    for number, block in enumerate(blocks, 1):
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=3600,
        )
        assert done.returncode == 0, f"{document.name} block {number} failed:\n{block}\n{done.stderr[-3000:]}"
    return "\n".join(blocks)


@pytest.mark.slow
@pytest.mark.long  # the quick start trains 2000 steps
def test_readme_local_blocks_run_as_written(tmp_path):
    blocks = run_local_blocks(README, tmp_path)
    # the quick start trains a working model, with the held-out loss the README states
    stated = float(re.search(r"held-out loss (\d\.\d+)", blocks)[1])
    summary = json.loads((tmp_path / "runs/ref/train_summary.json").read_text())
    assert abs(summary["eval_loss"] - stated) < 0.02, summary["eval_loss"]
    curves = json.loads((tmp_path / "runs/sweep/report.json").read_text())["curves"]
    assert max(p["accuracy"] for points in curves.values() for p in points) > 0.1  # an untrained model: 0
