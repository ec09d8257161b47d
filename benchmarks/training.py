"""Training throughput of stage `seqd` vs stage `rcd`, and the small trained models the
other sections decode with.

On the `sort` task (word tokenizer, numbers as tokens), a tiny-s reference is trained
briefly from scratch (stage `ref`); `seqd` and `rcd` then continue from it for the same
number of steps on the same batches, `rcd` with the frozen reference supplying residuals
(the paper's source, and `self`, the demo's: one more no-grad pass of the target). Then two
epochs of stage `rcd` on a small subset, with and without `--cache-reference` (the second
epoch reuses the reference's cached top-k instead of running it). tokens/s counts prompt +
response tokens, as `rcd.train` reports them. The models are
only slightly trained (minutes of CPU): enough for peaked predictions, not for accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import rcd
from rcd.data import SYNTHETIC_TASKS, make_splits, write_jsonl
from rcd.train import ResidualTrainingConfig, TrainConfig, train

TASK = "sort"


@dataclass(frozen=True)
class TrainedModels:
    task: str
    test_data: Path
    seqd: Path  # decoded with SeqD
    rcd: Path  # decoded with RCD


def run(work_dir: Path, quick: bool) -> tuple[dict, TrainedModels]:
    ref_steps, stage_steps = (60, 10) if quick else (300, 40)
    task = SYNTHETIC_TASKS[TASK]
    train_rows, test_rows = make_splits(TASK, 2000, 32 if quick else 64, seed=0)
    write_jsonl(work_dir / "train.jsonl", train_rows)
    write_jsonl(work_dir / "test.jsonl", test_rows)
    rcd.word_tokenizer(task.words).save_pretrained(work_dir / "tokenizer")
    common = dict(
        data=str(work_dir / "train.jsonl"),
        batch_size=32,
        lr=3e-3,
        warmup_steps=10,
        max_prompt_length=32,
        max_response_length=24,
        progress=False,
    )
    ref = work_dir / "ref"
    train(
        TrainConfig.of(
            stage="ref",
            model="tiny-s",
            tokenizer=str(work_dir / "tokenizer"),
            out=str(ref),
            max_steps=ref_steps,
            log_every=ref_steps,
            **common,
        )
    )

    def stage(name: str, residual: ResidualTrainingConfig | None = None, steps: int = stage_steps, **extra):
        return train(
            TrainConfig.of(
                stage="seqd" if name == "seqd" else "rcd",
                model=str(ref),
                reference=None if name == "seqd" else str(ref),
                out=str(work_dir / name),
                max_steps=steps,
                log_every=steps,
                **{**common, **extra},
            ),
            residual,
        )

    summaries = {
        "seqd": stage("seqd"),
        "rcd": stage("rcd"),
        "rcd (source self)": stage("rcd-self", ResidualTrainingConfig(source="self")),
    }
    # two epochs over a subset of exactly stage_steps batches: the cache serves the second
    subset = work_dir / "subset.jsonl"
    write_jsonl(subset, train_rows[: stage_steps * common["batch_size"]])
    for name, cached in (("rcd, 2 epochs", False), ("rcd, 2 epochs, cached reference", True)):
        summaries[name] = stage(
            name.replace(" ", "").replace(",", "-"),
            steps=2 * stage_steps,
            data=str(subset),
            epochs=2,
            cache_reference=cached,
        )
    result = {
        "task": TASK,
        "model": "tiny-s (128x4), word tokenizer",
        "reference_steps": ref_steps,
        "steps": stage_steps,
        "batch_size": common["batch_size"],
        "device": summaries["seqd"]["device"],
    }
    for name, summary in summaries.items():
        result[name] = {
            "tokens_per_s": summary["tokens_per_second"],
            "step_ms": 1e3 * summary["train_seconds"] / summary["steps"],
            "final_loss": summary["final_loss"],
        }
    result["rcd_over_seqd_tokens_per_s"] = result["rcd"]["tokens_per_s"] / result["seqd"]["tokens_per_s"]
    result["cached_over_uncached_tokens_per_s"] = (
        result["rcd, 2 epochs, cached reference"]["tokens_per_s"] / result["rcd, 2 epochs"]["tokens_per_s"]
    )
    return result, TrainedModels(TASK, work_dir / "test.jsonl", work_dir / "seqd", work_dir / "rcd")
