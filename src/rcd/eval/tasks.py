"""Benchmarks: their data files, prompt formats and answer styles.

Data files are JSONL, one problem per line (keys are matched case-insensitively):

| task | question key | gold answer key |
|---|---|---|
| gsm8k | `question` | `answer`: GSM8K solution ending in `#### N` (or just `N`) |
| math500, minerva, aime24, aime25 | `problem` (or `question`) | `answer`; or `solution` with a final `\\boxed{}` |

GSM8K's test split ships with rcd (MIT, `rcd/data/gsm8k`); the others are brought by the
user (e.g. MATH-500, the MATH test set for Minerva, AIME 2024/2025 in the same layout).

Prompt formats: few-shot as plain text continuation (base models) or as a multi-turn
chat (`chat=True`, the tokenizer's chat template); zero-shot chat prompts ask for a
`\\boxed{}` answer, as the SDAR evaluation did.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..data.jsonl import DataError, iter_lines
from . import fewshot
from .fewshot import Exemplar
from .grading import extract_answer

BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


@dataclass(frozen=True)
class Problem:
    index: int  # 0-based row of the data file
    question: str
    gold: str


@dataclass(frozen=True)
class Task:
    """A benchmark: answer style, prompt pieces and default number of shots."""

    name: str
    style: str  # grading.STYLES
    exemplars: tuple[Exemplar, ...] = ()
    default_shots: int = 0
    question_prefix: str = "Question: "
    answer_prefix: str = "\nAnswer:"
    packaged_data: str | None = None

    def default_data(self) -> Path:
        if self.packaged_data is None:
            raise ValueError(f"{self.name} has no packaged data: give the JSONL file (--data)")
        return Path(str(resources.files("rcd").joinpath(self.packaged_data)))

    def plain_prompt(self, question: str, shots: int) -> str:
        """Few-shot text continuation; the model continues after the answer prefix."""
        blocks = [self._turn(e.question) + " " + e.solution for e in self._shots(shots)]
        return "\n\n".join([*blocks, self._turn(question)])

    def chat_messages(self, question: str, shots: int) -> list[dict[str, str]]:
        """Few-shot as alternating user/assistant turns; zero-shot asks for a boxed answer."""
        if shots == 0:
            return [{"role": "user", "content": f"{question}\n{BOXED_INSTRUCTION}"}]
        messages = []
        for e in self._shots(shots):
            messages += [
                {"role": "user", "content": self._turn(e.question)},
                {"role": "assistant", "content": e.solution},
            ]
        return [*messages, {"role": "user", "content": self._turn(question)}]

    def _turn(self, question: str) -> str:
        return f"{self.question_prefix}{question}{self.answer_prefix}"

    def _shots(self, shots: int) -> tuple[Exemplar, ...]:
        if not 0 <= shots <= len(self.exemplars):
            raise ValueError(f"{self.name} has {len(self.exemplars)} exemplars, asked for {shots} shots")
        return self.exemplars[:shots]


BENCHMARKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("gsm8k", "gsm8k", fewshot.GSM8K, 5, packaged_data="data/gsm8k/test.jsonl"),
        Task("minerva", "minerva", fewshot.MINERVA, 4, "Problem:\n", "\n\nSolution:"),
        Task("math500", "boxed"),
        Task("aime24", "boxed"),
        Task("aime25", "boxed"),
    )
}


def get_benchmark(name: str) -> Task:
    if name not in BENCHMARKS:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]


def load_problems(task: Task, path: str | Path | None = None) -> list[Problem]:
    """Problems of a JSONL file (default: the task's packaged data), in file order."""
    path = Path(path) if path is not None else task.default_data()
    problems = []
    for number, line in iter_lines(path):
        index = number - 1
        if not line.strip():
            raise DataError(f"{path}:{number}: empty line (rows are indexed by line)")
        try:
            row = {k.lower(): v for k, v in json.loads(line).items()}
        except (json.JSONDecodeError, AttributeError):
            raise DataError(f"{path}:{number}: not a JSON object") from None
        problems.append(
            Problem(index, _field(row, ("problem", "question"), path, index), _gold(task, row, path, index))
        )
    if not problems:
        raise DataError(f"{path}: no problems (the file is empty)")
    return problems


def _field(row: dict, keys: tuple[str, ...], path: Path, index: int) -> str:
    for key in keys:
        value = row.get(key)
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) and value is not None:
            raise DataError(f"{path}:{index + 1}: field {key!r} must be text, got {type(value).__name__}")
        if value not in (None, ""):
            return str(value)
    raise DataError(f"{path}:{index + 1}: needs one of the keys {keys}")


def _gold(task: Task, row: dict, path: Path, index: int) -> str:
    if task.style == "gsm8k":
        answer = _field(row, ("answer",), path, index)
        return answer.split("####")[-1].strip().replace(",", "")
    if row.get("answer") not in (None, ""):
        return str(row["answer"]).strip()
    boxed = extract_answer(_field(row, ("solution",), path, index), "boxed")
    if boxed is None:
        raise ValueError(f"{path}:{index + 1}: no 'answer' and no \\boxed{{}} answer in 'solution'")
    return boxed
