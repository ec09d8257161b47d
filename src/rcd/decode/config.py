"""Decoding options as one dataclass, shared by the CLI, sweeps and evaluation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .passes import CACHE_MODES
from .policy import COMMIT_ORDERS


@dataclass
class DecodeConfig:
    gen_length: int = field(default=64, metadata={"help": "tokens to generate after the prompt"})
    block_length: int = field(default=32, metadata={"help": "tokens per block (decoded left to right)"})
    steps: int | None = field(
        default=None, metadata={"help": "fixed schedule: total denoising steps (default: gen_length)"}
    )
    threshold: float | None = field(
        default=None, metadata={"help": "dynamic rule: commit positions with confidence > threshold"}
    )
    order: str = field(
        default="confidence",
        metadata={"help": "fixed schedule: commit order (confidence, random, left-to-right)", "choices": COMMIT_ORDERS},
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
        check_decode_options(self.gen_length, self.block_length, self.steps, self.threshold, self.temperature)

    def generate_kwargs(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """Short name of the commit rule, e.g. 'steps=64' or 'tau=0.9'."""
        if self.threshold is not None:
            return f"tau={self.threshold:g}"
        order = "" if self.order == "confidence" else f" {self.order}"
        return f"steps={self.steps or self.gen_length}{order}"


def check_decode_options(
    gen_length: int, block_length: int, steps: int | None, threshold: float | None, temperature: float
) -> int | None:
    """The checks of decoding options that need no model; returns steps per block (None: threshold)."""
    if gen_length <= 0 or block_length <= 0:
        raise ValueError("gen_length and block_length must be positive")
    if gen_length % block_length:
        raise ValueError(f"gen_length ({gen_length}) must be a multiple of block_length ({block_length})")
    if temperature < 0:
        raise ValueError("temperature must be >= 0")
    if steps is not None and threshold is not None:
        raise ValueError("give steps (fixed schedule) or threshold (dynamic), not both")
    n_blocks = gen_length // block_length
    if threshold is not None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError("threshold must lie in [0, 1]")
        return None
    steps = gen_length if steps is None else steps
    if steps <= 0 or steps % n_blocks:
        raise ValueError(f"steps ({steps}) must be a positive multiple of the number of blocks ({n_blocks})")
    if steps // n_blocks > block_length:
        raise ValueError(
            f"{steps // n_blocks} steps per block exceed block_length ({block_length}): "
            "some steps would commit nothing"
        )
    return steps // n_blocks
