"""A study that can tell RCD's gain from noise: seeds x arms x decodings, paired CIs over seeds.

    python -m experiments.study --out runs/study                    # train, decode, report
    python -m experiments.study --out runs/study --phases report    # tables from what is there
    python -m experiments.study --quick --out /tmp/study            # the pipeline at toy size

Per training seed (the data and the held-out problems stay fixed; the seed changes the
models' init, data order and noise), the `rcd demo` pipeline trains a reference and, from
it, every training arm (SeqD, SeqD trained 60% longer, RCD recipes). Every decoding (a
trained arm, a residual config, commit settings) runs on the same held-out
problems and keeps per-problem exact match and cells right, so two methods compare paired.
The arms, decodings and comparisons are the tables of `experiments.arms`.
Every run writes its own file and is skipped when the file exists: a restart loses nothing.

The report (`study.md`, `study.json`):
- accuracy @ tokens per forward pass (every pass counted: warm-start and reference passes)
  per method and setting, mean over seeds, exact match and cells right;
- paired differences against SeqD with a 95% t-interval over the per-seed differences
  (`seed_t_interval`; the bootstrap over seeds and problems, `paired_bootstrap`, next to it),
  the per-seed differences, and the number of comparisons made (no multiplicity correction);
  at equal steps, and for SeqD baselines also at equal forward passes (`at_tokens_per_pass`);
- thresholds chosen on a validation split by one rule for every method (`calibrated_tau`);
- the reliability of commits under tau 0.9 (share right per confidence bin);
- the issue's two bars: passes RCD needs to reach SeqD's peak accuracy, and RCD - SeqD at
  >= 4 tokens per pass.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

import rcd
from rcd.config import flat_dict
from rcd.data import get_synthetic_task, read_jsonl, write_jsonl
from rcd.decode import DecodeConfig
from rcd.demo import DEMO_SWEEP, TOKENIZERS, DemoConfig, prepare_data
from rcd.eval.report import pareto_plot
from rcd.eval.sweep import Method, evaluate
from rcd.models.tiny import TINY_PRESETS
from rcd.train import DataConfig, ModelConfig, OptimConfig, RuntimeConfig, TrainConfig, train

from .arms import ARMS, BARRED, COMPARISONS, EQUAL_PASS_BASELINES, METHODS, PLOTTED, RELIABILITY, MethodSpec
from .calibration import BINS, committed_confidence, gold_tokens
from .options import group

if TYPE_CHECKING:
    from .options import DriverParser

# ---------------------------------------------------------------------------- statistics


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> dict[str, float]:
    """Mean of b - a with a percentile bootstrap CI, for scores of shape (seeds, problems).

    Both arms are scored on the same problems by models of the same seeds, so each
    replicate draws seeds and problems with replacement once and applies the same draw to
    both arms (paired). Too narrow with few seeds: resampling S seeds shrinks their spread by
    sqrt((S-1)/S) and its quantiles are normal ones where a t with S-1 degrees of freedom is
    due (95% intervals exclude a true 0 in 11-16% of 5-seed studies). Kept as a second
    column; the reported CI is `seed_t_interval`.
    """
    a, b = np.atleast_2d(np.asarray(a, float)), np.atleast_2d(np.asarray(b, float))
    if a.shape != b.shape:
        raise ValueError(f"paired arms need the same (seeds, problems) shape, got {a.shape} and {b.shape}")
    diff = b - a
    n_seeds, n_problems = diff.shape
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    problems = rng.integers(0, n_problems, size=(n_boot, n_problems))
    per_seed = np.stack([diff[:, p].mean(axis=1) for p in problems])  # (n_boot, n_seeds)
    replicates = np.take_along_axis(per_seed, seeds, axis=1).mean(axis=1)
    tail = (1 - level) / 2
    lo, hi = np.quantile(replicates, [tail, 1 - tail])
    return {
        "diff": float(diff.mean()),
        "lo": float(lo),
        "hi": float(hi),
        "per_seed": [float(d) for d in diff.mean(axis=1)],
    }


def seed_t_interval(per_seed: Sequence[float], level: float = 0.95) -> tuple[float | None, float | None]:
    """The reported CI: a t-interval over the per-seed paired differences (S-1 degrees of
    freedom), the unit that varies most (training seeds); each seed's difference already
    averages its problems. None, None with one seed: a single seed gives no spread to
    size an interval with, and none is invented."""
    from scipy import stats

    diffs = np.asarray(per_seed, float)
    if diffs.size < 2:
        return None, None
    half = stats.t.ppf((1 + level) / 2, diffs.size - 1) * diffs.std(ddof=1) / np.sqrt(diffs.size)
    return float(diffs.mean() - half), float(diffs.mean() + half)


def paired_difference(
    a: np.ndarray, b: np.ndarray, n_boot: int = 2000, level: float = 0.95
) -> dict[str, Any]:
    """b - a for (seeds, problems) scores: the mean, the per-seed differences, the t-interval
    over seeds (`lo`, `hi`: the reported CI) and the hierarchical bootstrap (`boot_lo`, `boot_hi`)."""
    boot = paired_bootstrap(a, b, n_boot, level=level)
    lo, hi = seed_t_interval(boot["per_seed"], level)
    return {
        "diff": boot["diff"],
        "lo": lo,
        "hi": hi,
        "df": len(boot["per_seed"]) - 1,
        "boot_lo": boot["lo"],
        "boot_hi": boot["hi"],
        "per_seed": boot["per_seed"],
    }


def beyond_ci(ci: dict) -> bool:
    """The t-interval is defined and excludes 0, and so does the bootstrap where there is one: the
    t-interval carries the seed spread, the bootstrap the problem-sampling noise that every seed
    shares (with seeds that happen to agree, -0.6 / -0.8 / -0.7, the t-interval alone is too tight)."""
    if ci["lo"] is None or not (ci["lo"] > 0 or ci["hi"] < 0):
        return False
    return ci.get("boot_lo") is None or ci["boot_lo"] > 0 or ci["boot_hi"] < 0


def cells_right(example: dict, completion: str) -> float:
    """Partial credit: the share of the prompt's blank cells (".") filled with the answer's
    digit; for tasks without blanks, the share of the response's characters matched in place
    (the whole worked response: `chain_sum`'s answer is only its last number)."""
    prompt, answer = example["prompt"].rstrip(":"), str(example["answer"])
    blanks = [i for i, ch in enumerate(prompt) if ch == "."] if len(prompt) == len(answer) else []
    if not blanks:
        answer = str(example.get("response", answer))
    where = blanks or range(len(answer))
    return sum(i < len(completion) and completion[i] == answer[i] for i in where) / max(len(where), 1)


def calibrated_tau(val_points: dict[float, dict], min_tokens_per_pass: float) -> float | None:
    """The rule for every method: the largest tau whose validation tokens per pass reach the
    target (largest = the most careful threshold that is still that parallel)."""
    ok = [tau for tau, p in val_points.items() if p["tokens_per_step"] >= min_tokens_per_pass]
    return max(ok) if ok else None


def passes_to_reach(points: Sequence[dict], accuracy: float) -> float | None:
    """Fewest forward passes per problem (gen tokens / tokens per pass) at which a method's
    measured points reach `accuracy` (no interpolation); None if none does."""
    ok = [p["passes_per_problem"] for p in points if p["accuracy"] >= accuracy]
    return min(ok) if ok else None


# ---------------------------------------------------------------------------- what is run


LOG_EVERY = 50  # training steps per metrics row
DEVICE = (
    "cuda" if torch.cuda.is_available() else "cpu"
)  # decoding; training picks its device through Accelerate
FIXED = (1, 2, 4, 8)  # tokens per step of the fixed schedules
TAUS = (0.8, 0.9, 0.95)  # threshold grid (validation and test)
RELIABILITY_TAU = 0.9
# the optimiser of every stage (warm-up at most a tenth of the reference's steps); its other options the library's
STUDY_OPTIM = OptimConfig(batch_size=64, lr=1e-3, warmup_steps=50)


@dataclass
class StudyConfig:
    out: str = field(default="runs/study", metadata={"help": "output directory (resumable)"})
    task: str = field(default="sudoku6", metadata={"help": "synthetic task (rcd.data.SYNTHETIC_TASKS)"})
    tokenizer: str = field(
        default="char",
        metadata={
            "help": "char: a token per character; word: per word (numbers as tokens)",
            "choices": TOKENIZERS,
        },
    )
    model: str = field(
        default="tiny-xs",
        metadata={
            "help": "tiny preset of the reference and every arm (depth, width)",
            "choices": tuple(TINY_PRESETS),
        },
    )
    target_model: str = field(
        default="",
        metadata={
            "help": "tiny preset of the fresh arms (-fresh; default: --model)",
            "choices": ("", *TINY_PRESETS),
        },
    )
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2], metadata={"help": "training seeds"})
    arms: list[str] = field(default_factory=lambda: list(ARMS), metadata={"help": "training arms, in order"})
    methods: list[str] = field(
        default_factory=lambda: list(METHODS), metadata={"help": "decodings, in order"}
    )
    phases: list[str] = field(
        default_factory=lambda: ["train", "decode", "report"], metadata={"help": "train decode report"}
    )
    data_seed: int = field(
        default=0,
        metadata={"help": "seed of the data draw (train, test, validation): another gives fresh problems"},
    )
    n_train: int = field(default=20000, metadata={"help": "training problems"})
    n_test: int = field(default=1000, metadata={"help": "held-out test problems"})
    n_val: int = field(
        default=300,
        metadata={"help": "validation problems: thresholds, recipes and settings are chosen on them"},
    )
    ref_steps: int = field(default=1200, metadata={"help": "reference steps (the demo: 3600)"})
    stage_steps: int = field(
        default=400, metadata={"help": "stage-2 steps of an arm of length 1 (the demo: 900)"}
    )
    optim: OptimConfig = group(
        STUDY_OPTIM,
        "training: the optimiser of every stage (warm-up at most a tenth of --ref-steps)",
        "batch_size",
        "lr",
        "warmup_steps",
    )
    # each stage's model is set where it is trained; of how models are held, the study sets the precision
    models: ModelConfig = group(
        ModelConfig(), "training: precision (bf16: autocast on a GPU)", "mixed_precision"
    )
    eval_batch_size: int = field(default=500, metadata={"help": "problems decoded together"})
    n_boot: int = field(default=2000, metadata={"help": "bootstrap replicates"})
    min_tokens_per_pass: float = field(
        default=4.0, metadata={"help": "calibration target and bar's parallelism"}
    )
    tokens_per_step: list[int] = field(
        default_factory=lambda: list(FIXED), metadata={"help": "fixed schedules decoded"}
    )
    taus: list[float] = field(
        default_factory=lambda: list(TAUS), metadata={"help": "thresholds (validation too if > 1)"}
    )
    select_on_val: bool = field(
        default=True,
        metadata={"help": "decode the fixed schedules on the validation split too (the report's choices)"},
    )
    decode_limit: int = field(default=0, metadata={"help": "decode only the first N test problems (0: all)"})
    threads: int = field(
        default=0, metadata={"help": "torch CPU threads (0: torch's default; 1 is fastest on a busy host)"}
    )
    quick: bool = field(default=False, metadata={"help": "toy size: the pipeline in well under a minute"})

    def __post_init__(self) -> None:
        unknown = [a for a in self.arms if a not in ARMS] + [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown arms/methods {unknown}: choose from {list(ARMS)} / {list(METHODS)}")
        if not set(self.phases) <= {"train", "decode", "report"} or not self.seeds:
            raise ValueError("phases are train, decode, report; give at least one seed")
        if min(self.n_test, self.n_val, self.n_train, self.ref_steps, self.stage_steps) < 1:
            raise ValueError("sizes and steps must be >= 1")
        if self.optim.lr is None:
            raise ValueError("--lr: give the study's peak learning rate (e.g. 1e-3)")
        self.target_model = self.target_model or self.model
        for model in (self.model, self.target_model):  # the demo's own checks of task, tokenizer and model
            replace(self.demo(seed=0), model=model)

    def scaled(self) -> StudyConfig:
        if not self.quick:
            return self
        return replace(
            self,
            seeds=self.seeds[:2],
            n_train=200,
            n_test=24,
            n_val=12,
            ref_steps=20,
            stage_steps=6,
            optim=replace(self.optim, batch_size=16),
            n_boot=200,
            eval_batch_size=64,
        )

    def demo(self, seed: int) -> DemoConfig:
        """The demo's settings at this size (one data seed for every training seed; the test and
        validation problems are the first of the stream, those the demo leaves out)."""
        return DemoConfig(
            task=self.task,
            tokenizer=self.tokenizer,
            model=self.model,
            n_train=self.n_train,
            n_test=self.n_test + self.n_val,
            seed=self.data_seed,
            held_out_offset=0,
            ref_steps=self.ref_steps,
            stage_steps=self.stage_steps,
            optim=self.optim,
            sweep=replace(DEMO_SWEEP, batch_size=self.eval_batch_size),
        )


# ---------------------------------------------------------------------------- phases


def prepare(config: StudyConfig) -> dict[str, Any]:
    """Data once for all seeds: train, test, validation (disjoint) and the tokenizer.

    Made in a private folder and renamed into place, so processes started together (one
    per seed) never read each other's half-written files: the first to finish wins.
    """
    root = Path(config.out) / "data"
    made_by = {k: getattr(config, k) for k in ("task", "tokenizer", "n_train", "n_test", "n_val")}
    made_by |= (
        {"data_seed": config.data_seed} if config.data_seed else {}
    )  # the records of data seed 0 predate it
    if not (root / "meta.json").exists():
        root.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=root.parent, prefix=".data-"))
        train_file, held_file, tokenizer_dir, gen_length = prepare_data(config.demo(0), work)
        held = read_jsonl(held_file)
        write_jsonl(work / "val.jsonl", held[config.n_test :])
        write_jsonl(held_file, held[: config.n_test])
        meta = {
            "train": str(root / train_file.name),
            "test": str(root / held_file.name),
            "val": str(root / "val.jsonl"),
            "tokenizer": str(root / tokenizer_dir.name),
            "gen_length": gen_length,
            "made_by": made_by,
        }
        (work / "meta.json").write_text(json.dumps(meta))
        try:
            work.rename(root)
        except OSError:  # another process's data is in place
            shutil.rmtree(work)
    meta = json.loads((root / "meta.json").read_text())
    if meta.get("made_by") != made_by:
        raise SystemExit(
            f"{root} holds data made with {meta.get('made_by')}, not {made_by}: "
            "give another --out or the same options"
        )
    return meta


def train_seed(config: StudyConfig, meta: dict, seed: int, arms: Sequence[str]) -> None:
    root = Path(config.out) / f"seed{seed}"
    dataset = DataConfig(
        data=meta["train"],
        eval_data=meta["val"],
        max_response_length=meta["gen_length"],
        response_padding="max",
    )
    optim = replace(config.optim, warmup_steps=min(config.optim.warmup_steps, config.ref_steps // 10))

    def stage(out: str, name: str, models: ModelConfig, steps: int, **options: Any) -> TrainConfig:
        return TrainConfig(
            stage=name,
            models=models,
            dataset=dataset,
            optim=replace(optim, max_steps=steps),
            runtime=RuntimeConfig(out=str(root / out), log_every=LOG_EVERY, save_every=300, progress=False),
            seed=seed,
            **options,
        )

    def built(model: str) -> ModelConfig:
        """A tiny preset trained from scratch, with the task's tokenizer."""
        return replace(config.models, model=model, tokenizer=meta["tokenizer"])

    ref = root / "ref"
    train(stage("ref", "ref", built(config.model), config.ref_steps))  # a finished run is reused as it is
    for name in arms:
        arm = ARMS[name]
        started = time.perf_counter()
        models = built(config.target_model) if arm.fresh else replace(config.models, model=str(ref))
        if arm.stage == "rcd":
            models = replace(models, reference=str(ref))
        steps = round(arm.steps * (config.ref_steps if arm.fresh else config.stage_steps))
        train(stage(name, arm.stage, models, steps, residual=arm.residual))
        print(f"seed {seed} {name}: {time.perf_counter() - started:.0f} s", flush=True)


def settings_of(spec: MethodSpec, gen_length: int, config: StudyConfig) -> list[tuple[str, DecodeConfig]]:
    """(split, setting) pairs a method is decoded under."""
    base = DecodeConfig(gen_length=gen_length, block_length=gen_length)
    fixed = {k: replace(base, steps=gen_length // k) for k in config.tokens_per_step}
    if spec.sweep == "orders":
        return [
            ("test", replace(fixed.get(4, fixed[max(fixed)]), order=o)) for o in ("random", "left-to-right")
        ]
    if spec.sweep == "fixed":
        return [(split, s) for split in splits_of(config) for k, s in fixed.items() if k > 1]
    if spec.sweep == "thresholds":
        splits = ("val", "test") if len(config.taus) > 1 else ("test",)
        return [(split, replace(base, threshold=t)) for split in splits for t in config.taus]
    out = [("test", s) for s in fixed.values()]
    out += [("val", s) for s in fixed.values()] if config.select_on_val else []
    if spec.sweep == "core":
        return out + [("test", replace(base, threshold=0.9))]
    for split in ("val", "test") if len(config.taus) > 1 else ("test",):
        out += [(split, replace(base, threshold=t)) for t in config.taus]
    return out


def splits_of(config: StudyConfig) -> tuple[str, ...]:
    """Where fixed schedules are decoded: the test split, and the validation split that choices use."""
    return ("test", "val") if config.select_on_val else ("test",)


def record_path(config: StudyConfig, seed: int, method: str, split: str, setting: DecodeConfig) -> Path:
    name = setting.describe().replace(" ", "_").replace("=", "")
    return Path(config.out) / f"seed{seed}" / "decode" / method.replace(" ", "_") / f"{split}-{name}.json"


def decode_seed(config: StudyConfig, meta: dict, seed: int, methods: Sequence[str]) -> None:
    """Every (method, split, setting) of one seed not decoded yet; per-problem records."""
    root = Path(config.out) / f"seed{seed}"
    task = get_synthetic_task(config.task)
    rows = {split: read_jsonl(meta[split]) for split in ("val", "test")}
    if config.decode_limit:
        rows["test"] = rows["test"][: config.decode_limit]
    models: dict[str, Any] = {}
    tokenizer = None

    def model(name: str):
        nonlocal tokenizer
        if name not in models:
            models[name], tokenizer = rcd.load(root / name, device=DEVICE)
        return models[name]

    for name in methods:
        spec = METHODS[name]
        if not (root / spec.arm / "train_summary.json").exists():
            print(f"seed {seed} {name}: arm {spec.arm} not trained, skipped", flush=True)
            continue
        for split, rule in settings_of(spec, meta["gen_length"], config):
            setting = replace(rule, **dict(spec.decode))  # the record keeps the rule's name: pairs by rule
            path = record_path(config, seed, name, split, setting)
            if path.exists():
                continue
            uses_ref = spec.residual is not None and "reference" in (
                spec.residual.init,
                spec.residual.feedback,
            )
            method = Method(name, model(spec.arm), spec.residual, model("ref") if uses_ref else None)
            point, completions = evaluate(
                method,
                setting,
                rows[split],
                tokenizer,
                checker=task.is_correct,
                batch_size=config.eval_batch_size,
            )
            record = asdict(point) | {
                "method": name,
                "seed": seed,
                "split": split,
                "passes_per_problem": point.forward_passes / point.n,
                "correct": [int(task.is_correct(r, c)) for r, c in zip(rows[split], completions)],
                "cells": [round(cells_right(r, c), 4) for r, c in zip(rows[split], completions)],
            }
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record))
            print(
                f"seed {seed} {name} {split} {point.setting}: {100 * point.accuracy:.1f}% @ "
                f"{point.tokens_per_step:.2f} ({point.seconds:.0f} s)",
                flush=True,
            )
        if name in RELIABILITY:
            reliability_seed(
                config,
                meta,
                seed,
                name,
                model(spec.arm),
                spec.residual,
                model("ref") if spec.residual is not None else None,
                tokenizer,
                rows["test"],
            )


def reliability_seed(config, meta, seed, name, model, residual, reference, tokenizer, rows) -> None:
    """Confidence and correctness of every committed token under tau = RELIABILITY_TAU, binned."""
    path = Path(config.out) / f"seed{seed}" / "decode" / name.replace(" ", "_") / "reliability.json"
    if path.exists():
        return
    gen_length = meta["gen_length"]
    gold = gold_tokens(tokenizer, [r["response"] for r in rows], gen_length)
    bins = np.zeros((len(BINS) - 1, 2))
    for i in range(0, len(rows), config.eval_batch_size):
        chunk = rows[i : i + config.eval_batch_size]
        ids, mask = rcd.encode_prompts(tokenizer, [r["prompt"] for r in chunk])
        out = rcd.generate(
            model,
            ids,
            attention_mask=mask,
            gen_length=gen_length,
            block_length=gen_length,
            threshold=RELIABILITY_TAU,
            residual=residual,
            reference=reference,
            return_trace=True,
        )
        confidence, correct = committed_confidence(out, gold[i : i + len(chunk)])
        which = np.clip(np.searchsorted(BINS, confidence.numpy(), side="right") - 1, 0, len(BINS) - 2)
        np.add.at(bins, (which, 0), 1)
        np.add.at(bins, (which, 1), correct.numpy())
    path.write_text(json.dumps({"bins": bins.tolist(), "edges": list(BINS)}))


# ---------------------------------------------------------------------------- report


def load_records(config: StudyConfig) -> dict[tuple[str, str, str], dict[int, dict]]:
    """{(method, split, setting): {seed: record}} of everything decoded so far."""
    out: dict[tuple[str, str, str], dict[int, dict]] = {}
    for seed in config.seeds:
        for path in sorted((Path(config.out) / f"seed{seed}" / "decode").glob("*/*-*.json")):
            r = json.loads(path.read_text())
            out.setdefault((r["method"], r["split"], r["setting"]), {})[seed] = r
    return out


def summarise(records: dict, config: StudyConfig) -> dict[str, Any]:
    seeds_everywhere = lambda *keys: sorted(set.intersection(*(set(records.get(k, {})) for k in keys)))  # noqa: E731
    curves: dict[str, list[dict]] = {}
    for (method, split, setting), by_seed in records.items():
        if split != "test":
            continue
        rs = list(by_seed.values())
        curves.setdefault(method, []).append(
            {
                "setting": setting,
                "rule": rs[0]["rule"],
                "seeds": sorted(by_seed),
                "n": rs[0]["n"],
                "accuracy": float(np.mean([np.mean(r["correct"]) for r in rs])),
                "cells": float(np.mean([np.mean(r["cells"]) for r in rs])),
                "tokens_per_step": float(np.mean([r["tokens_per_step"] for r in rs])),
                "passes_per_problem": float(np.mean([r["passes_per_problem"] for r in rs])),
                "accuracy_per_seed": [float(np.mean(r["correct"])) for r in rs],
            }
        )
    for pts in curves.values():
        pts.sort(
            key=lambda p: (p["setting"].startswith("tau"), " " in p["setting"], -p["passes_per_problem"])
        )

    # thresholds chosen on validation, one rule for every method
    calibrated: dict[str, dict] = {}
    for method in {m for (m, split, _) in records if split == "val"}:
        per_seed = {}
        for seed in config.seeds:
            val = {
                float(s.split("=")[1]): r[seed]
                for (m, sp, s), r in records.items()
                if m == method and sp == "val" and s.startswith("tau=") and seed in r
            }
            tau = calibrated_tau(val, config.min_tokens_per_pass)
            if (
                tau is not None
                and (method, "test", f"tau={tau:g}") in records
                and seed in records[(method, "test", f"tau={tau:g}")]
            ):
                per_seed[seed] = records[(method, "test", f"tau={tau:g}")][seed]
        if per_seed:
            calibrated[method] = per_seed

    def compare(base_by_seed: dict[int, dict], new_by_seed: dict[int, dict]) -> dict | None:
        seeds = [
            s
            for s in sorted(set(base_by_seed) & set(new_by_seed))
            if base_by_seed[s]["n"] == new_by_seed[s]["n"]
        ]
        if not seeds:
            return None
        row = {"seeds": seeds}
        for metric in ("correct", "cells"):
            a = np.array([base_by_seed[s][metric] for s in seeds])
            b = np.array([new_by_seed[s][metric] for s in seeds])
            row[metric] = paired_difference(a, b, config.n_boot)
        row["tokens_per_step"] = [
            float(np.mean([d[s]["tokens_per_step"] for s in seeds])) for d in (base_by_seed, new_by_seed)
        ]
        return row

    comparisons = []
    for base, new, why in COMPARISONS:
        for (m, split, setting), by_seed in records.items():
            if m != new or split != "test":
                continue
            other = records.get((base, "test", setting))
            if other is None:
                continue
            row = compare(other, by_seed)
            if row:
                comparisons.append(
                    {
                        "base": base,
                        "new": new,
                        "why": why,
                        "setting": setting,
                        "at": compared_at(setting),
                        **row,
                    }
                )
            # at equal passes: the baseline's curve of the same rule (fixed schedules, or thresholds)
            # interpolated per problem to the challenger's measured tokens per pass
            if (
                row
                and base in EQUAL_PASS_BASELINES
                and compared_at(setting) in ("equal steps", "equal tau")
                and abs(row["tokens_per_step"][0] / row["tokens_per_step"][1] - 1) > 0.01
            ):
                curve = {
                    s: r
                    for (mb, sp, s), r in records.items()
                    if mb == base and sp == "test" and compared_at(s) == compared_at(setting) and " " not in s
                }
                interpolated = {
                    seed: point
                    for seed, r in by_seed.items()
                    if (point := at_tokens_per_pass(curve, seed, r["tokens_per_step"])) is not None
                }
                row = compare(interpolated, by_seed)
                if row:
                    comparisons.append(
                        {
                            "base": base,
                            "new": new,
                            "why": why,
                            "at": "equal passes",
                            **row,
                            "setting": f"{setting} vs {base} interpolated",
                        }
                    )
        if base in calibrated and new in calibrated:
            row = compare(calibrated[base], calibrated[new])
            if row:
                comparisons.append(
                    {
                        "base": base,
                        "new": new,
                        "why": why,
                        "at": "calibrated tau",
                        "setting": f"calibrated tau (val, >= {config.min_tokens_per_pass:g} tok/pass)",
                        "taus": [[calibrated[x][s]["setting"] for s in row["seeds"]] for x in (base, new)],
                        **row,
                    }
                )
    # the same order / setting across method groups ("seqd order" vs "rcd order") pairs by setting name
    # recipes and settings are chosen on the validation split, never on the test problems reported
    validation: dict[str, dict[str, float]] = {}
    for (m, split, s), by_seed in records.items():
        if split == "val" and compared_at(s) == "equal steps":
            validation.setdefault(m, {})[s] = float(
                np.mean([np.mean(r["correct"]) for r in by_seed.values()])
            )
    choices = chosen_on_validation(validation, [m for m in validation if is_rcd_recipe(m)])
    bars = bars_of(curves, comparisons, config)
    reliability = load_reliability(config)
    return {
        "config": flat_dict(config),
        "curves": curves,
        "comparisons": comparisons,
        "bars": bars,
        "validation": validation,
        "choices": choices,
        "reliability": reliability,
        "seeds_complete": seeds_everywhere(*records) if records else [],
    }


def is_rcd_recipe(method: str) -> bool:
    """A decoding of a stage-rcd arm with its residual, commit order by confidence: the
    candidates a recipe is chosen from."""
    spec = METHODS[method]
    arm = ARMS.get(spec.arm)  # None: the reference
    return arm is not None and arm.stage == "rcd" and spec.residual is not None and spec.sweep != "orders"


def chosen_on_validation(
    validation: dict[str, dict[str, float]], candidates: Sequence[str]
) -> dict[str, dict]:
    """Per fixed schedule, the candidate with the best mean validation accuracy (ties: the first
    listed) and every candidate's score: choices never look at the test problems."""
    out = {}
    for setting in sorted({s for m in candidates for s in validation[m]}, key=lambda s: int(s.split("=")[1])):
        scores = {m: validation[m][setting] for m in candidates if setting in validation[m]}
        out[setting] = {"chosen": max(scores, key=scores.get), "validation": scores}
    return out


def compared_at(setting: str) -> str:
    """What a comparison at one decode setting holds equal: the number of steps (fixed
    schedules: RCD's warm start then costs one pass more) or the threshold."""
    return (
        "equal steps"
        if setting.startswith("steps=")
        else "equal tau"
        if setting.startswith("tau=")
        else setting
    )


def at_tokens_per_pass(fixed: dict[str, dict[int, dict]], seed: int, tokens_per_pass: float) -> dict | None:
    """One seed's baseline record at `tokens_per_pass`, interpolated per problem between its two
    settings of one curve that bracket it (fixed schedules, which double, or thresholds; linear in
    log tokens per pass); None outside the measured range (no extrapolation). Each problem's score
    becomes a weighted mean of its two scores, so the pairing with the challenger's problems is kept."""
    points = sorted(
        ((r[seed]["tokens_per_step"], r[seed]) for r in fixed.values() if seed in r), key=lambda p: p[0]
    )
    for (x0, r0), (x1, r1) in itertools.pairwise(points):
        if x0 <= tokens_per_pass <= x1 and r0["n"] == r1["n"]:
            w = float(np.log(tokens_per_pass / x0) / np.log(x1 / x0)) if x1 > x0 else 0.0
            mix = {
                k: list((1 - w) * np.asarray(r0[k], float) + w * np.asarray(r1[k], float))
                for k in ("correct", "cells")
            }
            return {"n": r0["n"], "tokens_per_step": tokens_per_pass, **mix}
    return None


def bars_of(curves: dict, comparisons: list[dict], config: StudyConfig) -> dict[str, Any]:
    """The issue's bars, SeqD against each RCD arm of BARRED decoded, on the mean-over-seeds curves."""
    if "seqd" not in curves:
        return {}
    peak = max(curves["seqd"], key=lambda p: p["accuracy"])
    bars = {}
    for name in (n for n in BARRED if n in curves):
        passes = passes_to_reach(curves[name], peak["accuracy"])
        parallel = [
            c
            for c in comparisons
            if c["base"] == "seqd"
            and c["new"] == name
            and min(c["tokens_per_step"]) >= config.min_tokens_per_pass
        ]
        bars[name] = {
            "seqd_peak": {
                "setting": peak["setting"],
                "accuracy": peak["accuracy"],
                "passes": peak["passes_per_problem"],
            },
            "rcd_passes_to_seqd_peak": passes,
            "pass_ratio": peak["passes_per_problem"] / passes if passes else None,
            "at_parallelism": [
                {
                    "setting": c["setting"],
                    "at": c["at"],
                    "diff": c["correct"]["diff"],
                    "lo": c["correct"]["lo"],
                    "hi": c["correct"]["hi"],
                }
                for c in parallel
            ],
        }
    return bars


def load_reliability(config: StudyConfig) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for method in RELIABILITY:
        total = None
        for seed in config.seeds:
            path = Path(config.out) / f"seed{seed}" / "decode" / method.replace(" ", "_") / "reliability.json"
            if path.exists():
                bins = np.array(json.loads(path.read_text())["bins"])
                total = bins if total is None else total + bins
        if total is not None:
            out[method] = [
                {"from": BINS[i], "to": min(BINS[i + 1], 1.0), "tokens": int(t), "accuracy": float(c / t)}
                for i, (t, c) in enumerate(total)
                if t > 0
            ]
    return out


def pct(x: float) -> str:
    return f"{100 * x:+.1f}"


COMPARISON_TITLE = (
    "## Paired differences (challenger - baseline), 95% t-interval over the per-seed differences"
)
COMPARISON_HEADER = (
    (
        "| baseline | challenger | setting | compared at | tok/pass (base, new) | exact match diff [95% t CI] "
        "| bootstrap CI (seeds x problems) | cells diff [95% t CI] | per-seed exact; cells diffs | question |"
    ),
    "|---|---|---|---|---|---|---|---|---|---|",
)


def ci_text(ci: dict) -> str:
    """`+1.2 [-0.3, +2.7]`, or the mean and why there is no interval."""
    if ci["lo"] is None:
        return f"{pct(ci['diff'])} [undefined: 1 seed]"
    return f"{pct(ci['diff'])} [{pct(ci['lo'])}, {pct(ci['hi'])}]"


def comparison_line(row: dict) -> str:
    """One comparison as a table row; exact match in bold when its t-interval excludes 0. A
    row without per-problem cells (`cells` None) prints n/a there."""
    exact, cells = row["correct"], row.get("cells")
    text = f"**{ci_text(exact)}**" if beyond_ci(exact) else ci_text(exact)
    boot = (
        f"[{pct(exact['boot_lo'])}, {pct(exact['boot_hi'])}]" if exact.get("boot_lo") is not None else "n/a"
    )
    per_seed = " / ".join(pct(d) for d in exact["per_seed"])
    if cells:
        per_seed += "; " + " / ".join(pct(d) for d in cells["per_seed"])
    return (
        f"| {row['base']} | {row['new']} | {row['setting']} | {row['at']} | {row['tokens_per_step'][0]:.2f}, "
        f"{row['tokens_per_step'][1]:.2f} | {text} | {boot} | {ci_text(cells) if cells else 'n/a'} | "
        f"{per_seed} | {row['why']} |"
    )


def multiplicity_note(rows: Sequence[dict]) -> str:
    """How many comparisons the table makes and what that means without a correction."""
    defined = [r for r in rows if r["correct"]["lo"] is not None]
    steps = sum(r["at"] == "equal steps" for r in rows)
    passes = sum(r["at"] == "equal passes" for r in rows)
    return (
        f"{len(rows)} comparisons of exact match ({steps} at equal steps, {passes} at equal passes: the "
        "baseline interpolated per problem on its curve of the same rule (fixed schedules or thresholds), "
        "linear in log tokens per pass, to the challenger's measured tokens per pass; the rest at equal tau "
        "or a tau calibrated on validation), "
        f"{len(defined)} with an interval, {sum(beyond_ci(r['correct']) for r in rows)} beyond it (bold: the "
        "t-interval and, where there is one, the bootstrap both exclude 0). "
        "Each interval is 95% and no multiplicity correction is applied: with no true difference anywhere, "
        f"about {len(defined) / 20:.0f} would be bold by chance. The CI is a t-interval over the per-seed "
        "differences (S-1 degrees of freedom; undefined with 1 seed); the bootstrap over seeds and problems "
        "understates the seed spread with few seeds but carries the problem noise the seeds share."
    )


def markdown(summary: dict) -> str:
    c = summary["config"]
    lines = [
        f"# RCD study: {c['task']}",
        "",
        f"Seeds {c['seeds']}, {c['decode_limit'] or c['n_test']} test problems (+{c['n_val']} validation), model "
        f"{c.get('model', 'tiny-xs')}, reference {c['ref_steps']} steps, stage 2 {c['stage_steps']} steps (arms `-long`: x1.6"
        + (
            f"; arms `-fresh`: a new {c['target_model']}, {c['ref_steps']} steps"
            if any("-fresh" in m for m in summary["curves"])
            else ""
        )
        + "). Mean over seeds; "
        "every forward pass counted (warm-start and reference passes included).",
        "",
        "## Accuracy @ tokens per forward pass",
        "",
        (
            "Each setting at its own measured tokens per pass (a fixed schedule is a number of steps: "
            "RCD's warm start adds one pass to it)."
        ),
        "",
        "| method | setting | seeds | exact match | cells right | tokens/pass | exact match per seed |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, pts in summary["curves"].items():
        for p in pts:
            per_seed = " / ".join(f"{100 * a:.1f}" for a in p["accuracy_per_seed"])
            lines.append(
                f"| {method} | {p['setting']} | {len(p['seeds'])} | {100 * p['accuracy']:.1f}% | "
                f"{100 * p['cells']:.1f}% | {p['tokens_per_step']:.2f} | {per_seed} |"
            )
    lines += ["", COMPARISON_TITLE, "", multiplicity_note(summary["comparisons"]), "", *COMPARISON_HEADER]
    lines += [comparison_line(r) for r in summary["comparisons"]]
    if summary.get("choices"):
        lines += [
            "",
            f"## Recipes chosen on the validation split ({c['n_val']} problems, disjoint from the test problems)",
            "",
            (
                "Per fixed schedule, the RCD decoding with the best validation exact match (mean over seeds); "
                "its test difference from SeqD (equal steps) is in the table above."
            ),
            "",
            "| setting | chosen | validation exact match of every candidate |",
            "|---|---|---|",
        ]
        for setting, choice in summary["choices"].items():
            scores = ", ".join(
                f"{m} {100 * a:.1f}%" for m, a in sorted(choice["validation"].items(), key=lambda x: -x[1])
            )
            lines.append(f"| {setting} | {choice['chosen']} | {scores} |")
    for name, b in summary["bars"].items():
        lines += [
            "",
            f"## The issue's bars (seqd vs {name})",
            "",
            f"- SeqD's peak: {100 * b['seqd_peak']['accuracy']:.1f}% at {b['seqd_peak']['setting']} "
            f"({b['seqd_peak']['passes']:.1f} passes per problem); {name} reaches it with "
            + (
                f"{b['rcd_passes_to_seqd_peak']:.1f} passes (ratio {b['pass_ratio']:.2f}x; bar: >= 2x)"
                if b["rcd_passes_to_seqd_peak"]
                else "no measured setting (bar: >= 2x fewer passes): not met"
            ),
            f"- {name} - SeqD at >= {c['min_tokens_per_pass']:g} tokens per pass (bar: >= +5 points, CI above 0): "
            + (
                "; ".join(f"{p['setting']} ({p['at']}): {ci_text(p)}" for p in b["at_parallelism"])
                or "no setting"
            ),
        ]
    if summary["reliability"]:
        names = list(summary["reliability"])
        lines += [
            "",
            f"## Reliability of commits (tau {RELIABILITY_TAU}, all seeds): share right (tokens)",
            "",
            "| confidence | " + " | ".join(names) + " |",
            "|---|" + "---|" * len(names),
        ]
        edges = sorted({(x["from"], x["to"]) for v in summary["reliability"].values() for x in v})
        for lo, hi in edges:
            cells = []
            for n in names:
                x = next((x for x in summary["reliability"][n] if (x["from"], x["to"]) == (lo, hi)), None)
                cells.append(f"{100 * x['accuracy']:.1f}% ({x['tokens']})" if x else "")
            lines.append(f"| [{lo:.2f}, {hi:.2f}) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def report(config: StudyConfig) -> dict[str, Any]:
    summary = summarise(load_records(config), config)
    out = Path(config.out)
    (out / "study.json").write_text(json.dumps(summary, indent=2))
    (out / "study.md").write_text(markdown(summary))
    core = {k: summary["curves"][k] for k in PLOTTED if k in summary["curves"]}
    if core:
        pareto_plot(core, out / "study-pareto.png", title=f"{config.task}: mean over seeds {config.seeds}")
    return summary


def run(config: StudyConfig) -> dict[str, Any] | None:
    config = config.scaled()
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.backends.cuda.matmul.allow_tf32 = True  # GPU float32 matmuls on tensor cores (no effect on a CPU)
    meta = prepare(config)
    for seed in config.seeds:  # seed by seed: the first seed's full picture comes first
        if "train" in config.phases:
            train_seed(config, meta, seed, config.arms)
        if "decode" in config.phases:
            decode_seed(config, meta, seed, config.methods)
    return report(config) if "report" in config.phases else None


def build_parser() -> DriverParser:
    from .options import DriverParser

    return DriverParser(
        StudyConfig,
        prog="python -m experiments.study",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    (config,) = parser.parse_args_into_dataclasses(args=argv)
    summary = run(config)
    if summary is not None:
        print(markdown(summary))
        print(f"wrote {Path(config.out) / 'study.md'} and study.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
