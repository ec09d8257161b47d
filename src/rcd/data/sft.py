"""Supervised fine-tuning data for dLLMs: prompt/response pairs, tokenized and collated.

A batch has the layout decoding uses: prompts left-padded to a common length P, responses
(each ending in EOS) right-padded with EOS to a common length R, so the response region is
[P, P + R) in every row. The EOS padding is trained on, as LLaDA's SFT does, so the model
learns to stop: decoding then fills unused tails with EOS.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from ..tokenizer import check_representable
from .jsonl import DataError, iter_jsonl

OVERFLOW_RULES = ("drop", "truncate")


@dataclass(frozen=True)
class SftExample:
    index: int  # row in the file (0-based over kept + dropped rows): keys per-example noise
    prompt_ids: tuple[int, ...]
    response_ids: tuple[int, ...]  # ends with EOS unless truncated


@dataclass
class SftStats:
    kept: int = 0
    dropped: int = 0
    truncated: int = 0

    def describe(self) -> str:
        return f"{self.kept} examples kept, {self.dropped} dropped, {self.truncated} truncated (over-long)"


def prompt_response_texts(
    row: dict[str, Any], tokenizer: PreTrainedTokenizerBase, where: str
) -> tuple[str, str]:
    """(prompt, response) from a `prompt`/`response` row or a chat `messages` row.

    Chat rows: the last message must be the assistant's answer; the rest is rendered with
    the tokenizer's chat template (generation prompt added) when it has one, else as
    'role: content' lines.
    """
    if "messages" in row:
        messages = row["messages"]
        if (
            not isinstance(messages, list)
            or not messages
            or not all(isinstance(m, dict) and "role" in m and "content" in m for m in messages)
        ):
            raise DataError(f"{where}: 'messages' must be a non-empty list of {{role, content}} objects")
        if messages[-1]["role"] != "assistant":
            raise DataError(f"{where}: the last message must have role 'assistant' (the response)")
        context = messages[:-1]
        if getattr(tokenizer, "chat_template", None):
            prompt = tokenizer.apply_chat_template(context, tokenize=False, add_generation_prompt=True)
        else:
            prompt = "".join(f"{m['role']}: {m['content']}\n" for m in context) + "assistant: "
        return prompt, str(messages[-1]["content"])
    missing = [k for k in ("prompt", "response") if k not in row]
    if missing:
        raise DataError(
            f"{where}: needs string fields 'prompt' and 'response' (or 'messages'); missing {missing}"
        )
    check_string_fields(row, ("prompt", "response"), where)
    return row["prompt"], row["response"]


def check_string_fields(row: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    """Refuse a field of the wrong type by name (a number where text belongs is not 'missing')."""
    for key in keys:
        if not isinstance(row[key], str):
            raise DataError(
                f"{where}: field {key!r} must be a string, got {type(row[key]).__name__} {row[key]!r:.40}"
            )


def load_sft(
    path: str | Path,
    tokenizer: PreTrainedTokenizerBase,
    *,
    max_prompt_length: int,
    max_response_length: int,
    overflow: str = "drop",
) -> tuple[list[SftExample], SftStats]:
    """Tokenized examples of a JSONL file; over-long ones dropped or truncated, and counted.

    Truncation keeps the end of the prompt (next to the response) and the start of the
    response.
    """
    rows = ((f"{path}:{number}", row) for number, row in iter_jsonl(path))
    examples, stats = [], SftStats()
    for example in tokenize_rows(rows, tokenizer, max_prompt_length, max_response_length, overflow, stats):
        examples.append(example)
    stats.kept = len(examples)
    if not examples:
        raise DataError(f"{path}: no usable examples ({stats.describe()})")
    return examples, stats


def tokenize_rows(
    rows: Iterable[tuple[str, dict[str, Any]]],
    tokenizer: PreTrainedTokenizerBase,
    max_prompt_length: int,
    max_response_length: int,
    overflow: str,
    stats: SftStats,
) -> Iterator[SftExample]:
    """Examples of (where, row) pairs, lazily; `stats` counts what the overflow rule did.

    The example index is the row's position among all rows (kept and dropped).
    """
    if overflow not in OVERFLOW_RULES:
        raise ValueError(f"overflow must be one of {OVERFLOW_RULES}")
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer needs an EOS token (responses end with it)")
    for index, (where, row) in enumerate(rows):
        prompt, response = prompt_response_texts(row, tokenizer, where)
        prompt_ids = check_representable(tokenizer, prompt, f"{where}: prompt")
        response_ids = check_representable(tokenizer, response, f"{where}: response") + [
            tokenizer.eos_token_id
        ]
        if not prompt_ids:
            raise DataError(f"{where}: empty prompt")
        too_long = len(prompt_ids) > max_prompt_length or len(response_ids) > max_response_length
        if too_long and overflow == "drop":
            stats.dropped += 1
            continue
        if too_long:
            stats.truncated += 1
            prompt_ids = prompt_ids[-max_prompt_length:]
            response_ids = response_ids[:max_response_length]
        yield SftExample(index, tuple(prompt_ids), tuple(response_ids))


@dataclass
class SftCollator:
    """Batches in the decoding layout; R is rounded up to whole blocks when given.

    Responses are EOS-padded to the batch's longest, or to `response_length` when set: a
    model then sees, in training, the response length it is decoded with (a data set whose
    responses all have one length otherwise never shows it how to fill a longer window).
    """

    pad_token_id: int
    eos_token_id: int
    block_length: int | None = None
    response_length: int | None = None

    def __call__(self, examples: list[SftExample]) -> dict[str, torch.Tensor]:
        prompt_len = max(len(e.prompt_ids) for e in examples)
        response_len = max([len(e.response_ids) for e in examples] + [self.response_length or 0])
        if self.block_length:
            response_len = -(-response_len // self.block_length) * self.block_length
        ids = torch.full((len(examples), prompt_len + response_len), self.eos_token_id, dtype=torch.long)
        valid = torch.ones_like(ids, dtype=torch.bool)
        for row, e in enumerate(examples):
            pad = prompt_len - len(e.prompt_ids)
            ids[row, :pad] = self.pad_token_id
            valid[row, :pad] = False
            ids[row, pad:prompt_len] = torch.tensor(e.prompt_ids)
            ids[row, prompt_len : prompt_len + len(e.response_ids)] = torch.tensor(e.response_ids)
        return {
            "input_ids": ids,
            "attention_mask": valid,
            "prompt_length": torch.tensor(prompt_len),
            "index": torch.tensor([e.index for e in examples]),
        }
