"""The block-wise denoising loop of a dLLM, with or without residual context (RCD).

One block at a time, left to right; each step is one forward pass: predict every masked
position, commit some of the current block (the commit policy, `rcd.decode.policy`),
remask the rest. With a `ResidualConfig`, each still-masked position carries its most
recent prediction into the next step as a soft token (`ResidualState`; the math lives in
`rcd.residual`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from ..models.adapter import DiffusionModel, check_reference, context_length
from ..residual import ResidualConfig
from .config import DecodeConfig
from .grid import layout
from .output import GenerationOutput, TraceStep
from .passes import APPROXIMATE_CACHES, DecodeSequence, ModelPass, check_cache
from .policy import CommitPolicy, choose_tokens
from .state import ResidualObserver, ResidualState


def generate(
    model: nn.Module | DiffusionModel,
    input_ids: torch.Tensor,
    config: DecodeConfig | None = None,
    *,
    residual: ResidualConfig | None = None,
    reference: nn.Module | DiffusionModel | None = None,
    attention_mask: torch.Tensor | None = None,
    eos_token_id: int | Sequence[int] | None = None,
    generator: torch.Generator | None = None,
    policy: CommitPolicy | None = None,
    return_trace: bool = False,
    progress: bool = False,
    residual_observer: ResidualObserver | None = None,
    **options,
) -> GenerationOutput:
    """Decode `config.gen_length` tokens after each (left-padded) prompt, block by block.

    config: the decoding options (`DecodeConfig`: lengths, commit rule, temperature, EOS
        stop, cache). Its fields may also be given as keywords (`gen_length=`,
        `block_length=`, `steps=`, `threshold=`, ...), alone or to override a config.
        Fixed schedules take `order=` too: which positions commit first, "confidence"
        (default), "random" (seeded by `generator`, else seed 0) or "left-to-right".
    residual: turns RCD on (None = plain SeqD decoding); `reference` is the model of the
        `init="reference"` warm start.
    attention_mask: (B, P) 1 on real prompt tokens, 0 on left padding.
    eos_token_id: stop ids; `config.stop_at_eos` stops a row after a block that contains
        one (exact for block-causal models, whose earlier blocks never see later ones) and
        fills the rest of its generation with the first.
    policy: a commit rule object (default: `config.policy()`, the fixed schedule or the
        threshold the config names).
    return_trace: record a `TraceStep` per denoising step.
    residual_observer: called at every residual update from a step's logits (an instrument's
        hook, `rcd.eval.alignment`): it sees the logits and the sequence and changes nothing.
    """
    config = _decode_config(config, options)
    dm = DiffusionModel.wrap(model)
    ref = DiffusionModel.wrap(reference) if reference is not None else None
    input_ids, attention_mask = _check_prompt(input_ids, attention_mask, dm)
    _check_context(dm, int(attention_mask.sum(1).max()) if attention_mask.numel() else 0, config.gen_length)
    eos_ids = _eos_list(eos_token_id)
    _check_model(dm, ref, config, residual, eos_ids)
    cache = check_cache(config.cache_mode, dm)
    if policy is None:
        if config.order == "random" and generator is None:
            generator = torch.Generator(device=dm.device).manual_seed(0)
        policy = config.policy(generator)
    batch, prompt_len = input_ids.shape
    gen_length, block_length = config.gen_length, config.block_length
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
    init_passes = {"model": ModelPass(dm, seq, "exact") if cache in APPROXIMATE_CACHES else target}
    uses_ref = residual is not None and "reference" in (residual.init, residual.feedback)
    if uses_ref:
        init_passes["reference"] = ModelPass(ref, seq, "exact")
    ref_pass = init_passes.get("reference")
    state = None
    if residual is not None:
        state = ResidualState(batch, seq.length, dm, residual, sequence=seq, observer=residual_observer)

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
                source = state.initialize(need, lo, _plain_logits(init_passes, lo, hi, bs), generator)
                nfe += source == "model"
                reference_nfe += source == "reference"
                if source:
                    row_passes += active.long()

            masked_in_block = (block_ids == mask_id) & active[:, None]
            # a fixed schedule counts the whole block, also where prompt tokens fill part of it (SDAR's grid)
            policy.start_block(masked_in_block if grid == "generation" else active[:, None].expand_as(block_ids))
            step = 0
            while (candidates := (block_ids == mask_id) & active[:, None]).any() and not policy.done():
                logits, start = target.logits(target_embeds, lo, hi, bs)
                nfe += 1
                rows = candidates.any(-1)  # rows with masks left this step (idle rows keep their residuals)
                row_passes += rows.long()
                tokens, confidence = choose_tokens(
                    logits[:, bs - start : be - start], config.temperature, generator, banned=mask_id
                )
                commit = policy.commit(confidence, candidates)
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
            if config.stop_at_eos:  # generated positions only: a prompt's own stop token does not count
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


def _plain_logits(passes: dict[str, ModelPass], lo: int, hi: int, bs: int) -> Callable[[str], torch.Tensor]:
    """predict(source): logits of window [lo, hi) from that model's pass over plain masks."""

    def predict(source: str) -> torch.Tensor:
        pass_ = passes[source]
        ids = pass_.seq.ids
        return pass_.logits(lambda start, end: pass_.dm.embed(ids[:, start:end]), lo, hi, bs)[0]

    return predict


def _decode_config(config: DecodeConfig | None, options: dict) -> DecodeConfig:
    """The config, with keyword options (DecodeConfig fields) applied over it."""
    unknown = set(options) - {f.name for f in dataclasses.fields(DecodeConfig)}
    if unknown:
        raise TypeError(f"generate() got unexpected keyword arguments {sorted(unknown)}")
    if config is None:
        if not {"gen_length", "block_length"} <= set(options):
            raise TypeError("generate() needs a DecodeConfig or gen_length= and block_length=")
        return DecodeConfig(**options)
    return dataclasses.replace(config, **options) if options else config


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


def _check_model(
    dm: DiffusionModel,
    ref: DiffusionModel | None,
    config: DecodeConfig,
    residual: ResidualConfig | None,
    eos_ids: list[int],
) -> None:
    """What `DecodeConfig` cannot check alone: the options against this model and call."""
    if dm.attention == "block-causal" and dm.block_length and dm.block_length != config.block_length:
        raise ValueError(
            f"this block-causal model was trained with block_length {dm.block_length}, got {config.block_length}"
        )
    if config.stop_at_eos and not eos_ids:
        raise ValueError("stop_at_eos needs eos_token_id")
    if residual is not None and not isinstance(residual, ResidualConfig):
        raise TypeError("residual must be an rcd.ResidualConfig or None")
    if residual is not None and "reference" in (residual.init, residual.feedback):
        if ref is None:
            raise ValueError("ResidualConfig(init='reference' or feedback='reference') needs reference=<model>")
        check_reference(dm, ref)
    elif ref is not None:
        warnings.warn("reference= is only used by ResidualConfig(init/feedback='reference'); ignored", stacklevel=3)
