"""The study (`experiments.study`) at a scale a CPU cannot reach, in one timed run on one GPU.

    python -m experiments.scale --out runs/scale --budget 480     # a GPU machine: ~8 minutes
    python -m experiments.scale --out /tmp/scale --quick          # the pipeline at toy size (CPU)
    python -m experiments.scale --out runs/s2l --model tiny-m --target-model tiny-xl \
        --groups small-to-large --ref-steps 550 --jobs sudoku6:0,1,2,3,4,5,6,7   # small-to-large

Every (task, seed) of `--jobs` runs the study in its own process, all at once on the one
device (small models leave a GPU idle between one process's kernels; CUDA time-slices the
processes). A toy run of every code path (`OUT/smoke`) goes first, next to the probe.
The training lengths come from a probe, never from results: every process first
trains the reference for `--probe-steps` steps at the same time, and their seconds per step
under that load size the reference (R steps) and stage 2 (R/2 steps each arm) so that the
core group of every seed should end within `--core-share` of the budget (`--ref-steps R`
skips the probe: to repeat a run's lengths, or to resume it in the same OUT). Then each
process runs the groups of `--groups` (`experiments.arms.GROUPS`) in order (each a study call: train its arms, decode its
methods); at the end of the budget the processes still running are stopped, and each task's
report (`OUT/TASK/study.md`, `.json`, `-pareto.png`) is made from whatever was decoded (a
record is one file; the report says which seeds each row has). `OUT/scale.json` keeps the
probe, the lengths chosen, the device and what every process finished.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from rcd.config import flat_dict
from rcd.train import ModelConfig, OptimConfig

from .arms import GROUPS, Group
from .options import group
from .study import LOG_EVERY, StudyConfig, prepare, report
from .study import run as run_study

if TYPE_CHECKING:
    from .options import DriverParser

# cost of a training step relative to a plain one: stage rcd with source `self` adds a
# reference pass and a no-grad target pass (a forward is about a third of forward + backward)
STEP_COST = {"seqd": 1.0, "rcd": 1.67}
STAGE_SHARE = 0.5  # stage-2 steps per reference step
# wall time of the core groups (training, model loads, decoding) over their training alone:
# 1.8 on an H200 (tiny-xl, 1300 problems decoded per setting, 8 processes)
CORE_OVERHEAD = 1.8
# the optimiser of every stage at this scale (the study caps the warm-up at a tenth of the reference's steps)
SCALE_OPTIM = OptimConfig(batch_size=128, lr=5e-4, warmup_steps=100)


@dataclass
class ScaleConfig:
    out: str = field(default="runs/scale", metadata={"help": "output directory"})
    jobs: list[str] = field(
        default_factory=lambda: ["sudoku6:0,1,2,3,4", "chain_sum:0,1,2"],
        metadata={"help": "TASK:SEEDS, one process per seed"},
    )
    model: str = field(
        default="tiny-xl", metadata={"help": "tiny preset of the reference and the arms fine-tuned from it"}
    )
    target_model: str = field(
        default="", metadata={"help": "tiny preset of the new targets of small-to-large (default: --model)"}
    )
    groups: list[str] = field(
        default_factory=lambda: [g.name for g in GROUPS[:3]],
        metadata={"help": f"groups run, in order: {[g.name for g in GROUPS]}"},
    )
    budget: float = field(default=480.0, metadata={"help": "wall seconds for probe, training and decoding"})
    core_share: float = field(
        default=0.5, metadata={"help": "share of the budget the core groups are sized to"}
    )
    probe_steps: int = field(
        default=150, metadata={"help": "reference steps of the probe (the first 50 are its warm-up)"}
    )
    ref_steps: int = field(
        default=0, metadata={"help": "reference steps of every task (0: sized by the probe)"}
    )
    min_ref_steps: int = field(
        default=300, metadata={"help": "the probe's reference length never goes below this"}
    )
    max_ref_steps: int = field(default=4000, metadata={"help": "... nor above this"})
    optim: OptimConfig = group(
        SCALE_OPTIM, "training: the optimiser of every stage", "batch_size", "lr", "warmup_steps"
    )
    n_train: int = field(default=50000, metadata={"help": "training problems per task"})
    n_test: int = field(default=1000, metadata={"help": "held-out test problems"})
    n_val: int = field(default=300, metadata={"help": "validation problems"})
    quick: bool = field(default=False, metadata={"help": "toy size on a CPU: checks the pipeline"})

    def __post_init__(self) -> None:
        for job in self.jobs:
            task, _, seeds = job.partition(":")
            if not task or not seeds or not all(s.strip().isdigit() for s in seeds.split(",")):
                raise ValueError(f"job {job!r}: write TASK:SEEDS, e.g. sudoku6:0,1,2")
        if (
            not 0 < self.core_share <= 1
            or self.budget <= 0
            or self.probe_steps < 2 * LOG_EVERY
            or self.ref_steps < 0
        ):
            raise ValueError(
                f"budget > 0, core_share in (0, 1], probe_steps >= {2 * LOG_EVERY}, ref_steps >= 0"
            )
        unknown = set(self.groups) - {g.name for g in GROUPS}
        if unknown or not self.groups:
            raise ValueError(f"unknown groups {sorted(unknown)}: choose from {[g.name for g in GROUPS]}")
        if self.target_model and "small-to-large" not in self.groups:
            raise ValueError(
                "--target-model sizes the new targets of --groups small-to-large only: add that group or drop it"
            )
        for task, _ in self.seeds():
            self.study(
                task, ref_steps=1, stage_steps=1
            )  # the study's own checks (task, models), before any work

    def scaled(self) -> ScaleConfig:
        if not self.quick:
            return self
        return replace(
            self,
            jobs=[j.split(",")[0] for j in self.jobs],
            model="tiny-xs",
            budget=min(self.budget, 150),
            target_model="tiny-s" if self.target_model else "",
            probe_steps=2 * LOG_EVERY,
            min_ref_steps=40,
            max_ref_steps=60,
            optim=replace(self.optim, batch_size=16, warmup_steps=5),
            n_train=300,
            n_test=40,
            n_val=20,
        )

    def study(self, task: str, **sizes) -> StudyConfig:
        return StudyConfig(
            out=str(Path(self.out) / task),
            task=task,
            model=self.model,
            target_model=self.target_model,
            n_train=self.n_train,
            n_test=self.n_test,
            n_val=self.n_val,
            optim=self.optim,
            eval_batch_size=self.n_test + self.n_val,
            models=ModelConfig(mixed_precision="bf16" if torch.cuda.is_available() else "no"),
            # cores shared out: more OpenMP threads than cores spin-wait and stall every process
            threads=max(1, (os.cpu_count() or 1) // len(self.seeds())),
            n_boot=1000 if self.quick else 2000,
            **sizes,
        )

    def chosen(self) -> list[Group]:
        """The groups of --groups, in its order."""
        return [next(g for g in GROUPS if g.name == name) for name in self.groups]

    def seeds(self) -> list[tuple[str, int]]:
        return [
            (task, int(s))
            for task, _, seeds in (j.partition(":") for j in self.jobs)
            for s in seeds.split(",")
        ]


def _quiet(log: Path) -> None:
    sys.stdout = sys.stderr = open(log, "a", buffering=1)


def _probe(study: StudyConfig, seed: int, log: Path) -> None:
    _quiet(log)
    run_study(replace(study, seeds=[seed], arms=[], methods=[], phases=["train"]))


def _smoke(study: StudyConfig, seed: int, log: Path, groups: list[Group]) -> None:
    """Every code path of the groups at toy size on the same device, next to the probe: a
    failure then costs seconds, not the budget."""
    _quiet(log)
    run_study(
        replace(
            study,
            quick=True,
            seeds=[seed],
            arms=[a for g in groups for a in g.arms],
            methods=[m for g in groups for m in g.methods],
            phases=["train", "decode", "report"],
        )
    )


def _worker(study: StudyConfig, seed: int, log: Path, groups: list[Group]) -> None:
    """The groups in order, one study call each (finished runs are skipped by the study)."""
    _quiet(log)
    for name, arms, methods in groups:
        print(f"== group {name} ({time.strftime('%H:%M:%S')})", flush=True)
        run_study(
            replace(study, seeds=[seed], arms=list(arms), methods=list(methods), phases=["train", "decode"])
        )
        (Path(study.out) / f"seed{seed}" / f"done-{name}").touch()


def _run_all(jobs: list[tuple[Callable, StudyConfig, int, Path]], deadline: float) -> dict[str, str]:
    """Start one process per job, wait until all end or the deadline; stop the rest."""
    context = mp.get_context("spawn")  # CUDA in each child, none in this process
    procs = {log.stem: context.Process(target=target, args=(s, seed, log)) for target, s, seed, log in jobs}
    for p in procs.values():
        p.start()
    while any(p.is_alive() for p in procs.values()) and time.time() < deadline:
        time.sleep(2)
    ended = {}
    for name, p in procs.items():
        if p.is_alive():
            p.terminate()
            p.join(10)
            ended[name] = "stopped at the deadline"
        else:
            ended[name] = "finished" if p.exitcode == 0 else f"failed (exit code {p.exitcode}; see its log)"
    return ended


def seconds_per_step(ref_dir: Path) -> float:
    """Seconds per reference step after warm-up, from the probe's metrics (first window dropped)."""
    rows = [
        json.loads(line) for line in (ref_dir / "metrics.jsonl").read_text().splitlines() if '"loss"' in line
    ]
    first, last = rows[0], rows[-1]
    return (last["train_seconds"] - first["train_seconds"]) / (last["step"] - first["step"])


def ref_steps_for(config: ScaleConfig, per_step: float, seconds_left: float) -> int:
    """The reference length whose core group (ref + seqd + rcd at STAGE_SHARE, decoded) fits the
    share of the time left; in steps of 50."""
    if config.ref_steps:
        return config.ref_steps
    cost = 1 + STAGE_SHARE * (STEP_COST["seqd"] + STEP_COST["rcd"])
    steps = config.core_share * seconds_left / (CORE_OVERHEAD * per_step * cost)
    steps = min(max(steps, config.min_ref_steps), config.max_ref_steps)
    return int(steps // 50 * 50 if steps >= 100 else steps)


def build_parser() -> DriverParser:
    from .options import DriverParser

    return DriverParser(
        ScaleConfig,
        prog="python -m experiments.scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    (config,) = parser.parse_args_into_dataclasses(args=argv)
    config = config.scaled()
    started = time.time()
    deadline = started + config.budget
    out = Path(config.out)
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    tasks = sorted({task for task, _ in config.seeds()}, key=[t for t, _ in config.seeds()].index)
    for task in tasks:  # the data once per task, in this process
        prepare(config.study(task, ref_steps=1, stage_steps=1))
    print(f"device {device}; data ready in {time.time() - started:.0f} s", flush=True)

    probe_jobs = []
    for task, seed in (
        config.seeds() if not config.ref_steps else []
    ):  # the probe's own folder, the task's data
        probe = replace(
            config.study(task, ref_steps=config.probe_steps, stage_steps=1), out=str(out / "probe" / task)
        )
        if not (out / "probe" / task / "data").exists():
            (out / "probe" / task).mkdir(parents=True, exist_ok=True)
            (out / "probe" / task / "data").symlink_to((out / task / "data").resolve())
        probe_jobs.append((_probe, probe, seed, logs / f"probe-{task}-{seed}.log"))
    smoke = replace(config.study(tasks[0], ref_steps=1, stage_steps=1), out=str(out / "smoke"))
    groups = config.chosen()
    probe_end = _run_all(
        [*probe_jobs, (partial(_smoke, groups=groups), smoke, 0, logs / "smoke.log")], deadline
    )
    if any(not end == "finished" for end in probe_end.values()):
        print(f"the probe or the smoke run failed: {probe_end}", flush=True)
        for log in sorted(logs.glob("*.log")):
            print(f"--- {log.name}\n" + "\n".join(log.read_text().splitlines()[-15:]))
        return 1
    per_step = (
        {
            task: max(
                seconds_per_step(out / "probe" / task / f"seed{seed}" / "ref")
                for t, seed in config.seeds()
                if t == task
            )
            for task in tasks
        }
        if probe_jobs
        else {}
    )
    left = deadline - time.time()
    ref_steps = {task: ref_steps_for(config, per_step.get(task, 0.0), left) for task in tasks}
    print(
        f"probe ({time.time() - started:.0f} s): seconds per step {per_step}; reference steps {ref_steps}",
        flush=True,
    )

    jobs = [
        (
            config.study(
                task, ref_steps=ref_steps[task], stage_steps=max(1, round(STAGE_SHARE * ref_steps[task]))
            ),
            seed,
            logs / f"{task}-{seed}.log",
        )
        for task, seed in config.seeds()
    ]
    ended = _run_all([(partial(_worker, groups=groups), *job) for job in jobs], deadline)
    done = {
        f"{s.task}:{seed}": [
            g.name for g in groups if (Path(s.out) / f"seed{seed}" / f"done-{g.name}").exists()
        ]
        for s, seed, _ in jobs
    }
    for study in {s.task: s for s, _, _ in jobs}.values():
        report(
            replace(
                study,
                seeds=[seed for t, seed in config.seeds() if t == study.task],
                methods=[m for g in groups for m in g.methods],
            )
        )
    record = {
        "config": flat_dict(config),
        "device": device,
        "torch": torch.__version__,
        "probe_seconds_per_step": per_step,
        "probe_processes": probe_end,
        "ref_steps": ref_steps,
        "stage_steps": {s.task: s.stage_steps for s, _, _ in jobs},
        "processes": ended,
        "groups_done": done,
        "seconds": time.time() - started,
    }
    (out / "scale.json").write_text(json.dumps(record, indent=2))
    print(
        json.dumps(
            {k: record[k] for k in ("device", "ref_steps", "processes", "groups_done", "seconds")}, indent=1
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
