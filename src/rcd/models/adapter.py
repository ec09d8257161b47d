"""The adapter: what rcd needs from any HF-compatible dLLM, and nothing about decoding.

A dLLM here is a module with a forward that takes input embeddings and returns logits,
an input embedding table and `config.mask_token_id`. The adapter turns rcd's logical
request (these query positions, that attention structure, keep this much KV cache) into
an attention structure and position ids; the family's `ForwardConvention` turns those
into the model's actual call (see `conventions.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .attention import ATTENTION_MODES, BLOCK_GRIDS, allowed_keys, position_ids
from .conventions import ForwardConvention, get_convention


@dataclass
class DiffusionModel:
    """A dLLM with its mask token and attention mode.

    attention: "bidirectional" (LLaDA, Dream) or "block-causal" (SDAR: bidirectional
        inside a block, causal across blocks, KV cache reusable for finished blocks).
    block_length: the block size a block-causal model was trained with, if known.
    convention: how the family's forward is called (rcd-tiny and transformers-native
        models: the default; LLaDA, Dream, SDAR: their own, see `rcd.models.presets`).
    block_grid: where a block-causal model's blocks start: "generation" (at the first
        generated position; rcd's own training) or "absolute" (at each row's first token, as
        SDAR was trained and generates; see `rcd.decode.grid`).
    """

    model: nn.Module
    mask_token_id: int
    attention: str = "bidirectional"
    block_length: int | None = None
    convention: ForwardConvention = field(default_factory=ForwardConvention)
    block_grid: str = "generation"

    def __post_init__(self) -> None:
        if self.attention not in ATTENTION_MODES:
            raise ValueError(f"attention must be one of {ATTENTION_MODES}, got {self.attention!r}")
        if self.block_grid not in BLOCK_GRIDS:
            raise ValueError(f"block_grid must be one of {BLOCK_GRIDS}, got {self.block_grid!r}")
        if self.attention == "block-causal" and not self.convention.supports_cache:
            raise ValueError(
                f"{self.convention.name} models are bidirectional: their forward has no KV cache "
                "for block-causal decoding"
            )

    @classmethod
    def wrap(cls, model: nn.Module | DiffusionModel, attention: str | None = None) -> DiffusionModel:
        """Adapter for `model`, reading mask id, attention mode and block size from its config."""
        if isinstance(model, DiffusionModel):
            if attention is None or attention == model.attention:
                return model
            return cls(
                model.model,
                model.mask_token_id,
                attention,
                model.block_length,
                model.convention,
                model.block_grid,
            )
        config = getattr(model, "config", None)
        mask_id = getattr(config, "mask_token_id", None)
        if mask_id is None:
            raise ValueError("the model has no mask token: set model.config.mask_token_id (a dLLM needs one)")
        convention = get_convention(convention_name(config))
        mode = attention or getattr(config, "attention", None) or "bidirectional"
        grid = getattr(config, "rcd_block_grid", None) or block_grid_of(config)
        dm = cls(model, int(mask_id), mode, getattr(config, "block_length", None), convention, grid)
        dm.embeddings()  # fail early on a model without a reachable embedding table
        return dm

    def embeddings(self) -> nn.Embedding:
        """The input embedding module, found where the model family keeps it."""
        try:
            return self.convention.embeddings(self.model)
        except (AttributeError, NotImplementedError) as err:
            raise TypeError(
                f"cannot reach the input embedding table of {type(self.model).__name__} "
                f"({self.convention.name} convention): {err}"
            ) from err

    @property
    def embedding_weight(self) -> torch.Tensor:
        """The input embedding table E (V x D) that residuals are built from."""
        return self.embeddings().weight

    @property
    def vocab_size(self) -> int:
        return self.embedding_weight.shape[0]

    @property
    def device(self) -> torch.device:
        return self.embedding_weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.embedding_weight.dtype

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.embeddings()(input_ids)

    def mask_embedding(self) -> torch.Tensor:
        """E([M]), shape (D,)."""
        return self.embedding_weight[self.mask_token_id]

    def forward(
        self,
        inputs_embeds: torch.Tensor,
        *,
        key_valid: torch.Tensor,
        query_start: int = 0,
        gen_start: int = 0,
        block_length: int | None = None,
        cache=None,
        keep: int | None = None,
        key_order: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, object]:
        """Logits for the queries at absolute positions [query_start, K).

        key_valid (B, K) marks real keys over the whole visible range [0, K); keys before
        query_start must be in `cache`. If `keep` is given the call uses a KV cache and
        crops it to the first `keep` positions afterwards (finished blocks stay, the
        block being denoised is dropped); the cache is returned.
        key_order: (K,) absolute positions in the order the model sees them (cached keys,
            then the inputs; "query_start" then counts in that order). Only bidirectional
            attention ignores order, so only it accepts one (the dual cache uses it).
        """
        positions = position_ids(key_valid)
        if key_order is not None:
            if self.attention != "bidirectional":
                raise ValueError("key_order needs bidirectional attention")
            key_valid, positions = key_valid[:, key_order], positions[:, key_order]
        allowed = allowed_keys(
            key_valid,
            query_start,
            mode=self.attention,
            gen_start=gen_start,
            block_length=block_length or self.block_length,
        )
        return self.call(
            inputs_embeds, allowed=allowed, position_ids=positions[:, query_start:], cache=cache, keep=keep
        )

    def call(
        self,
        inputs_embeds: torch.Tensor,
        *,
        allowed: torch.Tensor,
        position_ids: torch.Tensor,
        cache=None,
        keep: int | None = None,
    ) -> tuple[torch.Tensor, object]:
        """The model call under an explicit attention pattern `allowed` (B, 1, Q, K) bool.

        Training uses it directly for layouts decoding never needs (the block-diffusion
        2L concatenation of noisy and clean copies). The family's forward convention
        turns the pattern into its own arguments (and SDAR's into a training-safe call).
        """
        logits, cache = self.convention(
            self.model, inputs_embeds, allowed, position_ids, cache=cache, use_cache=keep is not None
        )
        if keep is not None:
            crop_cache(cache, keep)
        return logits, cache


def crop_cache(cache, length: int) -> None:
    """Keep the first `length` positions of a transformers Cache.

    A negative argument means "remove that many" in both transformers 4.x and 5.x.
    """
    extra = cache.get_seq_length() - length
    if extra > 0:
        cache.crop(-extra)
    elif extra < 0:
        raise ValueError(f"cache holds {length + extra} positions, cannot keep {length}")


def convention_name(config) -> str:
    """The forward convention of a model config: set by `rcd.load`, else from its family."""
    from .presets import detect_preset  # presets import the adapter's siblings only

    explicit = getattr(config, "rcd_forward", None)
    if explicit:
        return explicit
    preset = detect_preset(config)
    return preset.forward if preset is not None else "hf"


def block_grid_of(config) -> str:
    """The block grid of a model family, for configs `rcd.load` did not write."""
    from .presets import detect_preset

    preset = detect_preset(config)
    return preset.block_grid if preset is not None else "generation"


def check_reference(target: DiffusionModel, reference: DiffusionModel, tokenizers=None) -> None:
    """The one rule a reference must meet, in decoding (warm start) and training (stage rcd).

    A reference only supplies probabilities over the target's tokens, so the two must
    share a tokenizer: the same mask id and output vocabulary. With `tokenizers` (target's,
    reference's), the vocabularies are compared directly and the output tables may differ
    by padding rows past the shared vocabulary (`rcd.residual.align_vocab` drops those).
    """
    if reference.mask_token_id != target.mask_token_id:
        raise ValueError(
            f"reference mask id {reference.mask_token_id} differs from the model's "
            f"{target.mask_token_id}: they must share a tokenizer"
        )
    ref_vocab, vocab = _output_vocab(reference), _output_vocab(target)
    if tokenizers is not None:
        ours, theirs = tokenizers
        if theirs.get_vocab() != ours.get_vocab():
            raise ValueError(
                "the reference uses a different tokenizer than the target: RCD needs a shared vocabulary"
            )
        if min(ref_vocab, vocab) < len(ours):
            raise ValueError(
                f"output vocabularies ({vocab}, reference {ref_vocab}) are smaller than the tokenizer's"
            )
    elif ref_vocab != vocab:
        raise ValueError(
            f"reference vocabulary ({ref_vocab}) differs from the model's ({vocab}): "
            "reference and model must share a tokenizer"
        )


def _output_vocab(dm: DiffusionModel) -> int:
    config = getattr(dm.model, "config", None)
    return int(getattr(config, "vocab_size", None) or dm.vocab_size)


def context_length(model: nn.Module | DiffusionModel) -> int | None:
    """Positions the model was built for (None: its config does not say)."""
    inner = model.model if isinstance(model, DiffusionModel) else model
    return config_context_length(getattr(inner, "config", None))


def config_context_length(config) -> int | None:
    """Positions a model config declares (None: it does not say)."""
    for name in ("max_position_embeddings", "max_sequence_length", "n_positions"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None
