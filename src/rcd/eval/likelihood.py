"""Log-likelihood of a continuation under a masked dLLM: the Monte-Carlo bound LLaDA's evaluator uses.

A masked diffusion model has no left-to-right factorisation; its log-likelihood of a
continuation y (T tokens) after a prefix is bounded below by
    ELBO = E_{m ~ U{1..T}} E_{S: |S| = m} [ (T / m) * sum_{i in S} log p(y_i | prefix, y with S masked) ],
the masked objective of training with t = m / T. LLaDA's lm-eval model
(`evaluation/eval_llada.py` of ML-GSAI/LLaDA) reports a Monte-Carlo estimate of it, with
- `mc_num` = 128 draws by default (its multiple-choice runs: 128; MMLU/CMMLU/C-Eval: 1),
  taken in batches of `batch_size` (a divisor of mc_num; 8 or 32 in its scripts),
- per batch, mask counts stratified over 1..T: one uniform offset, then counts evenly
  spaced by T / batch (wrapped), so each batch covers the whole range of levels while
  every draw's count stays uniform (the estimate stays unbiased); masked positions are a
  uniform random subset of that size; the prefix is never masked,
- classifier-free guidance `cfg` (default 0; 0.5 for ARC-C, HellaSwag, PIQA, GPQA, 2.0 for
  TruthfulQA-mc2): logits = u + (cfg + 1)(c - u), with u the logits when the prefix is masked too,
- an optional greedy check (`is_check_greedy`): does one-token-per-step confidence decoding
  of the prefix reproduce the continuation exactly.
rcd follows those settings with its own code; `exact_elbo` enumerates every mask subset
(short continuations only) and is what the estimate converges to. For T = 1 the bound is
the exact log-likelihood log p(y_1 | prefix, [M]).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import torch

from ..models.adapter import DiffusionModel
from ..residual import at_least_fp32


@dataclass
class LikelihoodConfig:
    """Options of loglikelihood requests (lm-eval model_args of the same names)."""

    mc_num: int = field(default=128, metadata={"help": "Monte-Carlo draws per request (LLaDA: 128)"})
    mc_batch_size: int = field(default=32, metadata={"help": "draws per forward pass (divides mc_num)"})
    cfg: float = field(
        default=0.0, metadata={"help": "classifier-free guidance scale (prefix masked as unconditional)"}
    )
    check_greedy: bool = field(
        default=False, metadata={"help": "also report whether greedy decoding gives the continuation"}
    )
    seed: int = field(default=0, metadata={"help": "seed of the masks"})

    def __post_init__(self) -> None:
        if self.mc_num < 1 or self.mc_batch_size < 1 or self.mc_num % self.mc_batch_size:
            raise ValueError("mc_num and mc_batch_size must be >= 1, and mc_batch_size must divide mc_num")
        if not (self.cfg >= 0 and math.isfinite(self.cfg)):
            raise ValueError(f"cfg must be a finite number >= 0, got {self.cfg}")


def stratified_mask_counts(length: int, draws: int, generator: torch.Generator) -> torch.Tensor:
    """(draws,) mask counts in 1..length: a uniform start, then evenly spaced, wrapped around."""
    start = int(torch.randint(0, length, (), generator=generator))
    spacing = torch.round(torch.arange(draws, dtype=torch.float64) * length / draws).long()
    return (start + spacing) % length + 1


def continuation_log_probs(
    model: DiffusionModel, prefix: list[int], target: list[int], masked: torch.Tensor, cfg: float = 0.0
) -> torch.Tensor:
    """(B, T) log p(target_i | prefix, target with `masked` rows masked), 0 where not masked."""
    if model.attention != "bidirectional":
        raise ValueError(
            "loglikelihood requests need a bidirectional dLLM (LLaDA, Dream): the masked bound of a "
            "block-causal model is per block, and rcd does not estimate it"
        )
    device = model.device
    batch = masked.shape[0]
    clean = torch.tensor(prefix + target, device=device).expand(batch, -1)
    masked = masked.to(device)
    full_mask = torch.nn.functional.pad(masked, (len(prefix), 0), value=False)
    logits = _logits(model, clean, full_mask)
    if cfg > 0:
        unconditional = full_mask.clone()
        unconditional[:, : len(prefix)] = True  # the prefix masked as well
        logits_u = _logits(model, clean, unconditional)
        logits = logits_u + (cfg + 1) * (logits - logits_u)
    log_probs = at_least_fp32(logits[:, len(prefix) :]).log_softmax(-1)
    picked = log_probs.gather(-1, clean[:, len(prefix) :, None]).squeeze(-1)
    return picked * masked


def _logits(model: DiffusionModel, clean: torch.Tensor, full_mask: torch.Tensor) -> torch.Tensor:
    """Logits of the noisy sequence: the forward of the masked objective (bidirectional, no padding)."""
    noisy = clean.masked_fill(full_mask, model.mask_token_id)
    logits, _ = model.forward(model.embed(noisy), key_valid=torch.ones_like(full_mask))
    return logits


@torch.no_grad()
def mc_loglikelihood(
    model: DiffusionModel,
    prefix: list[int],
    target: list[int],
    config: LikelihoodConfig,
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """(estimate, standard error) of the ELBO of `target` after `prefix`, from `config.mc_num` draws."""
    if not prefix or not target:
        raise ValueError("a loglikelihood request needs a non-empty prefix and continuation")
    generator = generator or torch.Generator().manual_seed(config.seed)
    length = len(target)
    values = []
    for _ in range(config.mc_num // config.mc_batch_size):
        counts = stratified_mask_counts(length, config.mc_batch_size, generator)
        ranks = torch.rand(config.mc_batch_size, length, generator=generator).argsort(dim=1).argsort(dim=1)
        masked = ranks < counts[:, None]  # a uniform random subset of each draw's size
        log_probs = continuation_log_probs(model, prefix, target, masked, config.cfg)
        values.append(log_probs.sum(-1).cpu().double() * length / counts)
    draws = torch.cat(values)
    stderr = float(draws.std() / math.sqrt(len(draws))) if len(draws) > 1 else float("nan")
    return float(draws.mean()), stderr


@torch.no_grad()
def exact_elbo(model: DiffusionModel, prefix: list[int], target: list[int], cfg: float = 0.0) -> float:
    """The bound itself, by enumerating all 2^T - 1 mask subsets (T up to ~12)."""
    length = len(target)
    if length > 12:
        raise ValueError("exact_elbo enumerates 2^T subsets: continuations of at most 12 tokens")
    subsets = [s for m in range(1, length + 1) for s in itertools.combinations(range(length), m)]
    masked = torch.zeros(len(subsets), length, dtype=torch.bool)
    for row, subset in enumerate(subsets):
        masked[row, list(subset)] = True
    sums = continuation_log_probs(model, prefix, target, masked, cfg).sum(-1).cpu().double()
    sizes = masked.sum(-1).double()
    # each size m has probability 1/T, each subset of it 1/C(T, m); the weight T/m
    weights = torch.tensor([1.0 / math.comb(length, int(m)) for m in sizes], dtype=torch.float64) / sizes
    return float((weights * sums).sum())


@torch.no_grad()
def greedy_reproduces(model: DiffusionModel, prefix: list[int], target: list[int]) -> bool:
    """Does decoding one most-confident token per step, from all-masked, give `target` exactly?"""
    length = len(target)
    current = torch.full((length,), model.mask_token_id)
    masked = torch.ones(length, dtype=torch.bool)
    for _ in range(length):
        clean = torch.tensor(prefix + current.tolist(), device=model.device)[None]
        full_mask = torch.nn.functional.pad(masked.to(model.device), (len(prefix), 0), value=False)[None]
        probs = at_least_fp32(_logits(model, clean, full_mask)[0, len(prefix) :]).softmax(-1).cpu()
        confidence, choice = probs.max(-1)
        pick = int(confidence.masked_fill(~masked, -1.0).argmax())
        current[pick], masked[pick] = choice[pick], False
    return current.tolist() == list(target)
