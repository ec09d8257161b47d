"""Data: JSONL files, SFT examples and collation, and the synthetic reasoning tasks."""

from .jsonl import DataError, read_jsonl, write_jsonl
from .sft import SftCollator, SftExample, load_sft
from .spec import Example, TaskSpec
from .tasks import SYNTHETIC_TASKS, get_synthetic_task, make_splits

__all__ = [
    "SYNTHETIC_TASKS",
    "DataError",
    "Example",
    "SftCollator",
    "SftExample",
    "TaskSpec",
    "get_synthetic_task",
    "load_sft",
    "make_splits",
    "read_jsonl",
    "write_jsonl",
]
