"""`rcd eval`: decode a benchmark with any decoding options, grade, report; resumable.

Rows go to `OUT/predictions.jsonl` as they are made (see `predictions.py`); a rerun with
the same `OUT` skips the finished (problem, sample) pairs. `OUT/options.json` holds every
option of the run, and a rerun with other options is refused (it would mix two
experiments); `OUT/summary.json` is rewritten at the end of every run over all rows.
With `accelerate launch`, the pending work is split across processes with Accelerate's
`split_between_processes`, each process decoding on its own device.
"""

from __future__ import annotations

import json
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
from ..models.loading import LoadConfig
from ..residual import ResidualConfig
from .decoder import Decoder
from .grading import grade
from .predictions import RowWriter, cut_torn_tail, read_rows
from .scoring import summarize
from .tasks import TASKS, Problem, Task, get_task, load_problems

PREDICTIONS, OPTIONS, SUMMARY = "predictions.jsonl", "options.json", "summary.json"


@dataclass
class EvalConfig:
    task: str = field(default="gsm8k", metadata={"help": "benchmark", "choices": tuple(TASKS)})
    data: str | None = field(default=None, metadata={"help": "JSONL data file (default: the packaged one)"})
    shots: int | None = field(default=None, metadata={"help": "few-shot exemplars (default: the task's)"})
    chat: bool = field(default=False, metadata={"help": "format prompts with the tokenizer's chat template"})
    n_samples: int = field(
        default=1, metadata={"help": "samples per problem; reports pass@1..n (unbiased estimator, needs temperature > 0)"}
    )
    limit: int | None = field(default=None, metadata={"help": "only the first N problems"})
    batch_size: int = field(default=1, metadata={"help": "prompts decoded together per process"})
    seed: int = field(default=0, metadata={"help": "seed of the sampling noise (temperature > 0)"})

    def __post_init__(self) -> None:
        if self.n_samples < 1 or self.batch_size < 1:
            raise ValueError("n_samples and batch_size must be >= 1")
        if self.limit is not None and self.limit < 1:
            raise ValueError("limit must be >= 1")


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
    state = PartialState(cpu=load_config.device == "cpu" or os.environ.get("ACCELERATE_USE_CPU", "") in ("1", "true"))
    task = get_task(config.task)
    shots = task.default_shots if config.shots is None else config.shots
    problems = load_problems(task, config.data)[: config.limit]
    out = Path(out)
    options = _options(model_path, reference_path, load_config, decode, residual, config, shots)
    if state.is_main_process:
        _prepare(out, options)
    state.wait_for_everyone()
    done = {(r["index"], r["sample"]) for r in read_rows(out / PREDICTIONS)}
    pending = [(p, s) for p in problems for s in range(config.n_samples) if (p.index, s) not in done]

    on_device = replace(load_config, device=load_config.device or str(state.device))
    run = _Run(Decoder.load(model_path, on_device, decode, residual, reference_path), task, shots, config)
    started = time.perf_counter()
    with state.split_between_processes(pending) as mine:
        written = _decode_all(run, mine, out / PREDICTIONS, state.process_index)
    stats = gather_object([{"rank": state.process_index, "rows": written, "seconds": time.perf_counter() - started}])
    state.wait_for_everyone()
    if not state.is_main_process:
        return None
    rows = [r for r in read_rows(out / PREDICTIONS) if r["index"] < len(problems)]
    summary = {
        **summarize(rows, task.name),
        "n_problems_requested": len(problems),
        "complete": len(rows) == len(problems) * config.n_samples,
        "device": _device_name(run.decoder.model),
        "num_processes": state.num_processes,
        "batch_size": config.batch_size,
        "this_run": {"rows_written": sum(s["rows"] for s in stats), "wall_seconds": max(s["seconds"] for s in stats)},
        "options": options,
        "versions": _versions(),
        "command": list(command) if command is not None else sys.argv,
    }
    _write_json(out / SUMMARY, summary)
    return summary


def _decode_all(run: _Run, items: list[tuple[Problem, int]], path: Path, rank: int) -> int:
    size = run.config.batch_size
    with RowWriter(path) as writer, tqdm(total=len(items), desc=f"{run.task.name} [{rank}]", position=rank) as bar:
        for start in range(0, len(items), size):
            for row in _decode_batch(run, items[start : start + size], rank):
                writer.write(row)
            bar.update(len(items[start : start + size]))
    return len(items)


def _decode_batch(run: _Run, batch: list[tuple[Problem, int]], rank: int) -> list[dict]:
    decoder = run.decoder
    prompts = [prompt_text(run.task, decoder.tokenizer, p.question, run.shots, run.config.chat) for p, _ in batch]
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
        rows.append({
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
        })
    return rows


def prompt_text(task: Task, tokenizer, question: str, shots: int, chat: bool) -> str:
    """The prompt string of one problem: chat template or plain few-shot text (with BOS)."""
    if chat:
        if tokenizer.chat_template is None:
            raise ValueError("--chat needs a tokenizer with a chat template")
        return tokenizer.apply_chat_template(task.chat_messages(question, shots), tokenize=False, add_generation_prompt=True)
    text = task.plain_prompt(question, shots)
    bos = tokenizer.bos_token
    adds_bos = bos is not None and tokenizer.bos_token_id in tokenizer("x")["input_ids"]
    return bos + text if adds_bos else text


def cut_at_next_question(task: Task, text: str) -> str:
    """A few-shot completion ends where the model starts inventing the next question."""
    marker = task.question_prefix.strip()
    cut = text.find(marker)
    return text[:cut].rstrip() if cut >= 0 else text


def _options(model_path, reference_path, load_config, decode, residual, config, shots) -> dict:
    return {
        "model": str(model_path),
        "reference": reference_path,
        "load": load_config.kwargs(),
        "decode": asdict(decode),
        "residual": asdict(residual) if residual is not None else None,
        "eval": {**asdict(config), "shots": shots},
    }


def _prepare(out: Path, options: dict) -> None:
    """Create `out`, or check that a resumed run has the same options (limit and device may differ)."""
    out.mkdir(parents=True, exist_ok=True)
    saved_path = out / OPTIONS
    if saved_path.exists():
        if _comparable(json.loads(saved_path.read_text())) != _comparable(options):
            raise ValueError(
                f"{out} holds predictions made with other options ({saved_path}); "
                "use another output directory"
            )
    _write_json(saved_path, options)
    cut_torn_tail(out / PREDICTIONS)


def _comparable(options: dict) -> dict:
    return {**options, "eval": {**options["eval"], "limit": None}, "load": {**options["load"], "device": None}}


def _write_json(path: Path, data: dict) -> None:
    """Write-then-rename, so an interrupted write never leaves half a file."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def _device_name(model: torch.nn.Module) -> str:
    device = next(model.parameters()).device
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"{device} ({platform.processor() or platform.machine()})"


def _versions() -> dict:
    import transformers

    return {"rcd": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version()}
