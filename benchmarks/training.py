"""Training throughput of stage `seqd` vs stage `rcd`, and the small trained models the
other sections decode with.

On the `sort` task (word tokenizer, numbers as tokens), a tiny-s reference is trained
briefly from scratch (stage `ref`); `seqd` and `rcd` then continue from it for the same
number of steps on the same batches, `rcd` with the frozen reference supplying residuals.
tokens/s counts prompt + response tokens, as `rcd.train` reports them. The models are
only slightly trained (minutes of CPU): enough for peaked predictions, not for accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import rcd
from rcd.data import TASKS, make_splits, write_jsonl
from rcd.train import TrainConfig, train

TASK = "sort"


@dataclass(frozen=True)
class TrainedModels:
    task: str
    test_data: Path
    seqd: Path  # decoded with SeqD
    rcd: Path  # decoded with RCD


def run(work_dir: Path, quick: bool) -> tuple[dict, TrainedModels]:
    ref_steps, stage_steps = (60, 10) if quick else (300, 40)
    task = TASKS[TASK]
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
        TrainConfig(
            stage="ref",
            model="tiny-s",
            tokenizer=str(work_dir / "tokenizer"),
            out=str(ref),
            max_steps=ref_steps,
            log_every=ref_steps,
            **common,
        )
    )
    summaries = {}
    for stage in ("seqd", "rcd"):
        summaries[stage] = train(
            TrainConfig(
                stage=stage,
                model=str(ref),
                reference=str(ref) if stage == "rcd" else None,
                out=str(work_dir / stage),
                max_steps=stage_steps,
                log_every=stage_steps,
                **common,
            )
        )
    result = {
        "task": TASK,
        "model": "tiny-s (128x4), word tokenizer",
        "reference_steps": ref_steps,
        "steps": stage_steps,
        "batch_size": common["batch_size"],
        "device": summaries["seqd"]["device"],
    }
    for stage, summary in summaries.items():
        result[stage] = {
            "tokens_per_s": summary["tokens_per_second"],
            "step_ms": 1e3 * summary["train_seconds"] / summary["steps"],
            "final_loss": summary["final_loss"],
        }
    result["rcd_over_seqd_tokens_per_s"] = result["rcd"]["tokens_per_s"] / result["seqd"]["tokens_per_s"]
    return result, TrainedModels(TASK, work_dir / "test.jsonl", work_dir / "seqd", work_dir / "rcd")
