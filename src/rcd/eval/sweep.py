"""Accuracy against parallelism: decode an eval set under many commit settings, per method.

This is the paper's Figure 4 (accuracy vs tokens per step) for any models. Every forward
pass counts, the warm-start reference pass included, so methods are compared at the
parallelism they really achieve.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from ..decode import DecodeConfig, decode_completions, encode_prompts, generate
from ..decode.text import stop_ids
from ..errors import UsageError
from ..residual import ResidualConfig

Checker = Callable[[dict, str], bool]


def exact_match(example: dict, completion: str) -> bool:
    return completion.strip() == str(example["answer"]).strip()


@dataclass
class Method:
    """A model and how it is decoded: `residual=None` is plain SeqD decoding."""

    name: str
    model: nn.Module
    residual: ResidualConfig | None = None
    reference: nn.Module | None = None


@dataclass
class Point:
    setting: str
    tokens_per_step: float
    accuracy: float
    n: int
    forward_passes: int
    seconds: float
    extra: dict = field(default_factory=dict)


def parallelism_settings(
    gen_length: int,
    block_length: int,
    tokens_per_step: Sequence[int] = (1, 2, 4, 8),
    thresholds: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95),
) -> list[DecodeConfig]:
    """Fixed schedules committing k tokens per step, then confidence thresholds.

    A k that does not divide the block, or a threshold outside (0, 1], is refused (never
    dropped silently).
    """
    base = DecodeConfig(gen_length=gen_length, block_length=block_length)
    bad = [k for k in tokens_per_step if k < 1 or block_length % k]
    if bad:
        raise UsageError(
            f"tokens per step {bad} must divide the block length {block_length} "
            f"(gen length {gen_length}); pick divisors of it"
        )
    wrong = [t for t in thresholds if not 0 <= t <= 1]
    if wrong:
        raise UsageError(f"thresholds {wrong} must lie in [0, 1]")
    fixed = [replace(base, steps=gen_length // k) for k in tokens_per_step]
    return fixed + [replace(base, threshold=t) for t in thresholds]


@torch.inference_mode()
def evaluate(
    method: Method,
    config: DecodeConfig,
    examples: Sequence[dict],
    tokenizer: PreTrainedTokenizerBase,
    *,
    checker: Checker = exact_match,
    batch_size: int = 256,
) -> tuple[Point, list[str]]:
    """Accuracy and measured tokens per forward pass of one method under one setting."""
    eos = stop_ids(tokenizer, getattr(method.model, "config", None))
    device = next(method.model.parameters()).device
    correct = tokens = passes = 0
    completions: list[str] = []
    start = time.perf_counter()
    for i in range(0, len(examples), batch_size):
        chunk = examples[i : i + batch_size]
        ids, mask = encode_prompts(tokenizer, [e["prompt"] for e in chunk])
        out = generate(
            method.model,
            ids.to(device),
            attention_mask=mask.to(device),
            residual=method.residual,
            reference=method.reference,
            eos_token_id=eos or None,
            **config.generate_kwargs(),
        )
        texts = decode_completions(tokenizer, out.generated, eos)
        completions += texts
        correct += sum(checker(e, t) for e, t in zip(chunk, texts))
        tokens += int(out.generated_tokens.sum())
        passes += int(out.row_forward_passes.sum())
    point = Point(
        setting=config.describe(),
        tokens_per_step=tokens / max(passes, 1),
        accuracy=correct / len(examples),
        n=len(examples),
        forward_passes=passes,
        seconds=time.perf_counter() - start,
    )
    return point, completions


def sweep(
    methods: Sequence[Method],
    settings: Sequence[DecodeConfig],
    examples: Sequence[dict],
    tokenizer: PreTrainedTokenizerBase,
    *,
    checker: Checker = exact_match,
    batch_size: int = 256,
    progress: bool = True,
) -> dict[str, list[dict]]:
    """{method name: [point as dict, ...]} over all settings."""
    curves: dict[str, list[dict]] = {m.name: [] for m in methods}
    bar = tqdm(total=len(methods) * len(settings), desc="sweep", disable=not progress, dynamic_ncols=True)
    for method in methods:
        for config in settings:
            point, _ = evaluate(method, config, examples, tokenizer, checker=checker, batch_size=batch_size)
            curves[method.name].append(asdict(point))
            bar.set_postfix(method=method.name, setting=point.setting, acc=f"{point.accuracy:.3f}")
            bar.update(1)
    bar.close()
    return curves
