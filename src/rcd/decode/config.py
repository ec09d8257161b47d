"""Decoding options as one validated dataclass, shared by the CLI, sweeps and evaluation.

Everything that can be checked without a model is checked in `__post_init__`, so a bad
value fails before any model loads; checks that need the model (its attention mode, its
trained block size, whether its forward has a KV cache) stay in `generate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .passes import CACHE_MODES
from .policy import (
    COMMIT_ORDERS,
    CONFIDENCE_PASSES,
    CONFIDENCES,
    CommitPolicy,
    FixedSchedule,
    SubBlocks,
    Threshold,
    TimeSchedule,
)

SCHEDULES = ("even", "time")


@dataclass(frozen=True)
class DecodeConfig:
    gen_length: int = field(default=64, metadata={"help": "tokens to generate after the prompt"})
    block_length: int = field(default=32, metadata={"help": "tokens per block (decoded left to right)"})
    steps: int | None = field(
        default=None,
        metadata={
            "help": "total denoising steps (default: gen_length); with --threshold, each block's step budget, "
            "each step committing at least the fixed schedule's count (SDAR's low_confidence_dynamic)"
        },
    )
    threshold: float | None = field(
        default=None,
        metadata={
            "help": "dynamic rule: commit positions with confidence > threshold, at least one "
            "(with --steps: at least the fixed schedule's count)"
        },
    )
    sub_block_length: int | None = field(
        default=None,
        metadata={
            "help": "with --threshold: fill each block in sub-blocks of this many tokens, left to right, "
            "a masked first position alone first (Fast-dLLM v2's small_block_size)"
        },
    )
    order: str = field(
        default="confidence",
        metadata={
            "help": "fixed schedule: commit order (confidence, random, left-to-right)",
            "choices": COMMIT_ORDERS,
        },
    )
    schedule: str = field(
        default="even",
        metadata={
            "help": "fixed schedule: a block's masks split evenly over its steps (even: LLaDA), or "
            "int(m (1 - s/t)) of the m left at each step of time 1 -> 0.001 (time: Dream's diffusion_generate)",
            "choices": SCHEDULES,
        },
    )
    confidence: str = field(
        default="prob",
        metadata={
            "help": "what ranks positions and meets the threshold: the chosen token's probability (prob: LLaDA, "
            "SDAR, Dream maskgit_plus), top-1 minus top-2 probability (margin: Dream topk_margin), or "
            "negative entropy (entropy: Dream entropy; fixed schedules only)",
            "choices": CONFIDENCES,
        },
    )
    confidence_pass: str = field(
        default="step",
        metadata={
            "help": "the forward pass the confidence is read from: the step's own (step), or, with RCD, one more "
            "pass of the same model with plain mask embeddings at the masked positions (plain: the residual-free "
            "confidence of the token the residual pass chose; one more forward pass per step, counted; plain "
            "decoding's step pass is residual-free already, so it adds none)",
            "choices": CONFIDENCE_PASSES,
        },
    )
    commit_temperature: float = field(
        default=0.0,
        metadata={
            "help": "fixed schedule: draw the positions to commit from softmax(confidence / T) without "
            "replacement (Dream's alg_temp); 0 commits the most confident"
        },
    )
    temperature: float = field(default=0.0, metadata={"help": "sampling temperature; 0 is greedy"})
    stop_at_eos: bool = field(default=False, metadata={"help": "stop a row after a block containing EOS"})
    use_cache: bool = field(default=True, metadata={"help": "False: no cache at all (same as --cache none)"})
    cache: str = field(
        default="exact",
        metadata={
            "help": "exact: block-causal KV cache (same tokens); none; prefix/dual: approximate "
            "Fast-dLLM caches for bidirectional models",
            "choices": CACHE_MODES,
        },
    )

    def __post_init__(self) -> None:
        if self.gen_length <= 0 or self.block_length <= 0:
            raise ValueError("gen_length and block_length must be positive")
        if self.gen_length % self.block_length:
            raise ValueError(
                f"gen_length ({self.gen_length}) must be a multiple of block_length ({self.block_length})"
            )
        if not (self.temperature >= 0 and math.isfinite(self.temperature)):  # nan, inf: garbage tokens
            raise ValueError(f"temperature must be a finite number >= 0, got {self.temperature}")
        if self.cache not in CACHE_MODES:
            raise ValueError(f"cache must be one of {CACHE_MODES}, got {self.cache!r}")
        if not self.use_cache and self.cache != "exact":
            raise ValueError(f"use_cache=False turns caching off; it contradicts cache={self.cache!r}")
        if self.order not in COMMIT_ORDERS:
            raise ValueError(f"order must be one of {COMMIT_ORDERS}, got {self.order!r}")
        if self.order != "confidence" and self.threshold is not None:
            raise ValueError(
                f"order must be one of {COMMIT_ORDERS}; a threshold rule commits by confidence only"
            )
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.schedule != "even" and self.threshold is not None:
            raise ValueError("schedule applies to fixed steps; a threshold rule has no schedule")
        if self.confidence not in CONFIDENCES:
            raise ValueError(f"confidence must be one of {CONFIDENCES}, got {self.confidence!r}")
        if self.confidence_pass not in CONFIDENCE_PASSES:
            raise ValueError(
                f"confidence_pass must be one of {CONFIDENCE_PASSES}, got {self.confidence_pass!r}"
            )
        if self.confidence == "entropy" and self.threshold is not None:
            raise ValueError(
                "confidence 'entropy' (negative entropy) has no [0, 1] scale for a threshold: "
                "use prob or margin, or a fixed schedule"
            )
        if self.commit_temperature < 0:
            raise ValueError(f"commit_temperature must be >= 0, got {self.commit_temperature}")
        if self.commit_temperature > 0 and (self.threshold is not None or self.order != "confidence"):
            raise ValueError(
                "commit_temperature draws a fixed schedule's confidence order: "
                "drop it, or use --steps with --order confidence"
            )
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must lie in [0, 1], got {self.threshold}")
        if self.sub_block_length is not None:
            if self.threshold is None or self.steps is not None:
                raise ValueError(
                    "sub_block_length is Fast-dLLM v2's threshold rule, which has no step budget: "
                    "give --threshold and drop --steps"
                )
            if self.sub_block_length <= 0 or self.block_length % self.sub_block_length:
                raise ValueError(
                    f"sub_block_length ({self.sub_block_length}) must be a positive divisor of "
                    f"block_length ({self.block_length})"
                )
        if self.threshold is not None and self.steps is None:
            return
        steps, n_blocks = self.total_steps, self.n_blocks
        if steps <= 0 or steps % n_blocks:
            raise ValueError(
                f"steps ({steps}) must be a positive multiple of the number of blocks ({n_blocks})"
            )
        if steps // n_blocks > self.block_length:
            raise ValueError(
                f"{steps // n_blocks} steps per block exceed block_length ({self.block_length}): "
                "some steps would commit nothing"
            )

    @property
    def n_blocks(self) -> int:
        return self.gen_length // self.block_length

    @property
    def total_steps(self) -> int:
        """Steps of the fixed schedule (gen_length when not given: one token per step)."""
        return self.gen_length if self.steps is None else self.steps

    @property
    def cache_mode(self) -> str:
        """The cache mode asked for; `use_cache=False` is the older spelling of "none"."""
        return self.cache if self.use_cache else "none"

    def policy(self, generator=None) -> CommitPolicy:
        """A fresh commit policy of this setting (policies keep per-block state); `generator`
        seeds a random commit order."""
        if self.sub_block_length is not None:
            return SubBlocks(self.threshold, self.sub_block_length)
        if self.threshold is not None:
            per_block = None if self.steps is None else self.steps // self.n_blocks
            return Threshold(self.threshold, per_block, self.n_blocks)
        rule = TimeSchedule if self.schedule == "time" else FixedSchedule
        return rule(
            self.total_steps // self.n_blocks, self.n_blocks, self.order, generator, self.commit_temperature
        )

    @property
    def tokens_per_step(self) -> float | None:
        """Tokens a fixed schedule commits per step (None for a threshold: it varies)."""
        if self.threshold is not None:
            return None
        return self.gen_length / self.total_steps

    def describe(self) -> str:
        """Short name of the commit rule, e.g. 'steps=64' or 'tau=0.9' ('tau=0.9 margin', 'tau=0.9 plain-pass')."""
        confidence = "" if self.confidence == "prob" else f" {self.confidence}"
        source = "" if self.confidence_pass == "step" else f" {self.confidence_pass}-pass"
        return self.policy().describe() + confidence + source
