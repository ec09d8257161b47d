"""Arithmetic written out step by step: every later digit depends on earlier results.

The response shows intermediate results; grading asks for the response's form
("expression=value" steps joined by ";") and then looks only at the final value, as
GSM8K-style evaluation does.
"""

from __future__ import annotations

import random
import re

from .spec import DIGITS, Example, TaskSpec

MUL_LEFT = range(100, 1000)
MUL_RIGHT = range(10, 100)
SUM_TERMS = range(10, 100)
SUM_COUNTS = (4, 5)


_STEP = r"\d+(?:[*+]\d+)+=\d+"
_STEPS = re.compile(rf"{_STEP}(?:;{_STEP})*")


def final_result(completion: str) -> str | None:
    """The value of the last step, or None when completion is not a list of steps."""
    return completion.rsplit("=", 1)[-1] if _STEPS.fullmatch(completion) else None


def _parse(pattern: str, prompt: str) -> list[int]:
    match = re.fullmatch(pattern, prompt)
    if match is None:
        raise ValueError(f"not a prompt of this task: {prompt!r}")
    return [int(n) for n in re.findall(r"\d+", prompt)]


def mul_response(left: int, right: int) -> str:
    """Long multiplication by a two-digit number: two partial products, then their sum."""
    ones, tens = right % 10, right // 10 * 10
    low, high = left * ones, left * tens
    return f"{left}*{ones}={low};{left}*{tens}={high};{low}+{high}={low + high}"


def _sample_mul(rng: random.Random) -> Example:
    left, right = rng.choice(MUL_LEFT), rng.choice(MUL_RIGHT)
    return {"prompt": f"{left}*{right}=", "response": mul_response(left, right), "answer": str(left * right)}


def _check_mul(prompt: str, completion: str) -> bool:
    left, right = _parse(r"\d+\*\d+=", prompt)
    return final_result(completion) == str(left * right)


def _count_products() -> int:
    return len({left * right for left in MUL_LEFT for right in MUL_RIGHT})


MUL = TaskSpec(
    name="mul",
    description="3-digit x 2-digit multiplication with partial products; the sum's digits "
    "depend on both partial products and its carries, so committing them in parallel mixes "
    "digits of different candidate results",
    sample=_sample_mul,
    check=_check_mul,
    alphabet=DIGITS + "*+=;",
    max_prompt_chars=len(f"{MUL_LEFT[-1]}*{MUL_RIGHT[-1]}="),
    max_response_chars=len(mul_response(MUL_LEFT[-1], MUL_RIGHT[-1])),
    count_answers=_count_products,
)


def chain_response(terms: list[int]) -> str:
    """Running sum: each step adds the next term to the previous step's result."""
    steps, total = [], terms[0]
    for term in terms[1:]:
        steps.append(f"{total}+{term}={total + term}")
        total += term
    return ";".join(steps)


def _sample_chain(rng: random.Random) -> Example:
    terms = [rng.choice(SUM_TERMS) for _ in range(rng.choice(SUM_COUNTS))]
    prompt = "+".join(map(str, terms)) + "="
    return {"prompt": prompt, "response": chain_response(terms), "answer": str(sum(terms))}


def _check_chain(prompt: str, completion: str) -> bool:
    return final_result(completion) == str(sum(_parse(r"\d+(\+\d+)+=", prompt)))


def _count_sums() -> int:
    return len({s for k in SUM_COUNTS for s in range(k * SUM_TERMS[0], k * SUM_TERMS[-1] + 1)})


CHAIN_SUM = TaskSpec(
    name="chain_sum",
    description="running sum of 4-5 two-digit numbers; each step's first operand is the "
    "previous step's result, a strict left-to-right dependency chain",
    sample=_sample_chain,
    check=_check_chain,
    alphabet=DIGITS + "+=;",
    max_prompt_chars=len("+".join([str(SUM_TERMS[-1])] * max(SUM_COUNTS)) + "="),
    max_response_chars=len(chain_response([SUM_TERMS[-1]] * max(SUM_COUNTS))),
    count_answers=_count_sums,
)
