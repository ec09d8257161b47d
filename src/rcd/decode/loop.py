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
from .policy import CommitPolicy, choose_tokens, token_confidence
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
    on_step: Callable[[TraceStep], None] | None = None,
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
    on_step: called with each step's `TraceStep` as soon as its commits are made (a live
        view, e.g. a server streaming the denoising); not made at all when None. An
        exception it raises ends the decode.
    residual_observer: called at every residual update from a step's logits (an instrument's
        hook, `rcd.eval.alignment`): it sees the logits and the sequence and changes nothing.
    """
    config = _decode_config(config, options)
    model = DiffusionModel.wrap(model)
    reference = DiffusionModel.wrap(reference) if reference is not None else None
    input_ids, attention_mask = _check_prompt(input_ids, attention_mask, model)
    eos_ids = _eos_list(eos_token_id)
    longest_prompt = int(attention_mask.sum(1).max()) if attention_mask.numel() else 0
    cache = check_generation(
        model,
        config,
        residual=residual,
        reference=reference,
        eos_token_id=eos_ids,
        prompt_length=longest_prompt,
    )
    if policy is None:
        if config.order == "random" and generator is None:
            generator = torch.Generator(device=model.device).manual_seed(0)
        policy = config.policy(generator)
    batch, prompt_length = input_ids.shape
    gen_length, block_length = config.gen_length, config.block_length
    device = model.device
    eos_tensor = torch.tensor(eos_ids, device=device)
    mask_id = model.mask_token_id
    grid = model.block_grid if model.attention == "block-causal" else "generation"
    grid_layout = layout(
        input_ids.to(device),
        attention_mask.to(device),
        gen_length=gen_length,
        block_length=block_length,
        mask_id=mask_id,
        grid=grid,
    )
    sequence = DecodeSequence(
        ids=grid_layout.ids,
        key_valid=grid_layout.key_valid,
        gen_start=grid_layout.window_start,
        block_length=block_length,
    )
    returned = grid_layout.generated_columns()
    target_pass = ModelPass(model, sequence, cache)
    # init passes see plain masks, so they must not fill an approximate cache meant for steps
    init_passes = {
        "model": ModelPass(model, sequence, "exact") if cache in APPROXIMATE_CACHES else target_pass
    }
    uses_reference = residual is not None and "reference" in (residual.init, residual.feedback)
    if uses_reference:
        init_passes["reference"] = ModelPass(reference, sequence, "exact")
    reference_pass = init_passes.get("reference")
    state = None
    if residual is not None:
        state = ResidualState(
            batch, sequence.length, model, residual, sequence=sequence, observer=residual_observer
        )

    active = torch.ones(batch, dtype=torch.bool, device=device)
    row_passes = torch.zeros(batch, dtype=torch.long, device=device)
    row_reference_passes = torch.zeros(batch, dtype=torch.long, device=device)
    generated = torch.zeros(batch, dtype=torch.long, device=device)
    nfe = reference_nfe = 0
    trace: list[TraceStep] | None = [] if return_trace else None
    # where each row's generation starts in the block grid: only the trace's steps need it
    gen_starts = grid_layout.gen_starts.cpu() if return_trace or on_step is not None else None

    def target_embeds(start: int, end: int) -> torch.Tensor:
        ids = sequence.ids[:, start:end]
        embeds = model.embed(ids)
        return embeds if state is None else state.mix(embeds, ids == mask_id, start, end)

    with _inference(model, reference):
        for block in tqdm(range(grid_layout.n_blocks), desc="blocks", disable=not progress, leave=False):
            block_start = grid_layout.window_start + block * block_length
            block_end = block_start + block_length
            # the window a pass predicts: the whole generation (bidirectional) or the block
            if model.attention == "bidirectional":
                predict_start, predict_end = prompt_length, sequence.length
            else:
                predict_start, predict_end = block_start, block_end
            # a view: commits write through to sequence.ids
            block_ids = sequence.ids[:, block_start:block_end]

            if state is not None:
                need = (sequence.ids[:, predict_start:predict_end] == mask_id) & active[:, None]
                if not residual.reinit_blocks:
                    need &= ~state.known[:, predict_start:predict_end]
                plain = _plain_logits(init_passes, predict_start, predict_end, block_start)
                source = state.initialize(need, predict_start, plain, generator)
                nfe += source == "model"
                reference_nfe += source == "reference"
                if source:
                    row_passes += active.long()
                if source == "reference":
                    row_reference_passes += active.long()

            masked_in_block = (block_ids == mask_id) & active[:, None]
            # a fixed schedule counts the whole block, also where prompt tokens fill part of it (SDAR's grid)
            policy.start_block(
                masked_in_block if grid == "generation" else active[:, None].expand_as(block_ids)
            )
            step = 0
            while (candidates := (block_ids == mask_id) & active[:, None]).any() and not policy.done():
                logits, start = target_pass.logits(target_embeds, predict_start, predict_end, block_start)
                nfe += 1
                rows = candidates.any(-1)  # rows with masks left this step (idle rows keep their residuals)
                row_passes += rows.long()
                tokens, confidence = choose_tokens(
                    logits[:, block_start - start : block_end - start],
                    config.temperature,
                    generator,
                    banned=mask_id,
                    confidence=config.confidence,
                )
                if state is not None and config.confidence_pass == "plain":
                    # the residual-free pass vouches for the residual pass's tokens: one more pass, counted
                    plain = _plain_logits(init_passes, predict_start, predict_end, block_start)("model")
                    nfe += 1
                    row_passes += rows.long()
                    confidence = token_confidence(
                        plain[:, block_start - predict_start : block_end - predict_start],
                        tokens,
                        config.confidence,
                        banned=mask_id,
                    )
                commit = policy.commit(confidence, candidates)
                block_ids[commit] = tokens[commit]
                if trace is not None or on_step is not None:
                    record = _trace_step(
                        block, step, block_start, gen_starts, commit, confidence, candidates, state, tokens
                    )
                    if trace is not None:
                        trace.append(record)
                    if on_step is not None:
                        on_step(record)
                if state is not None:
                    still = (sequence.ids[:, start : start + logits.shape[1]] == mask_id) & rows[:, None]
                    if residual.feedback == "reference" and still.any():
                        logits, start = reference_pass.logits(
                            lambda first, end: reference.embed(sequence.ids[:, first:end]),
                            predict_start,
                            predict_end,
                            block_start,
                        )
                        still = (sequence.ids[:, start : start + logits.shape[1]] == mask_id) & rows[:, None]
                        reference_nfe += 1
                        row_passes += still.any(-1).long()
                        row_reference_passes += still.any(-1).long()
                    state.update_from_logits(still, start, logits)
                step += 1

            generated += masked_in_block.sum(-1)  # SDAR's grid: its last block's tail past gen_length too
            if config.stop_at_eos:  # generated positions only: a prompt's own stop token does not count
                finished = torch.isin(block_ids, eos_tensor) & returned[:, block_start:block_end]
                stopped = active & finished.any(-1)
                sequence.ids[stopped, block_end:] = eos_ids[0]
                active &= ~stopped
                if not active.any():
                    break

    return GenerationOutput(
        sequences=torch.cat([input_ids.to(device), grid_layout.generated()], 1),
        prompt_length=prompt_length,
        nfe=nfe,
        reference_nfe=reference_nfe,
        row_forward_passes=row_passes,
        generated_tokens=generated,
        row_reference_passes=row_reference_passes,
        trace=trace,
    )


def _plain_logits(
    passes: dict[str, ModelPass], predict_start: int, predict_end: int, block_start: int
) -> Callable[[str], torch.Tensor]:
    """predict(source): logits of the predicted window from that model's pass over plain masks."""

    def predict(source: str) -> torch.Tensor:
        model_pass = passes[source]
        ids = model_pass.sequence.ids

        def embed(start: int, end: int) -> torch.Tensor:
            return model_pass.model.embed(ids[:, start:end])

        return model_pass.logits(embed, predict_start, predict_end, block_start)[0]

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


def _trace_step(block, step, start, gen_starts, commit, confidence, candidates, state, tokens) -> TraceStep:
    nan = torch.tensor(float("nan"), device=confidence.device)
    if state is None:
        alpha = torch.zeros_like(confidence)
    else:
        alpha = state.alpha[:, start : start + commit.shape[1]]
    return TraceStep(
        block=block,
        step=step,
        block_start=start,
        gen_starts=gen_starts,
        committed=commit.cpu(),
        confidence=torch.where(candidates, confidence, nan).cpu(),
        alpha=torch.where(candidates, alpha, nan).cpu(),
        tokens=tokens.cpu(),
    )


@contextlib.contextmanager
def _inference(*models: DiffusionModel | None) -> Iterator[None]:
    """No grad, eval mode (no dropout) for the duration; training flags restored after."""
    modules = [module.model for module in models if module is not None]
    modes = [module.training for module in modules]
    try:
        for module in modules:
            module.eval()
        with torch.inference_mode():
            yield
    finally:
        for module, mode in zip(modules, modes):
            module.train(mode)


def _check_prompt(
    input_ids: torch.Tensor, attention_mask: torch.Tensor | None, model: DiffusionModel
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
        raise ValueError(
            f"attention_mask {tuple(attention_mask.shape)} must match input_ids {tuple(input_ids.shape)}"
        )
    valid = attention_mask.bool()
    if (valid[:, :-1] & ~valid[:, 1:]).any():
        raise ValueError("prompts must be left-padded: attention_mask may not go from 1 back to 0")
    if (valid & (input_ids == model.mask_token_id)).any():
        raise ValueError(f"a prompt contains the mask token id {model.mask_token_id}")
    return input_ids, attention_mask


def check_generation(
    model: nn.Module | DiffusionModel,
    config: DecodeConfig,
    *,
    residual: ResidualConfig | None = None,
    reference: nn.Module | DiffusionModel | None = None,
    eos_token_id: int | Sequence[int] | None = None,
    prompt_length: int = 0,
) -> str:
    """Every check `generate` makes of its options against the model, without decoding: the
    context, block size, stop ids, reference and cache. Returns the cache mode to use.

    For callers that must refuse a request before it joins a batch (a server), so that one
    bad request cannot fail the others.
    """
    model = DiffusionModel.wrap(model)
    reference = DiffusionModel.wrap(reference) if reference is not None else None
    _check_context(model, prompt_length, config.gen_length)
    _check_model(model, reference, config, residual, _eos_list(eos_token_id))
    return check_cache(config.cache_mode, model)


def _check_context(model: DiffusionModel, prompt_length: int, gen_length: int) -> None:
    context = context_length(model)
    if context is not None and prompt_length + gen_length > context:
        raise ValueError(
            f"a prompt of {prompt_length} tokens + gen_length {gen_length} exceed the model's context of "
            f"{context} positions: shorten the prompt or lower gen_length"
        )


def _eos_list(eos_token_id: int | Sequence[int] | None) -> list[int]:
    if eos_token_id is None:
        return []
    return [int(eos_token_id)] if isinstance(eos_token_id, int) else [int(end) for end in eos_token_id]


def _check_model(
    model: DiffusionModel,
    reference: DiffusionModel | None,
    config: DecodeConfig,
    residual: ResidualConfig | None,
    eos_ids: list[int],
) -> None:
    """What `DecodeConfig` cannot check alone: the options against this model and call."""
    if model.attention == "block-causal" and model.block_length and model.block_length != config.block_length:
        raise ValueError(
            f"this block-causal model was trained with block_length {model.block_length}, got {config.block_length}"
        )
    if config.stop_at_eos and not eos_ids:
        raise ValueError("stop_at_eos needs eos_token_id")
    if residual is not None and not isinstance(residual, ResidualConfig):
        raise TypeError("residual must be an rcd.ResidualConfig or None")
    if residual is not None and "reference" in (residual.init, residual.feedback):
        if reference is None:
            raise ValueError(
                "ResidualConfig(init='reference' or feedback='reference') needs reference=<model>"
            )
        check_reference(model, reference)
    elif reference is not None:
        warnings.warn(
            "reference= is only used by ResidualConfig(init/feedback='reference'); ignored", stacklevel=3
        )
