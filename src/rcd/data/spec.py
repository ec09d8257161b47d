"""What a synthetic task is: a seeded example sampler, a grader and its text bounds."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass

Example = dict[str, str]
"""{"prompt": ..., "response": what the model generates, "answer": what is graded}."""

DIGITS = "0123456789"


@dataclass(frozen=True)
class TaskSpec:
    """A synthetic task. `check(prompt, completion)` grades from the prompt alone.

    Grading from the prompt (recomputing the result, or validating a puzzle solution)
    means a stored answer is never trusted and puzzles with several solutions are fair.
    The character bounds also bound word-token counts (a word has at least one character).
    """

    name: str
    description: str
    sample: Callable[[random.Random], Example]
    check: Callable[[str, str], bool]
    alphabet: str
    max_prompt_chars: int
    max_response_chars: int
    words: tuple[str, ...] | None = None
    """Vocabulary for `rcd.word_tokenizer` when the task's text is single-spaced words."""
    split_key: str = "prompt"
    """Example field that train and test never share."""
    count_answers: Callable[[], int] | None = None
    """Number of distinct answers, where the space is small enough to matter (memorisation)."""

    def generate(self, n: int, seed: int) -> list[Example]:
        """n examples, deterministic in seed; a prefix of a longer run with the same seed."""
        rng = random.Random(seed)
        return [self.sample(rng) for _ in range(n)]

    def is_correct(self, example_or_prompt: Mapping[str, str] | str, completion: str) -> bool:
        """Whether a generated completion solves the example (surrounding whitespace ignored)."""
        prompt = example_or_prompt if isinstance(example_or_prompt, str) else example_or_prompt["prompt"]
        return self.check(prompt, completion.strip())
