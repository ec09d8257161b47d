"""Answer extraction and equivalence.

Extraction finds the final answer the way each prompt format asks for it (GSM8K `#### N`
or a final number, Minerva's "The final answer is X", a `\\boxed{}`); equivalence is decided
by math-verify (fractions, LaTeX, units, percentages, intervals), after an exact decimal
comparison for plain numbers (thousands separators and `$` stripped), which is both faster
and exact for GSM8K's integers.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from math_verify import parse, verify

STYLES = ("gsm8k", "minerva", "boxed")

_NUMBER = re.compile(r"-?[$]?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?[$]?\.\d+")
_GSM8K_FINAL = re.compile(r"####\s*(.+)")
_THE_ANSWER_IS = re.compile(r"answer is[:\s]*(.+?)(?:\.\s|\.?$)", re.IGNORECASE | re.MULTILINE)
_MINERVA_FINAL = re.compile(r"final answer is\s*(.+?)\.?\s*I hope it is correct", re.IGNORECASE | re.DOTALL)


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` (or `\\fbox{...}`), nested braces included."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    brace = text.find("{", start)
    if brace < 0:
        return None
    depth = 0
    for i in range(brace, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[brace + 1 : i].strip()
    return None


def _last_number(text: str) -> str | None:
    numbers = _NUMBER.findall(text)
    return numbers[-1] if numbers else None


def _strip_math(answer: str) -> str:
    answer = answer.strip()
    if len(answer) > 1 and answer.startswith("$") and answer.endswith("$"):
        answer = answer[1:-1].strip()
    return answer


def extract_answer(text: str, style: str) -> str | None:
    """The final answer written in `text`, or None when there is none."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    if style == "gsm8k":
        for pattern in (_GSM8K_FINAL, _THE_ANSWER_IS):
            found = pattern.findall(text)
            if found:
                return _last_number(found[-1]) or found[-1].strip()
        boxed = last_boxed(text)
        return boxed if boxed is not None else _last_number(text)
    if style == "minerva":
        found = _MINERVA_FINAL.findall(text)
        if found:
            return _strip_math(found[-1])
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    found = _MINERVA_FINAL.findall(text)
    return _strip_math(found[-1]) if found else None


def _as_decimal(answer: str) -> Decimal | None:
    cleaned = answer.strip().replace(",", "").replace("$", "").rstrip(".")
    try:
        return Decimal(cleaned)
    except InvalidOperation:
        return None


def is_equivalent(gold: str, answer: str | None) -> bool:
    """Does `answer` state the same value as `gold` (math-verify semantics)?"""
    if answer is None or not answer.strip():
        return False
    a, b = _as_decimal(gold), _as_decimal(answer)
    if a is not None and b is not None:
        return a == b
    return bool(verify(parse(f"${_strip_math(gold)}$"), parse(f"${_strip_math(answer)}$")))


def grade(completion: str, gold: str, style: str) -> tuple[str | None, bool]:
    """(extracted answer, correct) of one completion."""
    answer = extract_answer(completion, style)
    return answer, is_equivalent(gold, answer)
