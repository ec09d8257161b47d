"""The block-wise denoising loop of a dLLM, with or without residual context (RCD).

One block at a time, left to right; each step is one forward pass: predict every masked
position, commit some of the current block (commit policy), remask the rest. With a
`ResidualConfig`, each still-masked position carries its most recent prediction into the
next step as a soft token (the math lives in `rcd.residual`).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from ..models.adapter import DiffusionModel, check_reference, context_length
from ..residual import (
    ResidualConfig,
    dirichlet_probs,
    mix_masked_embeddings,
    residual_from_logits,
    residual_from_probs,
)
from .config import check_decode_options
from .grid import layout
from .output import GenerationOutput, TraceStep
from .passes import APPROXIMATE_CACHES, DecodeSequence, ModelPass, check_cache
from .policy import COMMIT_ORDERS, choose_tokens, commit_threshold, commit_top_k, fixed_schedule, order_scores


class _ResidualState:
    """Per-position residual (Delta, alpha) of the last prediction; `known` once predicted."""

    def __init__(self, batch: int, length: int, dm: DiffusionModel, config: ResidualConfig):
        self.config = config
        self.weight = dm.embedding_weight
        self.mask_embedding = dm.mask_embedding()
        dim = self.weight.shape[1]
        self.delta = torch.zeros(batch, length, dim, dtype=dm.dtype, device=dm.device)
        alpha_dtype = torch.promote_types(dm.dtype, torch.float32)
        self.alpha = torch.zeros(batch, length, dtype=alpha_dtype, device=dm.device)
        self.known = torch.zeros(batch, length, dtype=torch.bool, device=dm.device)

    def mix(self, embeds: torch.Tensor, masked: torch.Tensor, start: int, end: int) -> torch.Tensor:
        return mix_masked_embeddings(
            embeds, self.mask_embedding, self.delta[:, start:end], self.alpha[:, start:end], masked
        )

    def set(self, where: torch.Tensor, lo: int, delta: torch.Tensor, alpha: torch.Tensor) -> None:
        """Store residuals for positions `where` (B, n) of the window starting at lo."""
        hi = lo + where.shape[1]
        self.delta[:, lo:hi][where] = delta.to(self.delta.dtype)
        self.alpha[:, lo:hi][where] = alpha.to(self.alpha.dtype)
        self.known[:, lo:hi] |= where

    def update_from_logits(self, where: torch.Tensor, lo: int, logits: torch.Tensor) -> None:
        if where.any():
            self.set(where, lo, *residual_from_logits(logits[where], self.weight, self.config))


def generate(
    model: nn.Module | DiffusionModel,
    input_ids: torch.Tensor,
    *,
    gen_length: int,
    block_length: int,
    steps: int | None = None,
    threshold: float | None = None,
    order: str = "confidence",
    temperature: float = 0.0,
    residual: ResidualConfig | None = None,
    reference: nn.Module | DiffusionModel | None = None,
    attention_mask: torch.Tensor | None = None,
    eos_token_id: int | Sequence[int] | None = None,
    stop_at_eos: bool = False,
    use_cache: bool = True,
    cache: str = "exact",
    generator: torch.Generator | None = None,
    return_trace: bool = False,
    progress: bool = False,
) -> GenerationOutput:
    """Decode `gen_length` tokens after each (left-padded) prompt, block by block.

    steps: fixed schedule, `steps // n_blocks` steps per block, top-k confidence commits.
    threshold: commit every masked position of the block whose confidence > threshold, and
        at least the most confident one. Give one of steps / threshold; neither means one
        token per step (steps = gen_length).
    order: which positions a fixed schedule commits first: "confidence" (default),
        "random" (seeded by `generator`, else seed 0) or "left-to-right".
    temperature: 0 is greedy; > 0 samples with Gumbel-max (float64).
    residual: turns RCD on (None = plain SeqD decoding); `reference` is the model of the
        `init="reference"` warm start.
    attention_mask: (B, P) 1 on real prompt tokens, 0 on left padding.
    stop_at_eos: a row stops after a block that contains an EOS token (exact for
        block-causal models, whose earlier blocks never see later ones); the rest of its
        generation is filled with EOS.
    cache: "exact" (default) uses only caches that keep the tokens unchanged: block-causal
        models reuse the KV cache of finished blocks, bidirectional models recompute.
        "none" recomputes everything. "prefix" / "dual": Fast-dLLM's approximate caches
        for bidirectional models (see `rcd.decode.passes`; drift measured by
        `python -m benchmarks`).
    use_cache: False is the older spelling of cache="none".
    return_trace: record a `TraceStep` per denoising step.
    """
    dm = DiffusionModel.wrap(model)
    ref = DiffusionModel.wrap(reference) if reference is not None else None
    input_ids, attention_mask = _check_prompt(input_ids, attention_mask, dm)
    _check_context(dm, int(attention_mask.sum(1).max()) if attention_mask.numel() else 0, gen_length)
    eos_ids = _eos_list(eos_token_id)
    steps_per_block = _check_options(
        dm, ref, gen_length, block_length, steps, threshold, temperature, residual, stop_at_eos, eos_ids
    )
    if order not in COMMIT_ORDERS or (order != "confidence" and threshold is not None):
        raise ValueError(f"order must be one of {COMMIT_ORDERS}; a threshold rule commits by confidence only")
    if order == "random" and generator is None:
        generator = torch.Generator(device=dm.device).manual_seed(0)
    cache = check_cache(cache, use_cache, dm)
    batch, prompt_len = input_ids.shape
    device = dm.device
    eos_tensor = torch.tensor(eos_ids, device=device)
    mask_id = dm.mask_token_id
    grid = dm.block_grid if dm.attention == "block-causal" else "generation"
    lay = layout(input_ids.to(device), attention_mask.to(device), gen_length=gen_length,
                 block_length=block_length, mask_id=mask_id, grid=grid)
    seq = DecodeSequence(ids=lay.ids, key_valid=lay.key_valid, gen_start=lay.window_start, block_length=block_length)
    returned = lay.generated_columns()
    target = ModelPass(dm, seq, cache)
    # init passes see plain masks, so they must not fill an approximate cache meant for steps
    init_pass = ModelPass(dm, seq, "exact") if cache in APPROXIMATE_CACHES else target
    uses_ref = residual is not None and "reference" in (residual.init, residual.feedback)
    ref_pass = ModelPass(ref, seq, "exact") if uses_ref else None
    state = _ResidualState(batch, seq.length, dm, residual) if residual is not None else None

    active = torch.ones(batch, dtype=torch.bool, device=device)
    row_passes = torch.zeros(batch, dtype=torch.long, device=device)
    generated = torch.zeros(batch, dtype=torch.long, device=device)
    nfe = reference_nfe = 0
    trace: list[TraceStep] | None = [] if return_trace else None

    def target_embeds(start: int, end: int) -> torch.Tensor:
        ids = seq.ids[:, start:end]
        embeds = dm.embed(ids)
        return embeds if state is None else state.mix(embeds, ids == mask_id, start, end)

    with _inference(dm, ref):
        for block in tqdm(range(lay.n_blocks), desc="blocks", disable=not progress, leave=False):
            bs = lay.window_start + block * block_length
            be = bs + block_length
            lo, hi = (prompt_len, seq.length) if dm.attention == "bidirectional" else (bs, be)
            block_ids = seq.ids[:, bs:be]  # a view: commits below write through to seq.ids

            if state is not None:
                need = (seq.ids[:, lo:hi] == mask_id) & active[:, None]
                if not residual.reinit_blocks:
                    need &= ~state.known[:, lo:hi]
                made = _init_residuals(state, need, lo, hi, bs, init_pass, ref_pass, generator)
                nfe += made == "model"
                reference_nfe += made == "reference"
                if made:
                    row_passes += active.long()

            masked_in_block = (block_ids == mask_id) & active[:, None]
            # counted on the whole block, also where prompt tokens fill part of it (SDAR's grid)
            counts = masked_in_block.sum(-1) if grid == "generation" else active.long() * block_length
            schedule = fixed_schedule(counts, steps_per_block) if steps_per_block else None
            step = 0
            while True:
                candidates = (block_ids == mask_id) & active[:, None]
                if not candidates.any() or (schedule is not None and step >= steps_per_block):
                    break
                logits, start = target.logits(target_embeds, lo, hi, bs)
                nfe += 1
                rows = candidates.any(-1)  # rows with masks left this step (idle rows keep their residuals)
                row_passes += rows.long()
                tokens, confidence = choose_tokens(
                    logits[:, bs - start : be - start], temperature, generator, banned=mask_id
                )
                if schedule is not None:
                    commit = commit_top_k(order_scores(order, confidence, generator), candidates, schedule[:, step])
                else:
                    commit = commit_threshold(confidence, candidates, threshold)
                if trace is not None:
                    trace.append(_trace_step(block, step, bs, commit, confidence, candidates, state, tokens))
                block_ids[commit] = tokens[commit]
                if state is not None:
                    still = (seq.ids[:, start : start + logits.shape[1]] == mask_id) & rows[:, None]
                    if residual.feedback == "reference" and still.any():
                        logits, start = ref_pass.logits(lambda s, e: ref.embed(seq.ids[:, s:e]), lo, hi, bs)
                        still = (seq.ids[:, start : start + logits.shape[1]] == mask_id) & rows[:, None]
                        reference_nfe += 1
                        row_passes += still.any(-1).long()
                    state.update_from_logits(still, start, logits)
                step += 1

            generated += masked_in_block.sum(-1)  # SDAR's grid: its last block's tail past gen_length too
            if stop_at_eos:  # generated positions only: a prompt's own stop token does not count
                stopped = active & (torch.isin(block_ids, eos_tensor) & returned[:, bs:be]).any(-1)
                seq.ids[stopped, be:] = eos_ids[0]
                active &= ~stopped
                if not active.any():
                    break

    return GenerationOutput(
        sequences=torch.cat([input_ids.to(device), lay.generated()], 1),
        prompt_length=prompt_len,
        nfe=nfe,
        reference_nfe=reference_nfe,
        row_forward_passes=row_passes,
        generated_tokens=generated,
        trace=trace,
    )


def _init_residuals(
    state: _ResidualState,
    need: torch.Tensor,
    lo: int,
    hi: int,
    bs: int,
    target: ModelPass,
    reference: ModelPass | None,
    generator: torch.Generator | None,
) -> str | None:
    """Apply the init rule to positions `need` of window [lo, hi) (block at bs).

    Returns which model ran a forward pass for it ("model", "reference") or None.
    """
    if not need.any():
        return None
    config = state.config
    n = int(need.sum())
    if config.init == "zero":
        state.set(need, lo, state.delta.new_zeros(n, state.delta.shape[-1]), state.alpha.new_zeros(n))
        return None
    if config.init == "dirichlet":
        probs = dirichlet_probs(
            (n,), state.weight.shape[0], config.dirichlet_concentration, generator, state.alpha.device
        )
        state.set(need, lo, *residual_from_probs(probs, state.weight, config))
        return None
    pass_ = reference if config.init == "reference" else target
    ids = pass_.seq.ids
    logits, _ = pass_.logits(lambda start, end: pass_.dm.embed(ids[:, start:end]), lo, hi, bs)
    state.update_from_logits(need, lo, logits)
    return "reference" if config.init == "reference" else "model"


def _trace_step(block, step, start, commit, confidence, candidates, state, tokens) -> TraceStep:
    nan = torch.tensor(float("nan"), device=confidence.device)
    if state is None:
        alpha = torch.zeros_like(confidence)
    else:
        alpha = state.alpha[:, start : start + commit.shape[1]]
    return TraceStep(
        block=block,
        step=step,
        block_start=start,
        committed=commit.cpu(),
        confidence=torch.where(candidates, confidence, nan).cpu(),
        alpha=torch.where(candidates, alpha, nan).cpu(),
        tokens=tokens.cpu(),
    )


@contextlib.contextmanager
def _inference(*models: DiffusionModel | None) -> Iterator[None]:
    """No grad, eval mode (no dropout) for the duration; training flags restored after."""
    modules = [m.model for m in models if m is not None]
    modes = [m.training for m in modules]
    try:
        for m in modules:
            m.eval()
        with torch.inference_mode():
            yield
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)


def _check_prompt(
    input_ids: torch.Tensor, attention_mask: torch.Tensor | None, dm: DiffusionModel
) -> tuple[torch.Tensor, torch.Tensor]:
    input_ids = torch.as_tensor(input_ids)
    if input_ids.dim() == 1:
        input_ids = input_ids.unsqueeze(0)
        attention_mask = None if attention_mask is None else torch.as_tensor(attention_mask).reshape(1, -1)
    if input_ids.dim() != 2 or input_ids.dtype not in (torch.int64, torch.int32):
        raise ValueError("input_ids must be a (batch, prompt_length) tensor of token ids")
    input_ids = input_ids.long()
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    attention_mask = torch.as_tensor(attention_mask)
    if attention_mask.shape != input_ids.shape:
        raise ValueError(f"attention_mask {tuple(attention_mask.shape)} must match input_ids {tuple(input_ids.shape)}")
    valid = attention_mask.bool()
    if (valid[:, :-1] & ~valid[:, 1:]).any():
        raise ValueError("prompts must be left-padded: attention_mask may not go from 1 back to 0")
    if (valid & (input_ids == dm.mask_token_id)).any():
        raise ValueError(f"a prompt contains the mask token id {dm.mask_token_id}")
    return input_ids, attention_mask


def _check_context(dm: DiffusionModel, prompt_length: int, gen_length: int) -> None:
    context = context_length(dm)
    if context is not None and prompt_length + gen_length > context:
        raise ValueError(
            f"a prompt of {prompt_length} tokens + gen_length {gen_length} exceed the model's context of "
            f"{context} positions: shorten the prompt or lower gen_length"
        )


def _eos_list(eos_token_id: int | Sequence[int] | None) -> list[int]:
    if eos_token_id is None:
        return []
    return [int(eos_token_id)] if isinstance(eos_token_id, int) else [int(e) for e in eos_token_id]


def _check_options(
    dm, ref, gen_length, block_length, steps, threshold, temperature, residual, stop_at_eos, eos_ids
) -> int | None:
    """Validate decoding options; return steps per block (None under a threshold)."""
    steps_per_block = check_decode_options(gen_length, block_length, steps, threshold, temperature)
    if dm.attention == "block-causal" and dm.block_length and dm.block_length != block_length:
        raise ValueError(
            f"this block-causal model was trained with block_length {dm.block_length}, got {block_length}"
        )
    if stop_at_eos and not eos_ids:
        raise ValueError("stop_at_eos needs eos_token_id")
    if residual is not None and not isinstance(residual, ResidualConfig):
        raise TypeError("residual must be an rcd.ResidualConfig or None")
    if residual is not None and "reference" in (residual.init, residual.feedback):
        if ref is None:
            raise ValueError("ResidualConfig(init='reference' or feedback='reference') needs reference=<model>")
        check_reference(dm, ref)
    elif ref is not None:
        warnings.warn("reference= is only used by ResidualConfig(init/feedback='reference'); ignored", stacklevel=3)
    return steps_per_block
