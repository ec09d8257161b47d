"""Accuracy against parallelism: decode an eval set under many commit settings, per method.

This is the paper's Figure 4 (accuracy vs tokens per step) for any models, used by both
`rcd demo` and `rcd sweep`. Every forward pass counts, the warm-start reference pass
included, so methods are compared at the parallelism they really achieve.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from ..decode import DecodeConfig
from ..errors import UsageError
from ..residual import ResidualConfig
from .decoder import Decoder

Checker = Callable[[dict, str], bool]


def exact_match(example: dict, completion: str) -> bool:
    return completion.strip() == str(example["answer"]).strip()


@dataclass(frozen=True)
class SweepConfig:
    """The commit settings a sweep decodes under, and its batch size."""

    tokens_per_step: tuple[int, ...] = field(
        default=(1, 2, 4, 8), metadata={"help": "fixed schedules: tokens committed per step, comma-separated"}
    )
    thresholds: tuple[float, ...] = field(
        default=(0.5, 0.6, 0.7, 0.8, 0.9, 0.95), metadata={"help": "confidence thresholds, comma-separated"}
    )
    batch_size: int = field(default=256, metadata={"help": "problems decoded together"})

    def __post_init__(self) -> None:
        if any(k < 1 for k in self.tokens_per_step):
            raise ValueError(f"tokens per step must be >= 1, got {self.tokens_per_step}")
        wrong = [t for t in self.thresholds if not 0.0 <= t <= 1.0]
        if wrong:
            raise ValueError(f"thresholds {wrong} must lie in [0, 1]")
        if self.batch_size < 1:
            raise ValueError("the sweep's batch_size must be >= 1")

    def settings(self, base: DecodeConfig) -> list[DecodeConfig]:
        """Fixed schedules committing k tokens per step, then thresholds. A k that does not
        divide the block is refused (never dropped silently)."""
        bad = [k for k in self.tokens_per_step if base.block_length % k]
        if bad:
            raise UsageError(
                f"tokens per step {bad} must divide the block length {base.block_length} "
                f"(gen length {base.gen_length}); pick divisors of it"
            )
        fixed = [replace(base, steps=base.gen_length // k, threshold=None) for k in self.tokens_per_step]
        return fixed + [replace(base, steps=None, threshold=t) for t in self.thresholds]


@dataclass
class Method:
    """A model and how it is decoded: `residual=None` is plain SeqD decoding."""

    name: str
    model: nn.Module
    residual: ResidualConfig | None = None
    reference: nn.Module | None = None

    def decoder(self, tokenizer: PreTrainedTokenizerBase, config: DecodeConfig) -> Decoder:
        return Decoder(self.model, tokenizer, config, self.residual, self.reference)


def rcd_methods(
    target: nn.Module,
    residual: ResidualConfig,
    reference: nn.Module | None = None,
    baseline: nn.Module | None = None,
    cold_start: bool = True,
) -> list[Method]:
    """The comparison of a sweep: SeqD baseline, RCD warm start (with a reference) and cold start
    (always without a reference; with one only if `cold_start`)."""
    methods = [Method("seqd", baseline)] if baseline is not None else []
    if reference is not None:
        methods.append(Method("rcd", target, replace(residual, init="reference"), reference))
        if not cold_start:
            return methods
    cold = replace(residual, init="zero")
    return methods + [Method("rcd-cold" if reference is not None else "rcd", target, cold)]


@dataclass
class Point:
    setting: str
    rule: str  # the commit policy's kind ("fixed", "threshold")
    tokens_per_step: float
    accuracy: float
    n: int
    stderr: float  # of the accuracy over n problems: sqrt(p(1-p)/n)
    forward_passes: int
    seconds: float
    extra: dict = field(default_factory=dict)


def accuracy_stderr(accuracy: float, n: int) -> float:
    """Standard error of an accuracy measured on n problems (binomial): what one run's
    difference of a few points is worth at that size."""
    return math.sqrt(accuracy * (1 - accuracy) / n)


def parallelism_settings(
    gen_length: int,
    block_length: int,
    tokens_per_step: Sequence[int] = (1, 2, 4, 8),
    thresholds: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95),
) -> list[DecodeConfig]:
    """`SweepConfig(tokens_per_step, thresholds).settings(...)` for one gen/block length."""
    try:
        config = SweepConfig(tuple(tokens_per_step), tuple(thresholds))
    except ValueError as err:
        raise UsageError(str(err)) from err
    return config.settings(DecodeConfig(gen_length=gen_length, block_length=block_length))


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
    decoder = method.decoder(tokenizer, config)
    correct = tokens = passes = 0
    completions: list[str] = []
    start = time.perf_counter()
    for i in range(0, len(examples), batch_size):
        chunk = examples[i : i + batch_size]
        texts, out = decoder.complete([e["prompt"] for e in chunk])
        completions += texts
        correct += sum(checker(e, t) for e, t in zip(chunk, texts))
        tokens += int(out.generated_tokens.sum())
        passes += int(out.row_forward_passes.sum())
    policy = config.policy()
    point = Point(
        setting=policy.describe(),
        rule=policy.name,
        tokens_per_step=tokens / max(passes, 1),
        accuracy=correct / len(examples),
        n=len(examples),
        stderr=accuracy_stderr(correct / len(examples), len(examples)),
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
