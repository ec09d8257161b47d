"""The study's statistics on hand-made paired data, and its command on a toy setting."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.study import StudyConfig, calibrated_tau, cells_right, paired_bootstrap, passes_to_reach


def test_identical_arms_give_a_zero_difference_inside_the_ci():
    rng = np.random.default_rng(1)
    a = (rng.random((3, 500)) < 0.6).astype(float)
    ci = paired_bootstrap(a, a.copy(), n_boot=500)
    assert ci["diff"] == 0 and ci["lo"] <= 0 <= ci["hi"]


def test_noisy_arms_of_one_distribution_have_a_ci_containing_zero():
    rng = np.random.default_rng(2)
    a, b = ((rng.random((2, 3, 1000)) < 0.5).astype(float))
    ci = paired_bootstrap(a, b, n_boot=1000)
    assert ci["lo"] < 0 < ci["hi"] and ci["hi"] - ci["lo"] < 0.12


def test_a_constant_shift_is_found_and_excludes_zero():
    rng = np.random.default_rng(3)
    a = rng.random((3, 400))
    ci = paired_bootstrap(a, a + 0.05, n_boot=500)
    assert ci["diff"] == pytest.approx(0.05) and 0 < ci["lo"] <= ci["hi"]
    assert ci["per_seed"] == pytest.approx([0.05] * 3)


def test_pairing_removes_the_problem_difficulty_from_the_ci():
    """Hard and easy problems shared by both arms: a paired CI is tighter than the spread of a
    per-problem difficulty would allow, and a 3-point gain on the same problems is resolved."""
    rng = np.random.default_rng(4)
    difficulty = rng.random(1000)
    a = (difficulty[None, :] < 0.5).astype(float).repeat(3, 0)
    b = a.copy()
    flip = rng.choice(np.flatnonzero(a[0] == 0), 30, replace=False)
    b[:, flip] = 1.0
    ci = paired_bootstrap(a, b, n_boot=1000)
    assert ci["diff"] == pytest.approx(0.03) and ci["lo"] > 0


def test_seed_noise_widens_the_ci():
    """One seed far off the others: the CI must cover the seeds' disagreement."""
    a = np.zeros((3, 300))
    b = np.zeros((3, 300))
    b[0, :60] = 1.0  # seed 0: +20 points, seeds 1 and 2: 0
    ci = paired_bootstrap(a, b, n_boot=2000)
    assert ci["lo"] <= 0.01 and ci["hi"] >= 0.15


def test_shapes_must_pair():
    with pytest.raises(ValueError, match="same"):
        paired_bootstrap(np.zeros((3, 10)), np.zeros((2, 10)))


def test_cells_right_counts_the_blanks_only():
    example = {"prompt": "1.3|.5.:", "answer": "123|456"}
    assert cells_right(example, "123|456") == 1.0
    assert cells_right(example, "103|056") == pytest.approx(1 / 3)  # 2 of the 3 blanks wrong
    assert cells_right(example, "") == 0.0
    assert cells_right({"prompt": "2+2=", "answer": "14"}, "15") == 0.5
    worked = {"prompt": "46+27=", "response": "46+27=73", "answer": "73"}  # chain_sum: the answer ends the response
    assert cells_right(worked, "46+27=73") == 1.0
    assert cells_right(worked, "46+27=74") == pytest.approx(7 / 8)


def test_calibration_picks_the_most_careful_threshold_that_is_parallel_enough():
    val = {0.6: {"tokens_per_step": 9.0}, 0.8: {"tokens_per_step": 5.0}, 0.9: {"tokens_per_step": 3.9}}
    assert calibrated_tau(val, 4.0) == 0.8
    assert calibrated_tau(val, 10.0) is None
    points = [{"accuracy": 0.6, "passes_per_problem": 48}, {"accuracy": 0.55, "passes_per_problem": 12}]
    assert passes_to_reach(points, 0.55) == 12 and passes_to_reach(points, 0.7) is None


def test_bad_arm_fails_before_anything_runs():
    with pytest.raises(ValueError, match="unknown"):
        StudyConfig(arms=["nope"])


@pytest.mark.slow
def test_quick_study_end_to_end(tmp_path):
    from benchmarks.study import main

    out = tmp_path / "study"
    args = ["--quick", "--out", str(out), "--arms", "seqd", "rcd", "--methods", "seqd", "rcd", "rcd-off", "seqd order",
            "--tokens-per-step", "4", "8", "--taus", "0.5", "0.9"]
    assert main(args) == 0
    summary = json.loads((out / "study.json").read_text())
    assert {"seqd", "rcd", "rcd-off", "seqd order"} <= set(summary["curves"])
    assert summary["curves"]["seqd"][0]["seeds"] == [0, 1]
    core = [c for c in summary["comparisons"] if (c["base"], c["new"]) == ("seqd", "rcd")]
    assert core and all(c["correct"]["lo"] <= c["correct"]["diff"] <= c["correct"]["hi"] for c in core)
    assert "reliability" in summary and "seqd" in summary["reliability"]
    before = sorted(p.stat().st_mtime_ns for p in out.glob("seed*/decode/*/*.json"))
    assert main(args + ["--phases", "train", "decode"]) == 0  # a rerun skips every finished run
    assert sorted(p.stat().st_mtime_ns for p in out.glob("seed*/decode/*/*.json")) == before
    with pytest.raises(SystemExit, match="holds data made with"):  # another task's data is never adopted
        main(args + ["--task", "mul"])


@pytest.mark.slow  # trains the study's arms
def test_model_option_sizes_every_arm_and_another_size_is_refused(tmp_path):
    from benchmarks.study import main
    from rcd.rundir import RunMismatchError

    out = tmp_path / "study"
    args = ["--quick", "--out", str(out), "--seeds", "0", "--arms", "seqd", "--methods", "seqd", "--phases", "train"]
    assert main(args + ["--model", "tiny-s"]) == 0
    for stage in ("ref", "seqd"):
        config = json.loads((out / "seed0" / stage / "config.json").read_text())
        assert (config["hidden_size"], config["num_hidden_layers"]) == (128, 4)
    with pytest.raises(RunMismatchError, match="another --out"):  # the tiny-s reference is never mixed in
        main(args + ["--model", "tiny-xs"])


def test_unknown_model_or_tokenizer_fails_when_the_config_is_built():
    with pytest.raises(ValueError, match="choose a model"):
        StudyConfig(model="tiny-huge")
    with pytest.raises(ValueError, match="tokenizer char or word"):
        StudyConfig(tokenizer="bpe")
    with pytest.raises(ValueError, match="unknown task"):
        StudyConfig(task="sudoku9")
    with pytest.raises(ValueError, match="mixed_precision"):
        StudyConfig(mixed_precision="fp8")


@pytest.mark.slow  # trains the study's arms
def test_fresh_arms_are_new_target_models_trained_as_long_as_the_reference(tmp_path):
    from benchmarks.study import main

    out = tmp_path / "study"
    assert main(["--quick", "--out", str(out), "--seeds", "0", "--target-model", "tiny-s", "--arms", "seqd-fresh",
                 "rcd-fresh", "--methods", "rcd-fresh", "--tokens-per-step", "8", "--phases", "train", "decode"]) == 0
    sizes = {arm: json.loads((out / "seed0" / arm / "config.json").read_text())["hidden_size"]
             for arm in ("ref", "seqd-fresh", "rcd-fresh")}
    assert sizes == {"ref": 64, "seqd-fresh": 128, "rcd-fresh": 128}  # the smaller reference feeds the larger target
    steps = {arm: json.loads((out / "seed0" / arm / "train_summary.json").read_text())["steps"]
             for arm in ("ref", "seqd-fresh", "rcd-fresh")}
    assert len(set(steps.values())) == 1
    config = json.loads((out / "seed0" / "rcd-fresh" / "train_summary.json").read_text())["config"]
    assert config["reference"].endswith("ref") and config["model"] == "tiny-s"
    assert list((out / "seed0" / "decode" / "rcd-fresh").glob("test-*.json"))
    with pytest.raises(ValueError, match="choose a model"):
        StudyConfig(target_model="tiny-huge")
