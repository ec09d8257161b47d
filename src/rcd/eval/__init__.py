"""Evaluation: benchmarks, grading, the resumable `rcd eval` runner, lm-eval integration."""

from .grading import extract_answer, grade, is_equivalent
from .runner import EvalConfig, evaluate
from .scoring import rescore, summarize
from .tasks import BENCHMARKS, Problem, Task, get_benchmark, load_problems

__all__ = [
    "EvalConfig",
    "Problem",
    "BENCHMARKS",
    "Task",
    "evaluate",
    "extract_answer",
    "get_benchmark",
    "grade",
    "is_equivalent",
    "load_problems",
    "rescore",
    "summarize",
]
