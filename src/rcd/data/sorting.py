"""Sorting a list of distinct numbers, written as single-spaced words."""

from __future__ import annotations

import random
import re

from .spec import DIGITS, Example, TaskSpec

VALUES = range(100)
LENGTHS = range(12, 17)


def _format(numbers: list[int]) -> str:
    return " ".join(map(str, numbers))


def _prompt(numbers: list[int]) -> str:
    return f"sort {_format(numbers)} :"


def _sample(rng: random.Random) -> Example:
    numbers = rng.sample(VALUES, rng.choice(LENGTHS))
    response = _format(sorted(numbers))
    return {"prompt": _prompt(numbers), "response": response, "answer": response}


def _check(prompt: str, completion: str) -> bool:
    match = re.fullmatch(r"sort ((?:\d+ )+):", prompt)
    if match is None:
        raise ValueError(f"not a sort prompt: {prompt!r}")
    return completion == _format(sorted(map(int, match.group(1).split())))


_LONGEST = list(VALUES[-LENGTHS[-1] :])

SORT = TaskSpec(
    name="sort",
    description="sort 12-16 distinct numbers below 100; each position is a rank statistic, "
    "and positions committed together without seeing each other repeat or skip numbers",
    sample=_sample,
    check=_check,
    alphabet=DIGITS + " sort:",
    max_prompt_chars=len(_prompt(_LONGEST)),
    max_response_chars=len(_format(_LONGEST)),
    words=("sort", ":", *map(str, VALUES)),
)
