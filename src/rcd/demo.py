"""The main job: train tiny dLLMs on a synthetic task and compare RCD with SeqD.

Pipeline (a stage finished with the same options and inputs is reused, an interrupted one
resumes; OUT's run record (rcd.rundir) keeps the demo's options, and a rerun with others is refused):
  data -> ref (plain objective from scratch) -> seqd (ref trained further, plain objective)
                                             -> rcd  (ref as init and frozen reference)
  -> sweep: accuracy vs tokens per forward pass for SeqD and RCD (warm-started by the reference)
  -> report.json, report.md, pareto.png, trace.png, and the `rcd serve` command that opens the
     three models in the playground (report["playground"])
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from .app import lengths, load_models, sweep_methods, sweep_report
from .config import RES_PREFIX, dataclass_flags, flat_dict
from .data import SYNTHETIC_TASKS, get_synthetic_task, make_splits, read_jsonl, write_jsonl
from .decode import DecodeConfig
from .eval.report import trace_plot, write_report
from .eval.sweep import Method, SweepConfig, sweep
from .models.attention import ATTENTION_MODES
from .models.tiny import TINY_PRESETS
from .residual import ResidualConfig
from .rundir import RunDir
from .tokenizer import char_tokenizer, word_tokenizer
from .train import (
    DataConfig,
    ModelConfig,
    OptimConfig,
    ResidualTrainingConfig,
    RuntimeConfig,
    TrainConfig,
    train,
)

TOKENIZERS = ("char", "word")
# more than the study's test + validation problems (1000 + 300 at its defaults)
HELD_OUT_OFFSET = 2000

# 128 problems at a time: on CPU a tiny model's forward pass over 500 rows runs ~1.7x slower per
# row (its activations leave the cache); the decoded tokens are the same
DEMO_SWEEP = SweepConfig(thresholds=(0.5, 0.7, 0.8, 0.9, 0.95), batch_size=128)
QUICK_SWEEP = SweepConfig(tokens_per_step=(1, 8), thresholds=(0.5, 0.9), batch_size=128)
# the optimiser of every stage; the demo's flags set batch size and peak rate, the stages' own lengths
# (ref_steps, stage_steps) their steps. Peak 1.5e-3 with 200 warm-up steps: on sudoku6-easy it lifted the
# weakest of seeds 0-2 from 35% to 55% at one token per step (1e-3 / 50; experiments/findings.md)
DEMO_OPTIM = OptimConfig(batch_size=32, lr=1.5e-3, warmup_steps=200)
FIXED_OPTIM = tuple(f for f in OptimConfig.__dataclass_fields__ if f not in ("batch_size", "lr"))


@dataclass(frozen=True)
class DemoConfig:
    # the easier level of the study's Sudoku (12-16 blanks instead of 16-22): at the minutes a demo trains,
    # models of sudoku6 solve 15-25% of it and every curve sits near the floor (issue #31)
    task: str = field(
        default="sudoku6-easy", metadata={"help": "synthetic task", "choices": tuple(SYNTHETIC_TASKS)}
    )
    out: str = field(default="runs/demo", metadata={"help": "output directory"})
    quick: bool = field(default=False, metadata={"help": "a small, fast run (smoke test)"})
    tokenizer: str = field(
        default="char",
        metadata={"help": "char: one token per character; word: per word", "choices": TOKENIZERS},
    )
    model: str = field(
        default="tiny-xs", metadata={"help": "tiny preset of the models", "choices": tuple(TINY_PRESETS)}
    )
    attention: str = field(
        default="bidirectional", metadata={"help": "attention mode", "choices": ATTENTION_MODES}
    )
    block_length: int | None = field(
        default=None,
        metadata={
            "help": "block size of decoding, and of training with --attention block-causal "
            "(default: one block of the generation length)"
        },
    )
    # sized to keep `make demo` within 7 minutes on 2 idle CPU cores, install included, with SeqD at >= 60% at one
    # token per step on seeds 0-2 (issue #31); the evidence for or against RCD is the study's (experiments.study:
    # 5 seeds, 1000 problems, 2000 + 500 steps at batch 64)
    n_train: int = field(default=20000, metadata={"help": "training problems"})
    n_test: int = field(default=300, metadata={"help": "held-out problems"})
    # the study (experiments.study, data seed 0) takes its test and validation problems from the start of the
    # same stream, and the demo's recipe was chosen on them: with --task sudoku6 the demo's held-out problems
    # come after them
    held_out_offset: int = field(
        default=HELD_OUT_OFFSET,
        metadata={
            "help": "distinct problems of the data stream left out before the held-out ones (never trained on)"
        },
    )
    # a longer reference and shorter stages: an RCD step costs ~1.7 SeqD steps (its reference pass), so
    # 3200 + 400 + 400 trains SeqD's model 13% further than 2400 + 600 + 600 in ~6% more time
    ref_steps: int = field(default=3200, metadata={"help": "optimizer steps of the reference"})
    stage_steps: int = field(default=400, metadata={"help": "optimizer steps of seqd and of rcd each"})
    optim: OptimConfig = field(
        default=DEMO_OPTIM, metadata={"help": "training", "flat": True, "skip": FIXED_OPTIM}
    )
    # alpha fixed at 0.5 in training and decoding: the one recipe of the study ahead of SeqD beyond
    # its CI (fixed schedules of 4-8 tokens per step; experiments/findings.md)
    residual: ResidualTrainingConfig = field(
        default_factory=lambda: ResidualTrainingConfig(
            residual=ResidualConfig(alpha="fixed", fixed_alpha=0.5), dropout=0.3, source="self"
        ),
        metadata={"help": "RCD: the residual of stage rcd and of decoding (--res-*)", "prefix": "res-"},
    )
    sweep: SweepConfig = field(
        default=DEMO_SWEEP,
        metadata={"help": "the decoding sweep (--quick: two settings of each rule)", "prefix": "sweep-"},
    )
    seed: int = field(default=0, metadata={"help": "seed of data, models and noise"})
    # None keeps torch's count (the demo's 7-minute figure). On a host other jobs load, 1 trained
    # 9-17x faster than 2 on 2 cores (experiments/findings.md, the demo's table); idle, unmeasured
    threads: int | None = field(
        default=None,
        metadata={"help": "torch CPU threads of training and decoding (default: torch's; 1 on a busy host)"},
    )
    overwrite: bool = field(
        default=False,
        metadata={"help": "discard the demo run --out holds (data, stages, report) and start again"},
    )

    def __post_init__(self) -> None:
        if self.model not in TINY_PRESETS or self.tokenizer not in TOKENIZERS:
            raise ValueError(
                f"model {self.model!r} / tokenizer {self.tokenizer!r}: choose a model from "
                f"{list(TINY_PRESETS)} and the tokenizer {' or '.join(TOKENIZERS)}"
            )
        task = get_synthetic_task(self.task)  # an unknown task is refused here, with the known ones
        if self.tokenizer == "word" and task.words is None:
            raise ValueError(f"task {self.task} has no word vocabulary; use --tokenizer char")
        if min(self.n_train, self.n_test, self.ref_steps, self.stage_steps) < 1:
            raise ValueError("--n-train, --n-test, --ref-steps and --stage-steps must be >= 1")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"--threads must be >= 1 (or left out: torch's own count), not {self.threads}")
        if self.held_out_offset < 0:
            raise ValueError(f"held_out_offset must be >= 0, not {self.held_out_offset}")
        if self.block_length is not None and self.block_length < 1:
            raise ValueError("block_length must be >= 1")
        if self.optim.lr is None:
            raise ValueError("--lr: give the demo's peak learning rate (e.g. 1e-3)")
        if not 0 <= self.seed < 2**32:  # the training stages' seed (numpy's range)
            raise ValueError(f"seed must lie in [0, 2**32), not {self.seed}")

    def scaled(self) -> DemoConfig:
        """The --quick variant: the same pipeline at a size that runs in a couple of minutes."""
        if not self.quick:
            return self
        sweep = QUICK_SWEEP if self.sweep == DEMO_SWEEP else self.sweep
        # held_out_offset 0: a smoke test, no claim rests on its held-out problems (and sudoku puzzles are slow to make)
        return replace(
            self,
            n_train=1000,
            n_test=100,
            ref_steps=100,
            stage_steps=40,
            optim=replace(self.optim, batch_size=32),
            sweep=sweep,
            held_out_offset=0,
        )

    def settings(self, gen_length: int, block_length: int) -> list[DecodeConfig]:
        """The sweep's decoding settings: fixed schedules, then thresholds."""
        return self.scaled().sweep.settings(DecodeConfig(gen_length=gen_length, block_length=block_length))


def prepare_data(config: DemoConfig, root: Path) -> tuple[Path, Path, Path, int]:
    """Train/test JSONL, the task's tokenizer; returns their paths and the generation length. The
    first `held_out_offset` distinct problems of the stream are left out of both splits."""
    task = get_synthetic_task(config.task)
    train_rows, held = make_splits(task, config.n_train, config.held_out_offset + config.n_test, config.seed)
    test_rows = held[config.held_out_offset :]
    write_jsonl(root / "train.jsonl", train_rows)
    write_jsonl(root / "test.jsonl", test_rows)
    tokenizer = word_tokenizer(task.words) if config.tokenizer == "word" else char_tokenizer(task.alphabet)
    tokenizer.save_pretrained(root / "tokenizer")
    responses = [r["response"] for r in train_rows + test_rows]
    gen_length = lengths.generation_length(
        tokenizer, responses, config.block_length, config.sweep.tokens_per_step
    )
    return root / "train.jsonl", root / "test.jsonl", root / "tokenizer", gen_length


DEMO_WORK = ("data", "ref", "seqd", "rcd", "report.json", "report.md", "pareto.png", "trace.png")


def run_demo(config: DemoConfig) -> dict[str, Any]:
    config = config.scaled()
    run = RunDir(config.out, "demo", DEMO_WORK)
    # the thread count changes how fast, not what: a run resumes under another
    options = {k: v for k, v in flat_dict(config).items() if k not in ("out", "overwrite", "threads")}
    with run, torch_threads(config.threads):
        run.check(record := run.record_of(options, {}), overwrite=config.overwrite)
        run.record(record)
        return _run_demo(config)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op threads set for the demo (None: left as they are), and given back after it."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run_demo(config: DemoConfig) -> dict[str, Any]:
    started = time.perf_counter()
    out = Path(config.out)
    (out / "data").mkdir(parents=True, exist_ok=True)
    train_file, test_file, tokenizer_dir, gen_length = prepare_data(config, out / "data")
    block = lengths.decode_block_length(config.block_length, gen_length)
    # a tokens-per-step the blocks refuse is refused now, not after training
    settings = config.settings(gen_length, block)
    dataset = DataConfig(
        data=str(train_file),
        eval_data=str(test_file),
        max_response_length=gen_length,
        response_padding="max",  # train at the decode length (all responses of a task have one length)
    )
    block_length = block if config.attention == "block-causal" else None
    ref_dir, seqd_dir, rcd_dir = out / "ref", out / "seqd", out / "rcd"

    def stage(name: str, models: ModelConfig, steps: int, **options: Any) -> dict[str, Any]:
        return train(
            TrainConfig(
                stage=name,
                models=models,
                dataset=dataset,
                optim=replace(config.optim, max_steps=steps),
                runtime=RuntimeConfig(out=str(out / name), log_every=50, save_every=500),
                seed=config.seed,
                **options,
            )
        )

    from_ref = ModelConfig(model=str(ref_dir), block_length=block_length)
    summaries = {
        "ref": stage(
            "ref",
            ModelConfig(
                model=config.model,
                tokenizer=str(tokenizer_dir),
                attention=config.attention,
                block_length=block_length,
            ),
            config.ref_steps,
        ),
        "seqd": stage("seqd", from_ref, config.stage_steps),
        "rcd": stage(
            "rcd",
            replace(from_ref, reference=str(ref_dir)),
            config.stage_steps,
            residual=config.residual,
        ),
    }
    models = load_models(str(rcd_dir), reference=str(ref_dir), baseline=str(seqd_dir))
    methods = sweep_methods(models, config.residual.residual, cold_start=False, no_residual=False)
    test_rows = read_jsonl(test_file)
    curves = sweep(
        methods,
        settings,
        test_rows,
        models.tokenizer,
        checker=get_synthetic_task(config.task).is_correct,
        batch_size=config.sweep.batch_size,
    )
    shown = example_setting(settings)
    trace_example(methods[:2], test_rows[0]["prompt"], models.tokenizer, shown, out / "trace.png")
    training = {
        name: {k: s[k] for k in ("steps", "train_seconds", "tokens_per_second", "final_loss", "eval_loss")}
        for name, s in summaries.items()
    }
    report = sweep_report(
        config.task,
        curves,
        models.device,
        started,
        training=training,
        config=flat_dict(config),
        decoding={"gen_length": gen_length, "block_length": block, "attention": config.attention},
    )
    report["playground"] = shlex.join(playground_command(out, methods[1], shown))
    write_report(report, out)
    return report


def example_setting(settings: list[DecodeConfig]) -> DecodeConfig:
    """The setting of the trace picture and of the playground command: 4 tokens per step (else the first)."""
    return next((s for s in settings if s.tokens_per_step == 4), settings[0])


def trace_example(methods: list[Method], prompt: str, tokenizer, config: DecodeConfig, path: Path) -> None:
    """Denoising trace of one test problem for SeqD and RCD."""
    traces = {
        m.name: m.decoder(tokenizer, config).complete([prompt], return_trace=True)[1].trace for m in methods
    }
    trace_plot(traces, path, title=f"{prompt!r}, {config.describe()}")


def playground_command(out: Path, rcd: Method, config: DecodeConfig) -> list[str]:
    """`rcd serve` of the demo's models: the RCD model decoded as the sweep's `rcd` method (its
    residual, warm-started by the reference) and SeqD as the baseline, at `config`."""
    return [
        "rcd",
        "serve",
        "--model",
        str(out / "rcd"),
        "--reference",
        str(out / "ref"),
        "--baseline",
        str(out / "seqd"),
        *dataclass_flags(config),
        "--rcd",
        *dataclass_flags(rcd.residual, prefix=RES_PREFIX),
    ]
