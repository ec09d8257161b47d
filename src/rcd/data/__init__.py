"""Data: synthetic reasoning tasks for the demo and JSONL files of examples."""

from .jsonl import read_jsonl, write_jsonl
from .spec import Example, TaskSpec
from .tasks import TASKS, get_task, make_splits

__all__ = ["TASKS", "Example", "TaskSpec", "get_task", "make_splits", "read_jsonl", "write_jsonl"]
