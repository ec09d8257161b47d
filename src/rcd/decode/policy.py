"""Commit policies: which masked positions of the current block take their token this step.

Two rules (docs/method.md, section 1): a fixed schedule (LLaDA: the block's masked count split
evenly over its steps, remainder to the earliest, top-k confidence; or Dream's time
schedule), and a dynamic threshold (every position above tau, and at least the single most
confident one (Fast-dLLM) or, given a step budget, the fixed schedule's count (SDAR's
low_confidence_dynamic)), optionally within sub-blocks (Fast-dLLM v2). Token choice (greedy or
Gumbel-max sampling) is here too, and the confidence the rules read: its kind (`CONFIDENCES`:
probability, margin, negative entropy) and the pass it is read from (`CONFIDENCE_PASSES`: the
step's own, or for RCD a residual-free pass of the same model).

The functions are the rules' arithmetic; `FixedSchedule` and `Threshold` are the objects
the decode loop drives (`DecodeConfig.policy()` builds the one a config asks for).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from ..residual import at_least_fp32


def fixed_schedule(masked_count: torch.Tensor, steps: int) -> torch.Tensor:
    """Tokens to commit at each step, (B, steps): even split, remainder to the earliest."""
    base = torch.div(masked_count, steps, rounding_mode="floor")
    remainder = masked_count % steps
    counts = base[:, None].expand(-1, steps).clone()
    counts += (torch.arange(steps, device=masked_count.device)[None, :] < remainder[:, None]).long()
    return counts


CONFIDENCES = ("prob", "margin", "entropy")
# which forward pass the confidence is read from: the step's own (with RCD, the residual pass that
# also chose the token), or an extra pass of the same model over plain mask embeddings at the masked
# positions (RCD's residual-free confidence: one more forward pass per step, counted)
CONFIDENCE_PASSES = ("step", "plain")


def choose_tokens(
    logits: torch.Tensor,
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
    banned: int | None = None,
    confidence: str = "prob",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token per position and its confidence (`position_confidence` of the `confidence` kind).

    temperature 0 is greedy; above 0, Gumbel-max in float64 as LLaDA does, which samples
    from softmax(z / temperature). Confidence is always taken from softmax(z), untempered.
    `banned` (the mask id) is never chosen: committing [M] would leave the position masked
    forever; a trained dLLM gives it ~0 probability, so this changes nothing else.
    """
    logits = _without(logits, banned)
    if temperature > 0:
        noise = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=torch.float64)
        gumbel = -torch.log(-torch.log(noise.clamp_min(1e-300)))
        tokens = (logits.double() + temperature * gumbel).argmax(dim=-1)
    else:
        tokens = logits.argmax(dim=-1)
    return tokens, token_confidence(logits, tokens, confidence)


def token_confidence(
    logits: torch.Tensor, tokens: torch.Tensor, confidence: str = "prob", banned: int | None = None
) -> torch.Tensor:
    """`position_confidence` of softmax(z) for the given tokens, `banned` (the mask id) left out
    of p; so another pass's logits (the residual-free pass) can vouch for tokens chosen elsewhere."""
    probs = torch.softmax(at_least_fp32(_without(logits, banned)), dim=-1)
    return position_confidence(probs, tokens, confidence)


def _without(logits: torch.Tensor, banned: int | None) -> torch.Tensor:
    """logits with the `banned` token's set to -inf: a copy, so the caller's logits are never changed."""
    if banned is None:
        return logits
    logits = logits.clone()
    logits[..., banned] = float("-inf")
    return logits


def position_confidence(probs: torch.Tensor, tokens: torch.Tensor, kind: str = "prob") -> torch.Tensor:
    """How sure the model is at each position, higher is surer (Dream's `alg` choices):
    `prob` the chosen token's probability (LLaDA, SDAR, Dream `maskgit_plus`), `margin` the
    top-1 minus the top-2 probability (`topk_margin`), `entropy` the negative entropy
    sum p log p (`entropy`; 0 for a one-hot p)."""
    if kind == "prob":
        return probs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    if kind == "margin":
        top = probs.topk(2, dim=-1).values
        return top[..., 0] - top[..., 1]
    if kind == "entropy":
        return -torch.special.entr(probs).sum(dim=-1)
    raise ValueError(f"confidence must be one of {CONFIDENCES}, got {kind!r}")


COMMIT_ORDERS = ("confidence", "random", "left-to-right")


def order_scores(
    order: str, confidence: torch.Tensor, generator: torch.Generator | None = None, temperature: float = 0.0
) -> torch.Tensor:
    """Ranking of a fixed schedule's commits: the model's confidence (LLaDA), a fresh random
    order at every step, or left to right (autoregressive-like). Higher is committed first.

    temperature > 0 (confidence order only) draws the ranking instead: confidence / T plus
    Gumbel noise, whose top k are k draws without replacement from softmax(confidence / T),
    the law of Dream's `alg_temp` (`torch.multinomial` there).
    """
    if order == "confidence":
        if temperature > 0:
            noise = torch.rand(
                confidence.shape, generator=generator, device=confidence.device, dtype=torch.float64
            )
            return confidence.double() / temperature - torch.log(-torch.log(noise.clamp_min(1e-300)))
        return confidence
    if order == "random":
        return torch.rand(confidence.shape, generator=generator, device=confidence.device)
    return -torch.arange(confidence.shape[-1], device=confidence.device, dtype=confidence.dtype).expand_as(
        confidence
    )


def commit_top_k(confidence: torch.Tensor, candidates: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Bool (B, N): the k[b] most confident candidate positions of each row."""
    scores = confidence.masked_fill(~candidates, float("-inf"))
    order = scores.argsort(dim=-1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(-1, order, torch.arange(order.shape[-1], device=order.device).expand_as(order))
    return candidates & (rank < k[:, None])


def commit_threshold(confidence: torch.Tensor, candidates: torch.Tensor, threshold: float) -> torch.Tensor:
    """Bool (B, N): candidates with confidence > threshold, plus each row's most confident."""
    scores = confidence.masked_fill(~candidates, float("-inf"))
    best = torch.zeros_like(candidates)
    best.scatter_(-1, scores.argmax(dim=-1, keepdim=True), True)
    return candidates & ((scores > threshold) | best)


class CommitPolicy:
    """A commit rule as a small stateful object, in the manner of a diffusers scheduler.

    The decode loop calls `start_block` with the block's masked positions, then, while
    the block has masks and `done()` is False, one forward pass and `commit` per step.
    `describe` names the setting in reports; `name` is the rule's kind ("fixed", ...).
    A new rule is one subclass of these four methods.
    """

    name: ClassVar[str]

    def start_block(self, masked: torch.Tensor) -> None:
        """masked (B, block_length): the block's masked positions before its first step."""

    def done(self) -> bool:
        """True once the rule's step budget for the block is spent."""
        return False

    def commit(self, confidence: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """Bool (B, block_length): candidates (still masked, active rows) to commit this step."""
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


class FixedSchedule(CommitPolicy):
    """`steps_per_block` steps per block, each committing its share (`fixed_schedule`) of
    the block's masks, most confident first (LLaDA) or in another `order` (COMMIT_ORDERS;
    "random" draws from `generator`); `commit_temperature` > 0 draws the confidence order
    (`order_scores`, Dream's `alg_temp`)."""

    name = "fixed"

    def __init__(
        self,
        steps_per_block: int,
        n_blocks: int = 1,
        order: str = "confidence",
        generator: torch.Generator | None = None,
        commit_temperature: float = 0.0,
    ):
        if order not in COMMIT_ORDERS:
            raise ValueError(f"order must be one of {COMMIT_ORDERS}, got {order!r}")
        self.steps_per_block, self.n_blocks = steps_per_block, n_blocks
        self.order, self.generator, self.commit_temperature = order, generator, commit_temperature
        self._counts: torch.Tensor | None = None
        self._step = 0

    def start_block(self, masked: torch.Tensor) -> None:
        self._counts = fixed_schedule(masked.sum(-1), self.steps_per_block)
        self._step = 0

    def done(self) -> bool:
        return self._step >= self.steps_per_block

    def commit(self, confidence: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        scores = order_scores(self.order, confidence, self.generator, self.commit_temperature)
        chosen = commit_top_k(scores, candidates, self._counts[:, self._step])
        self._step += 1
        return chosen

    def describe(self) -> str:
        order = "" if self.order == "confidence" else f" {self.order}"
        drawn = f" commit-T={self.commit_temperature:g}" if self.commit_temperature > 0 else ""
        return f"steps={self.steps_per_block * self.n_blocks}{order}{drawn}"


class TimeSchedule(FixedSchedule):
    """Dream's schedule (`diffusion_generate`, one block or per block): time runs from 1 to
    `eps` in `steps_per_block` equal steps; the step from t to s commits int(m (1 - s/t)) of
    the block's m remaining masks (float32, as Dream computes it), the last step all of them."""

    def __init__(
        self,
        steps_per_block: int,
        n_blocks: int = 1,
        order: str = "confidence",
        generator: torch.Generator | None = None,
        commit_temperature: float = 0.0,
        eps: float = 1e-3,
    ):
        super().__init__(steps_per_block, n_blocks, order, generator, commit_temperature)
        self.times = torch.linspace(1, eps, steps_per_block + 1)

    def start_block(self, masked: torch.Tensor) -> None:
        self._step = 0

    def commit(self, confidence: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        remaining = candidates.sum(-1)
        if self._step < self.steps_per_block - 1:
            t, s = self.times[self._step], self.times[self._step + 1]
            counts = (remaining.float() * (1 - s / t).to(remaining.device)).long()  # no host sync
        else:
            counts = remaining
        scores = order_scores(self.order, confidence, self.generator, self.commit_temperature)
        chosen = commit_top_k(scores, candidates, counts)
        self._step += 1
        return chosen

    def describe(self) -> str:
        return super().describe() + " time"


class Threshold(CommitPolicy):
    """Every candidate whose confidence exceeds `threshold`, and at least the most
    confident one (Fast-dLLM); with `steps_per_block`, at least the fixed schedule's count
    of the step instead (`fixed_schedule` over the whole block), and the block's loop ends
    after that many steps: SDAR's `low_confidence_dynamic`. When fewer candidates than the
    count exceed the threshold, the count's most confident are committed."""

    name = "threshold"

    def __init__(self, threshold: float, steps_per_block: int | None = None, n_blocks: int = 1):
        self.threshold = threshold
        self.steps_per_block, self.n_blocks = steps_per_block, n_blocks
        self._counts: torch.Tensor | None = None
        self._step = 0

    def start_block(self, masked: torch.Tensor) -> None:
        if self.steps_per_block is not None:
            self._counts = fixed_schedule(masked.sum(-1), self.steps_per_block)
        self._step = 0

    def done(self) -> bool:
        return self.steps_per_block is not None and self._step >= self.steps_per_block

    def commit(self, confidence: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        if self._counts is None:
            return commit_threshold(confidence, candidates, self.threshold)
        need = self._counts[:, self._step]
        self._step += 1
        above = candidates & (confidence > self.threshold)
        enough = above.sum(-1) >= need
        return torch.where(enough[:, None], above, commit_top_k(confidence, candidates, need))

    def describe(self) -> str:
        budget = "" if self.steps_per_block is None else f" steps={self.steps_per_block * self.n_blocks}"
        return f"tau={self.threshold:g}{budget}"


class SubBlocks(CommitPolicy):
    """Fast-dLLM v2's rule: a block is filled in sub-blocks of `sub_block_length`, left to
    right; a step commits, within the first sub-block that still has masks, every mask whose
    confidence exceeds `threshold` and at least the most confident one (`commit_threshold`).
    A block whose first position is still masked commits it alone first: Fast-dLLM v2
    decodes a block's first token autoregressively, from the previous block's last position
    (a shifted model's prediction there). No step budget: a block runs until it is full."""

    name = "sub-blocks"

    def __init__(self, threshold: float, sub_block_length: int):
        self.threshold, self.sub_block_length = threshold, sub_block_length

    def commit(self, confidence: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        n = candidates.shape[-1]
        columns = torch.arange(n, device=candidates.device)
        first_mask = torch.where(candidates, columns, n).min(-1).values
        current = (columns // self.sub_block_length)[None, :] == (first_mask // self.sub_block_length)[
            :, None
        ]
        chosen = commit_threshold(confidence, candidates & current, self.threshold)
        first_alone = candidates & (columns == 0)
        return torch.where(candidates[:, :1], first_alone, chosen)

    def describe(self) -> str:
        return f"tau={self.threshold:g} sub-block={self.sub_block_length}"
