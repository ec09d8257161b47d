"""The study's statistics on hand-made paired data, and its command on a toy setting."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from experiments import study
from experiments.study import (
    StudyConfig,
    at_tokens_per_pass,
    beyond_ci,
    build_parser,
    calibrated_tau,
    cells_right,
    chosen_on_validation,
    comparison_line,
    is_rcd_recipe,
    multiplicity_note,
    paired_bootstrap,
    paired_difference,
    passes_to_reach,
    seed_t_interval,
)
from rcd.config import dataclass_from_dict, flat_dict


def test_identical_arms_give_a_zero_difference_inside_the_ci():
    rng = np.random.default_rng(1)
    a = (rng.random((3, 500)) < 0.6).astype(float)
    ci = paired_bootstrap(a, a.copy(), n_boot=500)
    assert ci["diff"] == 0 and ci["lo"] <= 0 <= ci["hi"]


def test_noisy_arms_of_one_distribution_have_a_ci_containing_zero():
    rng = np.random.default_rng(2)
    a, b = (rng.random((2, 3, 1000)) < 0.5).astype(float)
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


def simulated_studies(n_studies: int, n_seeds: int, n_problems: int, seed_spread: float, rng) -> np.ndarray:
    """(studies, 2 methods, seeds, problems) exact-match scores with no true difference: a
    problem's latent difficulty is shared by both methods and every seed; each (seed, method)
    gets its own skill offset (the seed x method spread); outcomes are probit draws. The two
    methods are exchangeable, so the expected difference is exactly 0."""
    difficulty = rng.normal(size=(n_studies, 1, 1, n_problems))
    skill = rng.normal(scale=seed_spread, size=(n_studies, 2, n_seeds, 1))
    noise = rng.normal(size=(n_studies, 2, n_seeds, n_problems))
    return (difficulty + skill + noise > 0).astype(float)


def test_the_reported_interval_covers_a_true_zero_with_five_seeds():
    """At a true difference of 0 and a large seed x method spread (per-seed differences of
    several points, problem noise ~2 points, as in the study), the reported 95% interval
    excludes 0 in <= 7% of studies; the percentile bootstrap it replaced fails the same test
    (so this test can fail)."""
    rng = np.random.default_rng(32)
    scores = simulated_studies(600, 5, 200, seed_spread=0.3, rng=rng)
    per_seed = (scores[:, 1] - scores[:, 0]).mean(axis=2)  # (studies, seeds)
    assert 0.05 < per_seed.std(axis=1, ddof=1).mean() < 0.2  # the spread the audit measured (SD 8.4 points)
    excluded = [beyond_ci(dict(zip(("lo", "hi"), seed_t_interval(d)))) for d in per_seed]
    assert np.mean(excluded) <= 0.07
    bootstrap = [paired_bootstrap(a, b, n_boot=200, seed=i) for i, (a, b) in enumerate(scores)]
    assert np.mean([ci["lo"] > 0 or ci["hi"] < 0 for ci in bootstrap]) > 0.07


def test_the_interval_widens_with_t_quantiles_and_is_undefined_with_one_seed():
    lo, hi = seed_t_interval(
        [0.161, 0.197, 0.01, 0.021, 0.122]
    )  # the fixed-alpha study's per-seed diffs at 4 tok/step
    assert (round(100 * lo, 1), round(100 * hi, 1)) == (
        -0.2,
        20.6,
    )  # t(4) = 2.78; the bootstrap had [+3.4, +16.8]
    assert seed_t_interval([0.05]) == (None, None)
    one_seed = paired_difference(np.zeros((1, 50)), np.ones((1, 50)), n_boot=100)
    assert one_seed["lo"] is None and not beyond_ci(one_seed) and one_seed["diff"] == 1.0
    row = {
        "base": "seqd",
        "new": "rcd",
        "setting": "steps=12",
        "at": "equal steps",
        "tokens_per_step": [4, 3.69],
        "correct": one_seed,
        "cells": one_seed,
        "why": "w",
    }
    assert "undefined: 1 seed" in comparison_line(row) and "**" not in comparison_line(row)
    agreeing = {"diff": -0.007, "lo": -0.009, "hi": -0.005, "boot_lo": -0.017, "boot_hi": 0.002}
    assert not beyond_ci(agreeing) and beyond_ci(
        agreeing | {"boot_hi": -0.001}
    )  # the problem noise counts too


def test_the_table_says_how_many_comparisons_and_that_none_is_corrected():
    ci = {"diff": 0.1, "lo": 0.05, "hi": 0.15, "per_seed": [0.1, 0.1]}
    rows = [
        {"at": "equal steps", "correct": ci},
        {"at": "equal passes", "correct": ci | {"lo": -0.1}},
        {"at": "equal tau", "correct": ci | {"lo": None, "hi": None}},
    ]
    note = multiplicity_note(rows)
    assert note.startswith("3 comparisons of exact match (1 at equal steps, 1 at equal passes")
    assert "2 with an interval, 1 beyond it" in note and "no multiplicity correction" in note


def test_the_baseline_is_interpolated_per_problem_to_the_challengers_passes():
    """SeqD at 2 and 4 tokens per pass, RCD at 3.69 (its warm-start pass): per problem, a weighted
    mean of SeqD's two scores, linear in log tokens per pass; none outside the measured range."""
    two = {"n": 2, "tokens_per_step": 2.0, "correct": [1, 1], "cells": [1.0, 0.5]}
    four = {"n": 2, "tokens_per_step": 4.0, "correct": [0, 1], "cells": [0.5, 0.5]}
    fixed = {"steps=24": {0: two}, "steps=12": {0: four}}
    point = at_tokens_per_pass(fixed, 0, 48 / 13)
    w = np.log2(48 / 13 / 2)
    assert point["correct"] == pytest.approx([1 - w, 1]) and point["cells"] == pytest.approx([1 - w / 2, 0.5])
    assert at_tokens_per_pass(fixed, 0, 4.0)["correct"] == pytest.approx([0, 1])
    assert at_tokens_per_pass(fixed, 0, 6.86) is None and at_tokens_per_pass(fixed, 1, 3.0) is None


def test_a_threshold_fix_is_decoded_with_its_options_and_paired_with_seqds_threshold_curve(tmp_path):
    """'thresholds' decodes the tau grid alone (validation and test) with the method's DecodeConfig
    options; its records pair with SeqD's by the rule's name, at equal tau and, SeqD's threshold curve
    interpolated per problem to the fix's measured tokens per pass, at equal passes."""
    config = StudyConfig(out=str(tmp_path), taus=[0.8, 0.9], seeds=[0], n_boot=50)
    spec = study.METHODS["rcd-fixedalpha margin"]
    settings = study.settings_of(spec, 48, config)
    assert [(split, s.threshold) for split, s in settings] == [
        ("val", 0.8),
        ("val", 0.9),
        ("test", 0.8),
        ("test", 0.9),
    ]
    assert replace(settings[0][1], **dict(spec.decode)).describe() == "tau=0.8 margin"

    def record(tokens_per_pass: float, correct: list[int]) -> dict:
        return {
            "n": 4,
            "rule": "threshold",
            "tokens_per_step": tokens_per_pass,
            "passes_per_problem": 48 / tokens_per_pass,
            "correct": correct,
            "cells": [float(c) for c in correct],
        }

    records = {
        ("seqd", "test", "tau=0.8"): {0: record(6.0, [1, 0, 1, 0])},
        ("seqd", "test", "tau=0.9"): {0: record(4.0, [1, 1, 1, 0])},
        ("rcd-fixedalpha margin", "test", "tau=0.9"): {0: record(5.0, [0, 1, 1, 1])},
    }
    rows = [
        r
        for r in study.summarise(records, config)["comparisons"]
        if (r["base"], r["new"]) == ("seqd", "rcd-fixedalpha margin")
    ]
    assert [r["at"] for r in rows] == ["equal tau", "equal passes"]
    w = np.log(5 / 4) / np.log(6 / 4)
    seqd_at_5 = (1 - w) * np.array([1, 1, 1, 0]) + w * np.array([1, 0, 1, 0])
    assert rows[0]["correct"]["diff"] == pytest.approx(0.0)
    assert rows[1]["correct"]["diff"] == pytest.approx(np.mean(np.array([0, 1, 1, 1]) - seqd_at_5))


def test_shapes_must_pair():
    with pytest.raises(ValueError, match="same"):
        paired_bootstrap(np.zeros((3, 10)), np.zeros((2, 10)))


def test_cells_right_counts_the_blanks_only():
    example = {"prompt": "1.3|.5.:", "answer": "123|456"}
    assert cells_right(example, "123|456") == 1.0
    assert cells_right(example, "103|056") == pytest.approx(1 / 3)  # 2 of the 3 blanks wrong
    assert cells_right(example, "") == 0.0
    assert cells_right({"prompt": "2+2=", "answer": "14"}, "15") == 0.5
    worked = {
        "prompt": "46+27=",
        "response": "46+27=73",
        "answer": "73",
    }  # chain_sum: the answer ends the response
    assert cells_right(worked, "46+27=73") == 1.0
    assert cells_right(worked, "46+27=74") == pytest.approx(7 / 8)


def test_calibration_picks_the_most_careful_threshold_that_is_parallel_enough():
    val = {0.6: {"tokens_per_step": 9.0}, 0.8: {"tokens_per_step": 5.0}, 0.9: {"tokens_per_step": 3.9}}
    assert calibrated_tau(val, 4.0) == 0.8
    assert calibrated_tau(val, 10.0) is None
    points = [{"accuracy": 0.6, "passes_per_problem": 48}, {"accuracy": 0.55, "passes_per_problem": 12}]
    assert passes_to_reach(points, 0.55) == 12 and passes_to_reach(points, 0.7) is None


def test_recipes_are_chosen_on_validation_scores_only():
    validation = {
        "rcd": {"steps=12": 0.2, "steps=6": 0.1},
        "rcd-fixedalpha": {"steps=12": 0.3, "steps=6": 0.05},
        "seqd": {"steps=12": 0.9},
    }
    candidates = [m for m in validation if is_rcd_recipe(m)]
    assert (
        candidates == ["rcd", "rcd-fixedalpha"]
        and not is_rcd_recipe("rcd-off")
        and not is_rcd_recipe("rcd order")
    )
    choices = chosen_on_validation(validation, candidates)
    assert list(choices) == ["steps=6", "steps=12"]
    assert choices["steps=12"]["chosen"] == "rcd-fixedalpha" and choices["steps=6"]["chosen"] == "rcd"


def test_bad_arm_fails_before_anything_runs():
    with pytest.raises(ValueError, match="unknown"):
        StudyConfig(arms=["nope"])


@pytest.mark.slow
def test_quick_study_end_to_end(tmp_path):
    from experiments.study import main

    out = tmp_path / "study"
    args = [
        "--quick",
        "--out",
        str(out),
        "--arms",
        "seqd",
        "rcd",
        "--methods",
        "seqd",
        "rcd",
        "rcd-off",
        "seqd order",
        "--tokens-per-step",
        "4",
        "8",
        "--taus",
        "0.5",
        "0.9",
    ]
    assert main(args) == 0
    summary = json.loads((out / "study.json").read_text())
    assert {"seqd", "rcd", "rcd-off", "seqd order"} <= set(summary["curves"])
    assert summary["curves"]["seqd"][0]["seeds"] == [0, 1]
    core = [c for c in summary["comparisons"] if (c["base"], c["new"]) == ("seqd", "rcd")]
    assert core and all(c["correct"]["lo"] <= c["correct"]["diff"] <= c["correct"]["hi"] for c in core)
    assert all(c["correct"]["boot_lo"] <= c["correct"]["boot_hi"] for c in core)
    assert {c["at"] for c in core} >= {"equal steps", "equal tau"}
    assert list(out.glob("seed0/decode/rcd/val-steps*.json")) and list(
        out.glob("seed0/decode/rcd/test-steps*.json")
    )
    assert summary["choices"] and all(ch["chosen"] == "rcd" for ch in summary["choices"].values())
    assert "chosen on the validation split" in (out / "study.md").read_text()
    assert "reliability" in summary and "seqd" in summary["reliability"]
    before = sorted(p.stat().st_mtime_ns for p in out.glob("seed*/decode/*/*.json"))
    assert main(args + ["--phases", "train", "decode"]) == 0  # a rerun skips every finished run
    assert sorted(p.stat().st_mtime_ns for p in out.glob("seed*/decode/*/*.json")) == before
    with pytest.raises(SystemExit, match="holds data made with"):  # another task's data is never adopted
        main(args + ["--task", "mul"])


@pytest.mark.slow  # trains two learned rules at toy size
def test_the_relatives_train_their_rules_parameters_and_decode_with_them(tmp_path):
    """Stage rcd trains a learned rule's module with the model (it leaves its starting values)
    and saves it beside the weights; the study decodes each relative and pairs it with SeqD."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from experiments.study import ARMS, main
    from rcd.residual_rules import residual_rule

    out = tmp_path / "study"
    relatives = ["rcd-softmask", "rcd-learned-alpha"]
    args = ["--quick", "--out", str(out), "--seeds", "0", "--tokens-per-step", "8", "--taus", "0.9"]
    assert (
        main([*args, "--arms", "seqd", *relatives, "--methods", "seqd", *relatives, "seqd itersmooth"]) == 0
    )
    for arm, rule in zip(relatives, ("soft-mask", "learned-alpha")):
        path = out / "seed0" / arm / "residual_rule.safetensors"
        with safe_open(str(path), "pt") as handle:
            assert handle.metadata()["rule"] == rule
        start = residual_rule(ARMS[arm].residual.residual).build_parameters(32).state_dict()
        trained = load_file(str(path))
        assert trained.keys() == start.keys()
        assert any(not torch.equal(trained[name], start[name]) for name in start)
    summary = json.loads((out / "study.json").read_text())
    pairs = {(c["base"], c["new"]) for c in summary["comparisons"]}
    assert {("seqd", "rcd-softmask"), ("seqd", "rcd-learned-alpha"), ("seqd", "seqd itersmooth")} <= pairs


@pytest.mark.slow  # trains the study's arms
def test_model_option_sizes_every_arm_and_another_size_is_refused(tmp_path):
    from experiments.study import main
    from rcd.rundir import RunMismatchError

    out = tmp_path / "study"
    args = [
        "--quick",
        "--out",
        str(out),
        "--seeds",
        "0",
        "--arms",
        "seqd",
        "--methods",
        "seqd",
        "--phases",
        "train",
    ]
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
    with pytest.raises(SystemExit):  # the library's choices of --mixed-precision
        build_parser().parse_args_into_dataclasses(["--mixed-precision", "fp8"])
    with pytest.raises(ValueError, match="--lr"):  # the library's check of the optimiser
        build_parser().parse_args_into_dataclasses(["--lr", "-1"])


# the keys of study.json's "config" as the study saved them before it held the library's groups
SAVED_KEYS = (
    "out task tokenizer model target_model seeds arms methods phases data_seed n_train n_test n_val ref_steps "
    "stage_steps batch_size lr warmup_steps mixed_precision eval_batch_size n_boot min_tokens_per_pass "
    "tokens_per_step taus select_on_val decode_limit threads quick"
).split()


def test_the_training_flags_fill_the_librarys_groups_and_every_stage_uses_them(monkeypatch):
    """`--lr` and the others are OptimConfig's / ModelConfig's options, under the study's old
    flags (both spellings) and defaults; each stage's TrainConfig gets them (warm-up capped)."""
    (default,) = build_parser().parse_args_into_dataclasses([])
    assert (default.optim.batch_size, default.optim.lr, default.optim.warmup_steps) == (64, 1e-3, 50)
    assert default.models.mixed_precision == "no" and default == StudyConfig()
    argv = ["--batch_size", "8", "--lr", "2e-3", "--warmup-steps", "7", "--mixed_precision", "bf16"]
    (config,) = build_parser().parse_args_into_dataclasses(argv + ["--ref-steps", "40", "--arms", "rcd"])
    assert (config.optim.batch_size, config.optim.lr, config.optim.warmup_steps) == (8, 2e-3, 7)
    assert list(flat_dict(config)) == SAVED_KEYS
    stages = []
    monkeypatch.setattr(study, "train", stages.append)
    meta = {"train": "train.jsonl", "val": "val.jsonl", "tokenizer": "tok", "gen_length": 24}
    study.train_seed(config, meta, 3, config.arms)
    assert [c.stage for c in stages] == ["ref", "rcd"]
    for c in stages:
        assert (c.optim.batch_size, c.optim.lr, c.optim.warmup_steps) == (8, 2e-3, 4)  # 40 // 10
        assert c.models.mixed_precision == "bf16" and c.seed == 3 and c.dataset.max_response_length == 24
    assert stages[0].models.model == "tiny-xs" and stages[1].models.reference.endswith("ref")


def test_an_old_run_directory_is_reported_with_the_old_config_keys(tmp_path):
    """`--phases report` over a run made before the groups: its data and per-problem records are
    read as they are, and study.json keeps the flat config that reads back into the same config."""
    from experiments.study import main

    out = tmp_path / "study"
    made_by = {"task": "sudoku6", "tokenizer": "char", "n_train": 20000, "n_test": 1000, "n_val": 300}
    (out / "data").mkdir(parents=True)
    (out / "data" / "meta.json").write_text(json.dumps({"gen_length": 48, "made_by": made_by}))
    rng = np.random.default_rng(0)
    for seed, method, steps in itertools.product((0, 1), ("seqd", "rcd"), (12, 6)):
        correct = (rng.random(20) < 0.5).astype(int).tolist()
        record = {
            "setting": f"steps={steps}",
            "rule": "fixed",
            "tokens_per_step": 48 / steps,
            "accuracy": float(np.mean(correct)),
            "n": 20,
            "forward_passes": 20 * steps,
            "seconds": 1.0,
            "extra": {},
            "method": method,
            "seed": seed,
            "split": "test",
            "passes_per_problem": float(steps),
            "correct": correct,
            "cells": [float(c) for c in correct],
        }
        path = out / f"seed{seed}" / "decode" / method / f"test-steps{steps}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
    argv = ["--out", str(out), "--seeds", "0", "1", "--phases", "report", "--n-boot", "100"]
    assert main(argv + ["--arms", "seqd", "rcd", "--methods", "seqd", "rcd"]) == 0
    summary = json.loads((out / "study.json").read_text())
    assert list(summary["config"]) == SAVED_KEYS and summary["config"]["lr"] == 1e-3
    assert (
        dataclass_from_dict(StudyConfig, summary["config"])
        == build_parser().parse_args_into_dataclasses(
            argv + ["--arms", "seqd", "rcd", "--methods", "seqd", "rcd"]
        )[0]
    )
    assert {(c["base"], c["new"], c["setting"]) for c in summary["comparisons"]} >= {
        ("seqd", "rcd", "steps=12"),
        ("seqd", "rcd", "steps=6"),
    }
    assert "# RCD study: sudoku6" in (out / "study.md").read_text()


@pytest.mark.slow  # trains the study's arms
def test_fresh_arms_are_new_target_models_trained_as_long_as_the_reference(tmp_path):
    from experiments.study import main

    out = tmp_path / "study"
    assert (
        main(
            [
                "--quick",
                "--out",
                str(out),
                "--seeds",
                "0",
                "--target-model",
                "tiny-s",
                "--arms",
                "seqd-fresh",
                "rcd-fresh",
                "--methods",
                "rcd-fresh",
                "--tokens-per-step",
                "8",
                "--phases",
                "train",
                "decode",
            ]
        )
        == 0
    )
    sizes = {
        arm: json.loads((out / "seed0" / arm / "config.json").read_text())["hidden_size"]
        for arm in ("ref", "seqd-fresh", "rcd-fresh")
    }
    assert sizes == {
        "ref": 64,
        "seqd-fresh": 128,
        "rcd-fresh": 128,
    }  # the smaller reference feeds the larger target
    steps = {
        arm: json.loads((out / "seed0" / arm / "train_summary.json").read_text())["steps"]
        for arm in ("ref", "seqd-fresh", "rcd-fresh")
    }
    assert len(set(steps.values())) == 1
    config = json.loads((out / "seed0" / "rcd-fresh" / "train_summary.json").read_text())["config"]
    assert config["reference"].endswith("ref") and config["model"] == "tiny-s"
    assert list((out / "seed0" / "decode" / "rcd-fresh").glob("test-*.json"))
    with pytest.raises(ValueError, match="choose a model"):
        StudyConfig(target_model="tiny-huge")


def test_the_demo_holds_out_problems_after_the_ones_it_leaves_out(tmp_path):
    from rcd.data import make_splits, read_jsonl
    from rcd.demo import DemoConfig, prepare_data

    config = DemoConfig(task="sort", n_train=50, n_test=20, held_out_offset=30)
    train_file, test_file, *_ = prepare_data(config, tmp_path)
    _, stream = make_splits("sort", 0, 50, 0)
    prompts = [r["prompt"] for r in read_jsonl(test_file)]
    assert prompts == [r["prompt"] for r in stream[30:50]]
    left_out = {r["prompt"] for r in stream[:30]}
    assert not left_out & {r["prompt"] for r in read_jsonl(train_file)}
    with pytest.raises(ValueError, match="held_out_offset"):
        DemoConfig(held_out_offset=-1)


@pytest.mark.slow
def test_the_demos_held_out_puzzles_are_none_of_the_studys_test_or_validation_puzzles(tmp_path):
    """The demo's recipe was chosen on the study's test puzzles: its held-out ones must be others."""
    from dataclasses import replace

    from experiments.study import prepare
    from rcd.data import read_jsonl
    from rcd.demo import DemoConfig, prepare_data

    study = prepare(
        StudyConfig(out=str(tmp_path / "study"), n_train=1)
    )  # the held-out sets do not depend on n_train
    _, demo_test, *_ = prepare_data(replace(DemoConfig(), n_train=1), tmp_path)
    demo = {r["prompt"] for r in read_jsonl(demo_test)}
    studied = {r["prompt"] for split in ("test", "val") for r in read_jsonl(study[split])}
    assert len(demo) == DemoConfig().n_test and len(studied) == 1300
    assert not demo & studied


def test_another_data_seed_draws_fresh_problems_and_is_never_mixed_with_the_first(tmp_path):
    """The replication's fresh test problems: `--data-seed` draws another stream; an --out holding
    the data of another seed is refused."""
    from dataclasses import replace

    from experiments.study import prepare
    from rcd.data import read_jsonl

    config = StudyConfig(out=str(tmp_path / "a"), task="sort", n_train=20, n_test=30, n_val=10)
    first = {r["prompt"] for r in read_jsonl(prepare(config)["test"])}
    fresh = {
        r["prompt"]
        for r in read_jsonl(prepare(replace(config, out=str(tmp_path / "b"), data_seed=1))["test"])
    }
    assert len(first) == len(fresh) == 30 and first != fresh
    with pytest.raises(SystemExit, match="holds data made with"):
        prepare(replace(config, data_seed=1))
