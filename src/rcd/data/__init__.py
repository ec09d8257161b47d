"""Data: JSONL files, SFT examples and collation, and the synthetic reasoning tasks."""

from .jsonl import DataError, read_jsonl, write_jsonl
from .sft import SftCollator, SftExample, load_sft
from .spec import Example, TaskSpec
from .tasks import TASKS, get_task, make_splits

__all__ = [
    "TASKS",
    "DataError",
    "Example",
    "SftCollator",
    "SftExample",
    "TaskSpec",
    "get_task",
    "load_sft",
    "make_splits",
    "read_jsonl",
    "write_jsonl",
]
