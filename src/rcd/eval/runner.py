"""`rcd eval`: decode a benchmark with any decoding options, grade, report; resumable.

Rows go to `OUT/predictions.jsonl` as they are made (see `predictions.py`); a rerun with
the same `OUT` skips the finished (problem, sample) pairs. `OUT/options.json` holds every
option of the run and its inputs' fingerprints (`rcd.rundir`), and a rerun with other
options or inputs is refused (it would mix two experiments); OUT is locked while a run
lasts; `OUT/summary.json` is rewritten at the end of every run over all rows.
With `accelerate launch`, the pending work is split across processes with Accelerate's
`split_between_processes`, each process decoding on its own device.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from accelerate import PartialState
from accelerate.utils import gather_object
from tqdm.auto import tqdm

from .. import __version__
from ..decode import DecodeConfig
from ..models.loading import LoadConfig, load_tokenizer
from ..residual import ResidualConfig
from ..rundir import RunDir, fingerprint, write_json
from ..tokenizer import check_representable
from .decoder import Decoder
from .grading import grade
from .predictions import RowWriter, cut_torn_tail, fold_parts, read_rows
from .scoring import summarize
from .tasks import BENCHMARKS, Problem, Task, get_benchmark, load_problems

PREDICTIONS, SUMMARY = "predictions.jsonl", "summary.json"
PARTS = "predictions.parts"  # one file per rank while several processes decode


@dataclass
class EvalConfig:
    task: str = field(default="gsm8k", metadata={"help": "benchmark", "choices": tuple(BENCHMARKS)})
    data: str | None = field(default=None, metadata={"help": "JSONL data file (default: the packaged one)"})
    shots: int | None = field(default=None, metadata={"help": "few-shot exemplars (default: the task's)"})
    chat: bool = field(default=False, metadata={"help": "format prompts with the tokenizer's chat template"})
    n_samples: int = field(
        default=1,
        metadata={
            "help": "samples per problem; reports pass@1..n (unbiased estimator, needs temperature > 0)"
        },
    )
    limit: int | None = field(default=None, metadata={"help": "only the first N problems"})
    batch_size: int = field(default=1, metadata={"help": "prompts decoded together per process"})
    seed: int = field(default=0, metadata={"help": "seed of the sampling noise (temperature > 0)"})
    overwrite: bool = field(
        default=False,
        metadata={"help": "discard the predictions --out holds (of other options) and start again"},
    )

    def __post_init__(self) -> None:
        if self.n_samples < 1 or self.batch_size < 1:
            raise ValueError("--n-samples and --batch-size must be >= 1")
        if self.limit is not None and self.limit < 1:
            raise ValueError("--limit must be >= 1")
        if self.shots is not None and self.shots < 0:
            raise ValueError("--shots must be >= 0")
        task = get_benchmark(self.task)
        if self.shots and self.shots > len(task.exemplars):
            raise ValueError(f"--shots {self.shots}: {task.name} has {len(task.exemplars)} exemplars")


@dataclass(frozen=True)
class _Run:
    """What one process needs to decode and grade."""

    decoder: Decoder
    task: Task
    shots: int
    config: EvalConfig


def evaluate(
    model_path: str,
    out: str | Path,
    *,
    config: EvalConfig,
    decode: DecodeConfig,
    residual: ResidualConfig | None = None,
    load_config: LoadConfig | None = None,
    reference_path: str | None = None,
    command: Sequence[str] | None = None,
) -> dict | None:
    """Run (or resume) an evaluation into directory `out`; the summary on the main process."""
    load_config = load_config or LoadConfig()
    # Accelerate treats a process group on CPUs as distributed only when told it is on CPU
    state = PartialState(
        cpu=load_config.device == "cpu" or os.environ.get("ACCELERATE_USE_CPU", "") in ("1", "true")
    )
    task = get_benchmark(config.task)
    shots = task.default_shots if config.shots is None else config.shots
    problems = load_problems(task, config.data)[: config.limit]
    out = Path(out)
    run_dir = RunDir(out, "eval", (PREDICTIONS, PARTS, SUMMARY))
    record = run_dir.record_of(
        _options(load_config, decode, residual, config, shots),
        {
            "model": fingerprint(model_path, what="--model"),
            "reference": fingerprint(reference_path, what="--reference"),
            "data": fingerprint(config.data, what="--data") if config.data else {"packaged": task.name},
        },
    )
    with run_dir if state.is_main_process else contextlib.nullcontext():
        if state.is_main_process:
            run_dir.check(record, overwrite=config.overwrite)  # before any model loads
            fold_parts(out / PREDICTIONS, out / PARTS)  # the rows of an interrupted multi-process run
            cut_torn_tail(out / PREDICTIONS)
        state.wait_for_everyone()
        tokenizer, context = load_tokenizer(model_path, load_config.trust_remote_code)
        prompts_fit(
            task, tokenizer, context, problems, shots, config.chat, decode.gen_length
        )  # before any model loads
        on_device = replace(load_config, device=load_config.device or str(state.device))
        run = _Run(Decoder.load(model_path, on_device, decode, residual, reference_path), task, shots, config)
        if state.is_main_process:
            run_dir.record(record)  # the run has really started
        return _evaluate(run, problems, out, state, record, command)


def _evaluate(run: _Run, problems: list[Problem], out: Path, state, record: dict, command) -> dict | None:
    config, task = run.config, run.task
    done = {(r["index"], r["sample"]) for r in read_rows(out / PREDICTIONS)}
    pending = [(p, s) for p in problems for s in range(config.n_samples) if (p.index, s) not in done]
    started = time.perf_counter()
    path = out / PREDICTIONS
    if state.num_processes > 1:
        path = out / PARTS / f"rank{state.process_index}.jsonl"
        path.parent.mkdir(exist_ok=True)
    with state.split_between_processes(pending) as mine:
        written = _decode_all(run, mine, path, state.process_index)
    stats = gather_object(
        [{"rank": state.process_index, "rows": written, "seconds": time.perf_counter() - started}]
    )
    state.wait_for_everyone()
    if not state.is_main_process:
        return None
    fold_parts(out / PREDICTIONS, out / PARTS)
    rows = [r for r in read_rows(out / PREDICTIONS) if r["index"] < len(problems)]
    summary = {
        **summarize(rows, task.name),
        "n_problems_requested": len(problems),
        "complete": len(rows) == len(problems) * config.n_samples,
        "device": _device_name(run.decoder.model),
        "num_processes": state.num_processes,
        "batch_size": config.batch_size,
        "this_run": {
            "rows_written": sum(s["rows"] for s in stats),
            "wall_seconds": max(s["seconds"] for s in stats),
        },
        "options": {**record["options"], "eval": {**record["options"]["eval"], "limit": config.limit}},
        "inputs": record["inputs"],
        "versions": _versions(),
        "command": list(command) if command is not None else sys.argv,
    }
    write_json(out / SUMMARY, summary)
    return summary


def _decode_all(run: _Run, items: list[tuple[Problem, int]], path: Path, rank: int) -> int:
    size = run.config.batch_size
    with (
        RowWriter(path) as writer,
        tqdm(total=len(items), desc=f"{run.task.name} [{rank}]", position=rank) as bar,
    ):
        for start in range(0, len(items), size):
            for row in _decode_batch(run, items[start : start + size], rank):
                writer.write(row)
            bar.update(len(items[start : start + size]))
    return len(items)


def _decode_batch(run: _Run, batch: list[tuple[Problem, int]], rank: int) -> list[dict]:
    decoder = run.decoder
    prompts = [
        prompt_text(run.task, decoder.tokenizer, p.question, run.shots, run.config.chat) for p, _ in batch
    ]
    generator = None
    if decoder.decode.temperature > 0:  # seeded by the batch's first (problem, sample)
        first, sample = batch[0][0].index, batch[0][1]
        seed = run.config.seed * 1_000_003 + first * 1_009 + sample
        generator = torch.Generator(decoder.model.device).manual_seed(seed)
    started = time.perf_counter()
    texts, out = decoder.complete(prompts, generator)
    seconds = (time.perf_counter() - started) / len(batch)
    stops = decoder.stops
    rows = []
    for i, ((problem, sample), prompt, text) in enumerate(zip(batch, prompts, texts)):
        completion = cut_at_next_question(run.task, text) if run.shots else text
        answer, correct = grade(completion, problem.gold, run.task.style)
        ids = out.generated[i].tolist()
        rows.append(
            {
                "index": problem.index,
                "sample": sample,
                "prompt": prompt,
                "completion": completion,
                "answer": answer,
                "gold": problem.gold,
                "correct": correct,
                "nfe": int(out.row_forward_passes[i]),
                "tokens": int(out.generated_tokens[i]),
                "completion_tokens": next((k for k, t in enumerate(ids) if t in stops), len(ids)),
                "seconds": round(seconds, 4),
                "rank": rank,
            }
        )
    return rows


def prompt_text(task: Task, tokenizer, question: str, shots: int, chat: bool) -> str:
    """The prompt string of one problem: chat template or plain few-shot text (with BOS)."""
    if chat:
        if tokenizer.chat_template is None:
            raise ValueError("--chat needs a tokenizer with a chat template")
        return tokenizer.apply_chat_template(
            task.chat_messages(question, shots), tokenize=False, add_generation_prompt=True
        )
    text = task.plain_prompt(question, shots)
    bos = tokenizer.bos_token
    adds_bos = bos is not None and tokenizer.bos_token_id in tokenizer("x")["input_ids"]
    return bos + text if adds_bos else text


def cut_at_next_question(task: Task, text: str) -> str:
    """A few-shot completion ends where the model starts inventing the next question."""
    marker = task.question_prefix.strip()
    cut = text.find(marker)
    return text[:cut].rstrip() if cut >= 0 else text


def prompts_fit(
    task: Task,
    tokenizer,
    context: int | None,
    problems: list[Problem],
    shots: int,
    chat: bool,
    gen_length: int,
) -> None:
    """Refuse a prompt that, with the generation, exceeds the model's context or that the
    tokenizer cannot represent: decoding it would give garbage silently."""
    for problem in problems:
        prompt = prompt_text(task, tokenizer, problem.question, shots, chat)
        ids = check_representable(tokenizer, prompt, f"problem {problem.index} (row {problem.index + 1})")
        if context is not None and len(ids) + gen_length > context:
            raise ValueError(
                f"problem {problem.index}: its prompt ({len(ids)} tokens, {shots} shots) + --gen-length "
                f"{gen_length} exceed the model's context of {context} positions; lower --shots or --gen-length"
            )


def _options(load_config, decode, residual, config, shots) -> dict:
    """Options that change the predictions (limit, device and overwrite do not)."""
    return {
        "load": {**load_config.kwargs(), "device": None},
        "decode": asdict(decode),
        "residual": asdict(residual) if residual is not None else None,
        "eval": {
            **{k: v for k, v in asdict(config).items() if k != "overwrite"},
            "shots": shots,
            "limit": None,
        },
    }


def _device_name(model: torch.nn.Module) -> str:
    device = next(model.parameters()).device
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"{device} ({platform.processor() or platform.machine()})"


def _versions() -> dict:
    import transformers

    return {
        "rcd": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }
