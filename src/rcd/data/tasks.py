"""The registry of synthetic tasks and their disjoint train/test splits."""

from __future__ import annotations

import random

from .arithmetic import CHAIN_SUM, MUL
from .countdown import COUNTDOWN
from .sorting import SORT
from .spec import Example, TaskSpec
from .sudoku import SUDOKU, SUDOKU_EASY

SYNTHETIC_TASKS: dict[str, TaskSpec] = {
    task.name: task for task in (MUL, CHAIN_SUM, SORT, SUDOKU, SUDOKU_EASY, COUNTDOWN)
}

DRAWS_PER_EXAMPLE = 20
"""Give up when a task needs more draws than this per wanted example (space too small)."""


def get_synthetic_task(task: TaskSpec | str) -> TaskSpec:
    if isinstance(task, TaskSpec):
        return task
    if task not in SYNTHETIC_TASKS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(SYNTHETIC_TASKS)}")
    return SYNTHETIC_TASKS[task]


def make_splits(
    task: TaskSpec | str, n_train: int, n_test: int, seed: int
) -> tuple[list[Example], list[Example]]:
    """(train, test), deterministic in seed, no `split_key` value repeated within or across them.

    Both come from the same stream of `generate(..., seed)`: test takes the first distinct
    examples, train the next ones, so the test set does not change when n_train does.
    """
    spec = get_synthetic_task(task)
    rng, seen = random.Random(seed), set()
    test: list[Example] = []
    train: list[Example] = []
    budget, draws = DRAWS_PER_EXAMPLE * (n_train + n_test), 0
    while len(train) < n_train or len(test) < n_test:
        if draws == budget:
            raise ValueError(
                f"task {spec.name!r}: {len(seen)} distinct examples after {draws} draws, "
                f"{n_train + n_test} wanted; its space is too small"
            )
        draws += 1
        example = spec.sample(rng)
        if example[spec.split_key] in seen:
            continue
        seen.add(example[spec.split_key])
        (test if len(test) < n_test else train).append(example)
    return train, test
