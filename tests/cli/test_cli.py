import re
import runpy
import sys
from pathlib import Path

import pytest

import rcd
from rcd.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_readme_python_example_runs(capsys):
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    scope = {}
    exec(compile(block, "README.md", "exec"), scope)
    out, tok, ids = scope["out"], scope["tok"], scope["ids"]
    assert out.generated.shape[0] == ids.shape[0] and out.generated.shape[1] > 0
    assert not (out.generated == tok.mask_token_id).any()  # every position decoded
    assert 0 < out.nfe <= out.generated.shape[1] and out.tokens_per_step >= 1
    assert capsys.readouterr().out.strip()  # the example prints its completions


def test_generate_command_with_saved_model(tmp_path, capsys):
    tok = rcd.char_tokenizer()
    model = rcd.tiny_model(len(tok), mask_token_id=tok.mask_token_id, seed=0)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    args = [
        "generate",
        "--model",
        str(tmp_path),
        "--prompt",
        "1+1=",
        "--prompt",
        "12+3=",
        "--gen-length",
        "8",
        "--block-length",
        "4",
        "--threshold",
        "0.5",
        "--rcd",
        "--res-temperature",
        "0.9",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "'1+1=' ->" in out and "'12+3=' ->" in out and "forward passes:" in out


def test_python_dash_m_rcd_help(monkeypatch, capsys):
    """`python -m rcd` runs rcd/__main__.py; here in this process (a fresh interpreter pays
    rcd's import again: the serve tests start `python -m rcd serve` in one)."""
    monkeypatch.setattr(sys, "argv", ["rcd", "--help"])
    with pytest.raises(SystemExit) as done:
        runpy.run_module("rcd", run_name="__main__", alter_sys=True)
    out = capsys.readouterr().out
    assert done.value.code == 0 and "generate" in out and "demo" in out
