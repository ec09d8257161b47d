"""Print, per synthetic task, an example, token lengths, answer-space size and generation speed.

Usage: python scripts/task_stats.py [--n 2000] [--seed 0]
"""

from __future__ import annotations

import argparse
import statistics
import time

import rcd
from rcd.data import SYNTHETIC_TASKS, Example, TaskSpec


def length_summary(tokenizer, texts: list[str]) -> str:
    lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=False).input_ids]
    return f"min {min(lengths)} / mean {statistics.mean(lengths):.1f} / max {max(lengths)}"


def report(task: TaskSpec, n: int, seed: int) -> None:
    start = time.perf_counter()
    examples: list[Example] = task.generate(n, seed)
    per_second = n / (time.perf_counter() - start)
    print(f"== {task.name}: {task.description}")
    print(f"   example: {examples[0]}")
    print(f"   declared max chars: prompt {task.max_prompt_chars}, response {task.max_response_chars}")
    tokenizers = {"char": rcd.char_tokenizer(task.alphabet)}
    if task.words:
        tokenizers["word"] = rcd.word_tokenizer(task.words)
    for kind, tokenizer in tokenizers.items():
        print(
            f"   {kind} tokens (vocab {len(tokenizer)}): "
            f"prompt {length_summary(tokenizer, [e['prompt'] for e in examples])}; "
            f"response {length_summary(tokenizer, [e['response'] for e in examples])}"
        )
    distinct = {key: len({e[key] for e in examples}) for key in ("prompt", "answer")}
    possible = f"{task.count_answers():,}" if task.count_answers else "large"
    print(
        f"   distinct in {n}: prompts {distinct['prompt']}, answers {distinct['answer']}; "
        f"answers possible: {possible}"
    )
    print(f"   generation: {per_second:,.0f} examples/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="examples per task")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for task in SYNTHETIC_TASKS.values():
        report(task, args.n, args.seed)


if __name__ == "__main__":
    main()
