"""The GPU study driver's sizing and checks (its pipeline: `python -m experiments.scale --quick`)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from experiments.arms import ARMS, GROUPS, METHODS
from experiments.scale import (
    CORE_OVERHEAD,
    SCALE_OPTIM,
    STAGE_SHARE,
    STEP_COST,
    ScaleConfig,
    build_parser,
    ref_steps_for,
    seconds_per_step,
)
from rcd.config import flat_dict


def test_every_group_names_known_arms_and_methods():
    assert {a for _, arms, _ in GROUPS for a in arms} <= set(ARMS)
    assert {m for *_, methods in GROUPS for m in methods} <= set(METHODS)
    assert GROUPS[0][0] == "core" and {"seqd", "rcd"} <= set(GROUPS[0][1])


def test_jobs_are_parsed_and_bad_ones_refused():
    config = ScaleConfig(jobs=["sudoku6:0,1", "chain_sum:2"])
    assert config.seeds() == [("sudoku6", 0), ("sudoku6", 1), ("chain_sum", 2)]
    with pytest.raises(ValueError, match="TASK:SEEDS"):
        ScaleConfig(jobs=["sudoku6"])
    with pytest.raises(ValueError, match="unknown task"):
        ScaleConfig(jobs=["sudoku9:0"])
    with pytest.raises(ValueError, match="ref_steps"):
        ScaleConfig(ref_steps=-1)


def test_the_probe_sizes_the_reference_to_the_time_left():
    config = ScaleConfig(core_share=0.5, min_ref_steps=300, max_ref_steps=4000)
    per_step, left = 0.1, 400.0
    cost = 1 + STAGE_SHARE * (STEP_COST["seqd"] + STEP_COST["rcd"])
    expected = 0.5 * left / (CORE_OVERHEAD * per_step * cost)
    steps = ref_steps_for(config, per_step, left)
    assert steps % 50 == 0 and expected - 50 < steps <= expected
    assert ref_steps_for(config, per_step / 2, left) >= 2 * steps - 50  # twice as fast: about twice the steps
    assert ref_steps_for(config, 100.0, left) == 300 and ref_steps_for(config, 1e-6, left) == 4000  # clamped
    assert ref_steps_for(ScaleConfig(ref_steps=550), per_step, left) == 550  # given: the probe is not asked


def test_seconds_per_step_drops_the_warm_up_window(tmp_path):
    rows = [
        {"step": 50, "loss": 2.0, "train_seconds": 30.0},  # includes start-up
        {"step": 100, "loss": 1.0, "train_seconds": 35.0},
        {"step": 150, "loss": 0.5, "train_seconds": 40.0},
        {"step": 150, "eval_loss": 0.4},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert seconds_per_step(tmp_path) == pytest.approx(0.1)


def test_groups_are_chosen_in_order_and_unknown_ones_refused():
    config = ScaleConfig(groups=["small-to-large", "core"], target_model="tiny-xl", model="tiny-m")
    assert [g for g, *_ in config.chosen()] == ["small-to-large", "core"]
    assert config.study("sudoku6", ref_steps=1, stage_steps=1).target_model == "tiny-xl"
    assert [g for g, *_ in ScaleConfig().chosen()] == [
        "core",
        "controls",
        "paper",
    ]  # small-to-large on request
    with pytest.raises(ValueError, match="unknown groups"):
        ScaleConfig(groups=["nope"])
    with pytest.raises(ValueError, match="choose a model"):
        ScaleConfig(groups=["small-to-large"], target_model="tiny-huge")
    with pytest.raises(ValueError, match="small-to-large only"):  # refused where it does not apply
        ScaleConfig(target_model="tiny-xl")


def test_the_training_flags_fill_the_optimiser_every_study_of_the_run_gets():
    """`--lr`, `--batch-size`, `--warmup-steps`: OptimConfig's options at the scale's defaults, handed
    to each study whole; scale.json's config keeps its old flat keys."""
    (config,) = build_parser().parse_args_into_dataclasses(["--lr", "1e-3", "--batch_size", "64"])
    assert config.optim == replace(SCALE_OPTIM, lr=1e-3, batch_size=64) and SCALE_OPTIM.warmup_steps == 100
    assert config.study("sudoku6", ref_steps=1, stage_steps=1).optim == config.optim
    quick = replace(config, quick=True).scaled()
    assert (quick.optim.batch_size, quick.optim.warmup_steps, quick.optim.lr) == (16, 5, 1e-3)
    assert (
        list(flat_dict(config))
        == (
            "out jobs model target_model groups budget core_share probe_steps ref_steps min_ref_steps max_ref_steps "
            "batch_size lr warmup_steps n_train n_test n_val quick"
        ).split()
    )
