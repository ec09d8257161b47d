"""The demo's report states each accuracy with its standard error; the demo's torch threads."""

import math

import pytest
import torch

from rcd.demo import DemoConfig, torch_threads
from rcd.eval.report import markdown_table
from rcd.eval.sweep import accuracy_stderr


def point(setting, accuracy, n):
    return {"setting": setting, "accuracy": accuracy, "n": n, "tokens_per_step": 1.0}


def test_stderr_is_the_binomial_one():
    assert accuracy_stderr(0.5, 100) == pytest.approx(0.05)
    assert accuracy_stderr(0.6, 300) == pytest.approx(math.sqrt(0.24 / 300))
    assert accuracy_stderr(0.0, 300) == 0.0 and accuracy_stderr(1.0, 300) == 0.0


def test_table_shows_the_stderr_only_when_asked():
    curves = {"seqd": [point("steps=48", 0.6, 300)], "rcd": [point("steps=48", 0.5, 100)]}
    row = markdown_table(curves, stderr=True).splitlines()[-1]
    assert row == "| steps=48 | 60.0 ± 2.8% @ 1.00 | 50.0 ± 5.0% @ 1.00 |"
    assert "±" not in markdown_table(curves)  # the study's tables keep their format


def test_threads_are_set_for_the_demo_and_given_back():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads"):
        DemoConfig(threads=0)


def test_threads_left_out_keep_torchs_own():
    before = torch.get_num_threads()
    with torch_threads(None):
        assert torch.get_num_threads() == before
    assert DemoConfig().threads is None
