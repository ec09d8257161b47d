"""Residual math of RCD (docs/method.md, section 2): the one place where Eq. 1-3 live.

Decoding and training both call these functions, so the train/test symmetry of the
method is visible in code and a fix here fixes both.

    Delta_i = sum_j p_ij E_j                                  (Eq. 1, soft embedding)
    alpha_i = H(p_i) / log V                                  (Eq. 3, normalized entropy)
    e_i     = (1 - alpha_i) E[M] + alpha_i Delta_i  if masked (Eq. 2, highway mix)

Probabilities, entropy and the mix are computed in fp32 (fp64 for fp64 models); the
p @ E product runs in the embedding's dtype with fp32 accumulation (GEMM kernels
accumulate in fp32), so a bf16 model never materialises an fp32 copy of its V x D table.

Cost per still-masked position (the decode loop computes residuals for no others): O(V)
for p and its entropy, O(V D) for the dense Delta, O(k D) with `top_k` (gathered rows).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

ALPHA_STRATEGIES = (
    "entropy",
    "confidence",
    "fixed",
    "one",
    "top1",
    "inv-entropy",
    "inv-confidence",
)
INIT_RULES = ("zero", "reference", "dirichlet", "self")
FEEDBACK_SOURCES = ("self", "reference")
# the feedback rules of rcd.residual_rules (its registry is checked against this list)
RESIDUAL_RULES = ("rcd", "soft-mask", "soft-mask-slerp", "itersmooth", "selfcond-proj", "learned-alpha")


@dataclass(frozen=True)
class ResidualConfig:
    """How residuals are made and fed back. `None` in place of a config means plain SeqD.

    alpha: weighting strategy. `entropy` (default, Eq. 3) won the paper's ablation;
        `confidence` = max p; `fixed` = `fixed_alpha`; `one` = plain residual (alpha = 1,
        known to break); `top1` = entropy alpha but Delta is the embedding of the argmax
        token; `inv-entropy` = 1 - H/log V; `inv-confidence` = 1 - max p.
    temperature: residual temperature T_res; alpha and Delta use softmax(z / T_res).
    init: residual of positions not predicted yet. `zero` (cold start: plain masks),
        `reference` (warm: one forward pass of a reference model), `dirichlet` (random p),
        `self` (one extra plain-mask forward pass of the decoded model itself).
    reinit_blocks: apply `init` again at the start of every block, not only to positions
        never predicted (the paper's LLaDA warm start runs the reference once per block).
    feedback: where the residual of the next step comes from. `self` (RCD's self-loop): the
        decoded model's own prediction. `reference`: a pass of the frozen reference on the
        current sequence after every step (the residual stage `rcd` trains with under
        source `noisy`; a diagnostic, each of its passes counted in `reference_nfe`).
    top_k: if set, Delta uses the renormalised top-k probabilities only (k gathered
        embedding rows instead of the dense V x D product, the residual's main cost at
        real vocabularies); alpha (entropy, confidence) still uses the full distribution.
        Opt-in: `python -m benchmarks` measures its speed, `python -m experiments.agreement`
        its effect on a trained model's tokens and accuracy. Rule soft-mask: its top-k.
    rule: the feedback rule (`rcd.residual_rules`, docs/method.md section 2.5). `rcd` (Eq. 1-3);
        `soft-mask` (learned confidence weight, top-k of p; `soft-mask-slerp`: its spherical
        mix); `itersmooth` (dInfer, training-free: E[M] + w p^T E); `selfcond-proj`
        (E[M] + W p^T E, W learned); `learned-alpha` (an MLP's alpha). `alpha` strategies
        other than entropy apply to rule rcd only.
    smooth_start, smooth_end: rule itersmooth's w at a block's start and end.
    """

    alpha: str = field(default="entropy", metadata={"help": "alpha strategy", "choices": ALPHA_STRATEGIES})
    fixed_alpha: float = field(default=0.3, metadata={"help": "alpha of the 'fixed' strategy"})
    temperature: float = field(default=1.0, metadata={"help": "residual temperature T_res"})
    init: str = field(
        default="zero", metadata={"help": "residual of unseen positions", "choices": INIT_RULES}
    )
    reinit_blocks: bool = field(default=False, metadata={"help": "re-apply init at every block start"})
    dirichlet_concentration: float = field(default=1.0, metadata={"help": "Dirichlet init concentration"})
    top_k: int | None = field(
        default=None, metadata={"help": "Delta from the renormalised top-k probabilities only (cheaper)"}
    )
    feedback: str = field(
        default="self",
        metadata={
            "help": "next step's residual: own prediction or the reference's",
            "choices": FEEDBACK_SOURCES,
        },
    )

    rule: str = field(default="rcd", metadata={"help": "feedback rule", "choices": RESIDUAL_RULES})
    smooth_start: float = field(default=0.15, metadata={"help": "rule itersmooth: w at a block's start"})
    smooth_end: float = field(default=0.3, metadata={"help": "rule itersmooth: w at a block's end"})

    def __post_init__(self) -> None:
        if self.rule not in RESIDUAL_RULES:
            raise ValueError(f"rule must be one of {RESIDUAL_RULES}, got {self.rule!r}")
        if self.rule != "rcd" and self.alpha != "entropy":
            raise ValueError(
                f"alpha {self.alpha!r} is a strategy of rule rcd; rule {self.rule!r} sets its own weight"
            )
        if self.rule.startswith("soft-mask") and self.top_k is None:
            raise ValueError(
                f"rule {self.rule} mixes the top-k of p: set top_k (--res-top-k; the paper uses 3)"
            )
        if not 0.0 <= self.smooth_start <= 1.0 or not 0.0 <= self.smooth_end <= 1.0:
            raise ValueError(
                f"smooth_start and smooth_end must lie in [0, 1], got {self.smooth_start}, {self.smooth_end}"
            )
        if self.alpha not in ALPHA_STRATEGIES:
            raise ValueError(f"alpha must be one of {ALPHA_STRATEGIES}, got {self.alpha!r}")
        if self.feedback not in FEEDBACK_SOURCES:
            raise ValueError(f"feedback must be one of {FEEDBACK_SOURCES}, got {self.feedback!r}")
        if self.init not in INIT_RULES:
            raise ValueError(f"init must be one of {INIT_RULES}, got {self.init!r}")
        if not 0.0 <= self.fixed_alpha <= 1.0:
            raise ValueError(f"fixed_alpha must lie in [0, 1], got {self.fixed_alpha}")
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ValueError(f"residual temperature must be a finite number > 0, got {self.temperature}")
        if not (self.dirichlet_concentration > 0 and math.isfinite(self.dirichlet_concentration)):
            raise ValueError(
                f"dirichlet_concentration must be a finite number > 0, got {self.dirichlet_concentration}"
            )
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be >= 1 or None, got {self.top_k}")


def at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    """x in fp32, or unchanged if it is already fp32/fp64."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def residual_probs(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """softmax(z / T_res) in fp32: the distribution behind both alpha and Delta."""
    return torch.softmax(at_least_fp32(logits) / temperature, dim=-1)


def probs_and_entropy(logits: torch.Tensor, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(p, H(p) / log V) for p = softmax(z / T_res), computed together in fp32.

    With s = z - max z (<= 0) and e = exp(s): p = e / S and H = log S - <e, s> / S, where
    S = sum e. Both terms are >= 0 (no cancellation) and the sums are taken before the
    normalisation, so H is accurate to ~1e-7 in fp32. One exp per entry and one log per
    position, where softmax + `entr(p)` takes an exp and a log per entry (this is 1.5-2x
    faster on CPU at V = 152k, same peak memory: two V-sized buffers, the scaled copy and
    p). -inf logits are clamped so that 0 * -inf never appears. The logits are constants:
    no gradient flows back to them (RCD's reference is frozen).
    """
    vocab = logits.shape[-1]
    s = logits.detach().to(torch.promote_types(logits.dtype, torch.float32), copy=True)
    if temperature != 1.0:
        s.div_(temperature)
    s.sub_(s.amax(dim=-1, keepdim=True)).clamp_(min=torch.finfo(s.dtype).min)
    probs = s.exp()
    total = probs.sum(dim=-1, keepdim=True)
    weighted = s.mul_(probs).sum(dim=-1, keepdim=True)  # <e, s>, reusing the copy's storage
    probs.div_(total)
    if vocab < 2:
        return probs, probs.new_zeros(probs.shape[:-1])
    entropy = (total.log() - weighted / total).squeeze(-1) / math.log(vocab)
    return probs, entropy.clamp_(0.0, 1.0)


def normalized_entropy(probs: torch.Tensor) -> torch.Tensor:
    """H(p) / log V in [0, 1] (Eq. 3). Safe at p = 0 and one-hot (0 log 0 = 0)."""
    vocab = probs.shape[-1]
    if vocab < 2:
        return probs.new_zeros(probs.shape[:-1])
    entropy = torch.special.entr(at_least_fp32(probs)).sum(dim=-1)
    return (entropy / math.log(vocab)).clamp_(0.0, 1.0)


def alpha_from_probs(
    probs: torch.Tensor, config: ResidualConfig, entropy: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-position interpolation weight alpha for the chosen strategy, shape p.shape[:-1].

    entropy: H(p) / log V if already known (`probs_and_entropy`), else computed from p.
    """
    kind = config.alpha
    if kind in ("entropy", "top1", "inv-entropy"):
        h = normalized_entropy(probs) if entropy is None else entropy
        return 1.0 - h if kind == "inv-entropy" else h
    if kind == "confidence":
        return at_least_fp32(probs).amax(dim=-1)
    if kind == "inv-confidence":
        return 1.0 - at_least_fp32(probs).amax(dim=-1)
    fill = config.fixed_alpha if kind == "fixed" else 1.0
    return at_least_fp32(probs).new_full(probs.shape[:-1], fill)


def soft_embedding(
    probs: torch.Tensor, embedding_weight: torch.Tensor, top_k: int | None = None
) -> torch.Tensor:
    """Delta = p @ E (Eq. 1) over the INPUT embedding table; fp32 (or fp64) result.

    With `top_k`, only the k most likely rows are gathered and weighted by their
    renormalised probabilities (a sparse approximation of Eq. 1).
    """
    probs = align_vocab(probs, embedding_weight.shape[0])
    if top_k is not None and top_k < probs.shape[-1]:
        weights, index = probs.topk(top_k, dim=-1)
        return sparse_soft_embedding(weights, index, embedding_weight)
    return at_least_fp32(probs.to(embedding_weight.dtype) @ embedding_weight)


def sparse_soft_embedding(
    weights: torch.Tensor, index: torch.Tensor, embedding_weight: torch.Tensor
) -> torch.Tensor:
    """Eq. 1 over a few rows: sum_k w_k E[index_k], with w renormalised to sum to 1.

    `index_select` gathers the rows (on CPU several times faster than advanced indexing)
    and one batched (1 x k) @ (k x D) product mixes them: O(k D) per position.
    """
    k, dim = index.shape[-1], embedding_weight.shape[-1]
    weights = weights / weights.sum(dim=-1, keepdim=True).clamp_min(1e-30)
    rows = embedding_weight.index_select(0, index.reshape(-1)).view(-1, k, dim)
    mixed = torch.bmm(weights.reshape(-1, 1, k).to(rows.dtype), rows)
    return at_least_fp32(mixed.view(*index.shape[:-1], dim))


def align_vocab(probs: torch.Tensor, size: int) -> torch.Tensor:
    """Fit a distribution to a table of `size` rows (vocabularies that differ by padding rows).

    Extra trailing entries (padding rows of a larger reference) are dropped and the rest
    renormalised; a shorter distribution is zero-padded.
    """
    vocab = probs.shape[-1]
    if vocab == size:
        return probs
    if vocab < size:
        return torch.nn.functional.pad(probs, (0, size - vocab))
    kept = probs[..., :size]
    return kept / kept.sum(dim=-1, keepdim=True).clamp_min(1e-30)


def residual_from_probs(
    probs: torch.Tensor,
    embedding_weight: torch.Tensor,
    config: ResidualConfig,
    entropy: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(Delta, alpha) for a distribution over the vocabulary: the shared core of RCD."""
    alpha = alpha_from_probs(probs, config, entropy)
    if config.alpha == "top1":
        delta = at_least_fp32(embedding_weight[probs.argmax(dim=-1)])
    else:
        delta = soft_embedding(probs, embedding_weight, config.top_k)
    return delta, alpha


def residual_from_logits(
    logits: torch.Tensor, embedding_weight: torch.Tensor, config: ResidualConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """(Delta, alpha) from logits at the config's T_res."""
    probs, entropy = probs_and_entropy(logits, config.temperature)
    return residual_from_probs(probs, embedding_weight, config, entropy)


def top_k_summary(
    logits: torch.Tensor, config: ResidualConfig, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(alpha, top-k probabilities, their token ids): what `residual_from_top_k` needs later.

    alpha comes from the full distribution, as in `residual_from_logits`; storing this
    instead of the logits is what lets training cache a frozen reference's predictions.
    """
    probs, entropy = probs_and_entropy(logits, config.temperature)
    top_probs, top_index = probs.topk(min(k, probs.shape[-1]), dim=-1)
    return alpha_from_probs(probs, config, entropy), top_probs, top_index


def residual_from_top_k(
    top_probs: torch.Tensor, top_index: torch.Tensor, embedding_weight: torch.Tensor, config: ResidualConfig
) -> torch.Tensor:
    """Delta from a distribution's k most likely tokens (sparse Eq. 1; `top1`: the first row).

    Tokens beyond the table (padding rows of a larger reference) get no weight, as in
    `align_vocab`.
    """
    inside = top_index < embedding_weight.shape[0]
    weights = top_probs * inside
    index = top_index.clamp(max=embedding_weight.shape[0] - 1)
    if config.alpha == "top1":
        first = weights.argmax(dim=-1, keepdim=True)
        return at_least_fp32(embedding_weight[index.gather(-1, first).squeeze(-1)])
    return sparse_soft_embedding(weights, index, embedding_weight)


def dirichlet_probs(
    shape: tuple[int, ...],
    vocab: int,
    concentration: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Random distributions p ~ Dir(concentration * 1_V): the paper's 'Dirichlet' init.

    torch's Gamma sampler takes no generator, so a seed is drawn from `generator` and
    used in a forked RNG: reproducible without touching the global random state.
    """
    rate = torch.full((*shape, vocab), float(concentration), device=device)
    gamma = torch.distributions.Gamma(rate, torch.ones_like(rate))
    if generator is None:
        draws = gamma.sample()
    else:
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
        cuda = [rate.device] if rate.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            draws = gamma.sample()
    return draws / draws.sum(dim=-1, keepdim=True).clamp_min(1e-30)


def mix_masked_embeddings(
    token_embeds: torch.Tensor,
    mask_embedding: torch.Tensor,
    delta: torch.Tensor,
    alpha: torch.Tensor,
    masked: torch.Tensor,
) -> torch.Tensor:
    """Eq. 2: at masked positions e = (1 - alpha) E[M] + alpha Delta; elsewhere E(x).

    token_embeds (B, L, D) in the model dtype; delta (B, L, D) and alpha (B, L) are the
    residual state of the same positions; masked (B, L) bool. The mix is done in fp32, as
    one `lerp` (E[M] + alpha (Delta - E[M])): the decode loop runs it at every step.
    """
    a = at_least_fp32(alpha).unsqueeze(-1)
    mixed = torch.lerp(at_least_fp32(mask_embedding).to(a.dtype), at_least_fp32(delta).to(a.dtype), a)
    return torch.where(masked.unsqueeze(-1), mixed.to(token_embeds.dtype), token_embeds)
