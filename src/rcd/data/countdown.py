"""Countdown: combine four numbers with + - * / to reach a target (several solutions).

Written as single-spaced words, so "numbers as tokens" works. The gold derivation uses
all four numbers, larger operand first; the checker accepts any valid derivation.
"""

from __future__ import annotations

import operator
import random
import re
from collections import Counter

from .spec import DIGITS, Example, TaskSpec

SOURCES = range(1, 13)
N_SOURCES = 4
MAX_VALUE = 100
MIN_TARGET = 10
OPERATIONS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.floordiv}
STEP = re.compile(r"(\d+) ([-+*/]) (\d+) = (\d+)")


def _allowed(op: str, big: int, small: int) -> bool:
    """Results stay whole numbers in 1..MAX_VALUE; no multiplying or dividing by 1."""
    if op == "/" and (small == 1 or big % small):
        return False
    if op == "*" and small == 1:
        return False
    return 1 <= OPERATIONS[op](big, small) <= MAX_VALUE


def _derive(numbers: list[int], rng: random.Random) -> tuple[list[str], int]:
    """Random steps that combine the pool into one number: (steps, final result)."""
    pool, steps = list(numbers), []
    while len(pool) > 1:
        first, second = sorted(rng.sample(range(len(pool)), 2), reverse=True)
        big, small = sorted((pool.pop(first), pool.pop(second)), reverse=True)
        op = rng.choice([op for op in OPERATIONS if _allowed(op, big, small)])
        pool.append(OPERATIONS[op](big, small))
        steps.append(f"{big} {op} {small} = {pool[-1]}")
    return steps, pool[0]


def _prompt(target: int, numbers: list[int]) -> str:
    return f"{target} from {' '.join(map(str, numbers))} :"


def _sample(rng: random.Random) -> Example:
    while True:
        numbers = [rng.choice(SOURCES) for _ in range(N_SOURCES)]
        steps, target = _derive(numbers, rng)
        if target >= MIN_TARGET and target not in numbers:
            response = " , ".join(steps)
            return {"prompt": _prompt(target, numbers), "response": response, "answer": response}


def _check(prompt: str, completion: str) -> bool:
    """Each step uses numbers still available (sources or earlier results), is exact
    arithmetic with a positive whole result, and the last result is the target."""
    match = re.fullmatch(r"(\d+) from ((?:\d+ )+):", prompt)
    if match is None:
        raise ValueError(f"not a countdown prompt: {prompt!r}")
    target, pool = int(match.group(1)), Counter(map(int, match.group(2).split()))
    result = None
    for step in completion.split(","):
        parsed = STEP.fullmatch(step.strip())
        if parsed is None:
            return False
        left, op, right, result = int(parsed[1]), parsed[2], int(parsed[3]), int(parsed[4])
        pool[left] -= 1
        pool[right] -= 1
        if pool[left] < 0 or pool[right] < 0 or not _valid_step(op, left, right, result):
            return False
        pool[result] += 1
    return result == target


def _valid_step(op: str, left: int, right: int, result: int) -> bool:
    exact = right != 0 and left == result * right if op == "/" else OPERATIONS[op](left, right) == result
    return exact and result >= 1


_WIDEST_STEP = len(f"{MAX_VALUE} + {MAX_VALUE} = {MAX_VALUE}")  # a safe bound, not always reached

COUNTDOWN = TaskSpec(
    name="countdown",
    description="reach a target from four numbers 1-12 with + - * / (results 1-100), three "
    "steps; a step's operands are earlier results, and several derivations are valid, so "
    "tokens committed together can come from different derivations",
    sample=_sample,
    check=_check,
    alphabet=DIGITS + " +-*/=,:from",
    max_prompt_chars=len(_prompt(MAX_VALUE, [SOURCES[-1]] * N_SOURCES)),
    max_response_chars=(N_SOURCES - 1) * _WIDEST_STEP + (N_SOURCES - 2) * len(" , "),
    words=("from", ":", ",", "=", *OPERATIONS, *map(str, range(MAX_VALUE + 1))),
)
