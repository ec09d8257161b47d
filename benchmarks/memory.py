"""Training memory of stage `seqd` vs `rcd`, with and without activation checkpointing.

Each configuration trains in a fresh subprocess (no allocator cache or high-water mark
carried over from another), on the same data, model and steps. Memory is the peak growth
while `Trainer.train()` runs, above the memory held after setup (model, reference,
optimizer built): on CUDA `torch.cuda.max_memory_allocated`, on CPU the process's peak RSS
(VmHWM, reset just before training; see `benchmarks.measure.PeakMemory`). RSS counts every
allocation of the process (the allocator's free lists included), so on CPU it is an upper
bound of the tensors alive at the peak; the side-by-side ratio is the point. tokens/s is
`rcd.train`'s own figure (prompt + response tokens), the price of recomputation.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rcd.data import write_jsonl
from rcd.train import TrainConfig, train

MODEL = "tiny-m"
CONFIGS = (("seqd", False), ("seqd", True), ("rcd", False), ("rcd", True))


def rows(n: int, response_length: int) -> list[dict]:
    """Long responses, so activations (not weights) dominate the training peak."""
    return [
        {"prompt": f"copy {i}: ", "response": ("abcdefghij"[i % 10] + "0123456789") * (response_length // 11)}
        for i in range(n)
    ]


def run(work_dir: Path, quick: bool, threads: int = 1) -> dict:
    batch, length, steps = (8, 128, 2) if quick else (16, 256, 4)
    data = work_dir / "memory.jsonl"
    write_jsonl(data, rows(batch * steps, length))
    common = dict(
        data=str(data),
        batch_size=batch,
        max_prompt_length=16,
        max_response_length=length,
        max_steps=steps,
        log_every=steps,
        lr=1e-4,
        progress=False,
    )
    reference = work_dir / "memory-ref"
    train(TrainConfig.of(stage="ref", model=MODEL, out=str(reference), **{**common, "max_steps": 1}))
    result = {"model": MODEL, "batch_size": batch, "response_length": length, "steps": steps, "rows": []}
    for stage, checkpointing in CONFIGS:
        options = dict(
            common,
            stage=stage,
            model=str(reference),
            reference=str(reference) if stage == "rcd" else None,
            out=str(work_dir / f"memory-{stage}-{int(checkpointing)}"),
            gradient_checkpointing=checkpointing,
        )
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.memory", json.dumps({"config": options, "threads": threads})],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        measured = json.loads(out.strip().splitlines()[-1])
        result["rows"].append({"stage": stage, "gradient_checkpointing": checkpointing, **measured})
        result["method"] = measured.pop("method")
    by = {(r["stage"], r["gradient_checkpointing"]): r for r in result["rows"]}
    for stage in ("seqd", "rcd"):
        off, on = by[(stage, False)], by[(stage, True)]
        if off["training_peak_mb"] and on["training_peak_mb"] is not None:
            result[f"{stage}_checkpointing_memory_ratio"] = on["training_peak_mb"] / off["training_peak_mb"]
        result[f"{stage}_checkpointing_tokens_per_s_ratio"] = on["tokens_per_s"] / off["tokens_per_s"]
    if by[("seqd", False)]["training_peak_mb"] and by[("rcd", False)]["training_peak_mb"] is not None:
        result["rcd_over_seqd_memory"] = (
            by[("rcd", False)]["training_peak_mb"] / by[("seqd", False)]["training_peak_mb"]
        )
    result["device"] = by[("seqd", False)]["device"]
    return result


def worker(spec: dict) -> dict:
    """One configuration, in this (fresh) process: setup, then the measured training."""
    import torch

    from benchmarks.measure import PeakMemory
    from rcd.train import Trainer

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    trainer = Trainer(TrainConfig.of(**spec["config"]))
    meter = PeakMemory(trainer.accelerator.device)
    with meter.measure():
        summary = trainer.train()
    return {
        "training_peak_mb": None if meter.bytes is None else meter.bytes / 2**20,
        "tokens_per_s": summary["tokens_per_second"],
        "final_loss": summary["final_loss"],
        "device": summary["device"],
        "method": meter.method,
    }


if __name__ == "__main__":
    print(json.dumps(worker(json.loads(sys.argv[1]))))
