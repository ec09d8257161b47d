"""Loading dLLMs and their tokenizers, ready for `rcd.generate` and training.

`load` finds the family preset (LLaDA, Dream, SDAR, rcd-tiny, or any transformers
architecture), loads model and tokenizer with the right Auto class, and writes what the
adapter needs into the model config (mask id, attention mode, block size, forward
convention, stop ids), so `DiffusionModel.wrap(model)` and a `save_pretrained` copy of the
model both know them. Remote code runs only with `trust_remote_code=True`.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import transformers
from transformers import AutoConfig, PreTrainedTokenizerBase
from transformers.dynamic_module_utils import get_class_from_dynamic_module

from ..residual_rules import load_rule_parameters
from ..rundir import looks_like_path
from ..tokenizer import tokenizer_from_pretrained
from .adapter import DiffusionModel, config_context_length
from .attention import ATTENTION_MODES
from .buffers import checkpoint_keys, restore_buffers
from .compat import TRANSFORMERS_MAJOR, adapt_remote_class
from .conventions import get_convention
from .flash_fallback import install_sdpa_fallback
from .hub import resolve_hub_name
from .legacy_remote import (
    adapt_generation_configs,
    fill_config_defaults,
    flash_attn_standin,
    transformers4_names,
)
from .lora import adapter_base, is_adapter_dir, load_adapter
from .presets import PRESETS, Preset, checkpoint_block_length, detect_preset, get_preset

DTYPES = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float64": torch.float64,
}
# transformers before 4.56 knows only `torch_dtype` (5.x: `dtype`)
_DTYPE_KWARG = "dtype" if TRANSFORMERS_MAJOR >= 5 else "torch_dtype"
# custom 4D masks reach the kernel with these two; flash-attention kernels take no masks
_MASKED_ATTENTION = ("sdpa", "eager")


@dataclass(frozen=True)
class LoadConfig:
    """How to load a model; every field is also a CLI flag (`--preset`, `--dtype`, ...)."""

    preset: str | None = field(
        default=None,
        metadata={"help": "model family (default: detected from the config)", "choices": tuple(PRESETS)},
    )
    trust_remote_code: bool = field(
        default=False,
        metadata={"help": "run the modeling code shipped with the checkpoint (LLaDA, Dream, SDAR)"},
    )
    dtype: str | None = field(default=None, metadata={"help": "weights dtype", "choices": tuple(DTYPES)})
    device: str | None = field(
        default=None,
        metadata={
            "help": "device, e.g. cuda, cuda:1 or cpu (default: a GPU when there is one; "
            "under accelerate launch, each process's own)"
        },
    )
    mask_token_id: int | None = field(default=None, metadata={"help": "override the mask token id"})
    attention: str | None = field(
        default=None, metadata={"help": "override the attention mode", "choices": ATTENTION_MODES}
    )
    # spelled --model-block-length on the command line (--block-length is decoding's block there)
    block_length: int | None = field(
        default=None,
        metadata={
            "help": "block size a block-causal model was trained with (default: the preset's, else the "
            "checkpoint's config or, for SDAR, its name's -bN)"
        },
    )
    attn_implementation: str | None = field(
        default=None, metadata={"help": "transformers attention kernel (sdpa or eager for native models)"}
    )

    def __post_init__(self) -> None:
        """Every check that needs no model: a bad option fails before anything loads."""
        if self.preset is not None and self.preset not in PRESETS:
            raise ValueError(f"preset {self.preset!r} is unknown; choose one of {', '.join(PRESETS)}")
        if self.dtype is not None and self.dtype not in DTYPES:
            raise ValueError(f"dtype {self.dtype!r} is unknown; choose one of {', '.join(DTYPES)}")
        if self.device is not None:
            check_device(self.device, here=False)  # a config may be built for another machine
        if self.mask_token_id is not None and self.mask_token_id < 0:
            raise ValueError(f"mask_token_id must be >= 0, got {self.mask_token_id}")
        if self.attention is not None and self.attention not in ATTENTION_MODES:
            raise ValueError(
                f"attention {self.attention!r} is unknown; choose one of {', '.join(ATTENTION_MODES)}"
            )
        if self.block_length is not None and self.block_length < 1:
            raise ValueError(
                f"--model-block-length: the model's block_length must be >= 1, not {self.block_length}"
            )
        if self.attn_implementation is not None and not self.attn_implementation.strip():
            raise ValueError("attn_implementation must name a kernel (sdpa, eager, ...) or be left out")

    def kwargs(self) -> dict:
        return asdict(self)


def check_device(device: str | torch.device, *, here: bool = True) -> torch.device:
    """A device name torch knows and, if `here`, this machine has (cuda without a GPU is refused
    before the weights load, not after)."""
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device {device!r} is not a torch device (e.g. cpu, cuda, cuda:1, mps)") from err
    if not here:
        return parsed
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r}: no CUDA GPU is available here; use --device cpu or leave it out"
        )
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r}: MPS is not available here; use --device cpu or leave it out")
    return parsed


def load(
    path_or_id: str | Path,
    *,
    preset: str | None = None,
    trust_remote_code: bool = False,
    dtype: torch.dtype | str | None = None,
    device: str | torch.device | None = None,
    mask_token_id: int | None = None,
    attention: str | None = None,
    block_length: int | None = None,
    attn_implementation: str | None = None,
) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """Model (eval mode) and left-padding tokenizer of a checkpoint directory or hub id.

    A LoRA adapter folder (see `rcd.models.lora`) loads as its base with the adapter merged.

    preset: family name (see `rcd.models.presets.PRESETS`); default: detected from the
        config's model type, and "hf" (any transformers causal LM run as a dLLM) otherwise.
    mask_token_id / attention / block_length: override the checkpoint's and the preset's.
    """
    if is_adapter_dir(path_or_id):
        return load_adapter(
            path_or_id,
            load,
            preset=preset,
            trust_remote_code=trust_remote_code,
            dtype=dtype,
            device=device,
            mask_token_id=mask_token_id,
            attention=attention,
            block_length=block_length,
            attn_implementation=attn_implementation,
        )
    if device is not None:
        check_device(device)
    source = check_source(path_or_id)
    config = _load_config(source, trust_remote_code)
    chosen = _choose_preset(source, config, preset)
    if chosen.remote_code and not trust_remote_code:
        what = f"--preset {preset} runs" if preset else f"{source} is a {chosen.name} checkpoint, which ships"
        raise ValueError(
            f"{what} modeling code that comes with the weights: "
            "pass trust_remote_code=True (--trust-remote-code) if you trust it"
        )
    model = _load_model(source, config, chosen, trust_remote_code, _dtype(dtype), attn_implementation)
    tokenizer = tokenizer_from_pretrained(source, trust_remote_code=trust_remote_code)
    _configure(model, tokenizer, chosen, mask_token_id, attention, block_length)
    DiffusionModel.wrap(model)  # refuse now what decoding would refuse later
    if Path(source).is_dir():
        load_rule_parameters(model, source)  # a learned feedback rule's module (rcd.residual_rules)
    if chosen.remote_code:
        install_sdpa_fallback(model)
    if device is not None:
        model = model.to(device)
    return model.eval(), tokenizer


def check_source(path_or_id: str | Path) -> str:
    """A local model directory, or a name for the Hub; a path that does not exist is named as such,
    and a Hub name that cannot load (no network, not cached) is refused at once (`hub`)."""
    path = Path(path_or_id).expanduser()
    if path.is_dir() and not (path / "config.json").exists():
        raise FileNotFoundError(f"no model at {path} (the directory has no config.json)")
    if path.exists() and not path.is_dir():
        raise FileNotFoundError(f"{path} is a file, not a model directory")
    if path.exists():
        return str(path)
    if looks_like_path(str(path_or_id)):
        raise FileNotFoundError(f"no model directory at {path} ({path.absolute()} does not exist)")
    return resolve_hub_name(str(path_or_id))


def _choose_preset(source: str, config, preset: str | None) -> Preset:
    detected = detect_preset(config, source)
    if not preset:
        return detected or PRESETS["hf"]
    chosen = get_preset(preset)
    if chosen.remote_code and detected is not None and detected.forward != chosen.forward:
        raise ValueError(
            f"--preset {preset} does not fit {source}: its config is a {detected.name} model "
            f"(model_type {config.model_type!r}); drop --preset or use --preset {detected.name}"
        )
    if chosen.remote_code and not getattr(config, "auto_map", None):
        raise ValueError(
            f"--preset {preset} needs a checkpoint that ships {preset}'s modeling code (auto_map in its "
            f"config.json); {source} has none"
        )
    return chosen


def _load_config(source: str, trust_remote_code: bool):
    try:
        return AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
    except OSError as err:
        if Path(source).exists():
            raise
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise FileNotFoundError(
            f"{source}: no local directory of that name ({Path(source).absolute()}), and no model of that "
            f"name could be loaded from the Hugging Face Hub ({reason[:120]})"
        ) from err
    except ValueError as err:
        if not trust_remote_code and "trust_remote_code" in str(err):
            raise ValueError(
                f"{source} ships its own modeling code (as LLaDA, Dream and SDAR do): "
                "pass trust_remote_code=True (--trust-remote-code) if you trust it"
            ) from err
        raise


def _dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {tuple(DTYPES)}, got {dtype!r}")
    return DTYPES[dtype]


def _load_model(source, config, preset: Preset, trust_remote_code, dtype, attn_implementation):
    kwargs: dict = {"config": config, "trust_remote_code": trust_remote_code}
    if dtype is not None:
        kwargs[_DTYPE_KWARG] = dtype
    if preset.forward == "hf":
        attn_implementation = attn_implementation or "sdpa"
        if attn_implementation not in _MASKED_ATTENTION:
            raise ValueError(
                f"attn_implementation {attn_implementation!r} cannot take rcd's custom attention masks; "
                f"use one of {_MASKED_ATTENTION}"
            )
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    class_ref = (getattr(config, "auto_map", None) or {}).get(preset.auto_class)
    if preset.remote_code and class_ref:
        return _load_remote(source, class_ref, config, kwargs)
    return getattr(transformers, preset.auto_class).from_pretrained(source, **kwargs)


def _load_remote(source: str, class_ref: str, config, kwargs: dict):
    """The checkpoint's own modeling code, imported and built with transformers 4's names
    (`legacy_remote`), then every buffer the checkpoint lacks recomputed (`buffers`)."""
    fill_config_defaults(config)
    with transformers4_names():
        with flash_attn_standin():
            model_class = get_class_from_dynamic_module(class_ref, source)
        model_class = adapt_remote_class(model_class)
        adapt_generation_configs(model_class)
        # (Dream overrides from_pretrained and takes no output_loading_info: read the keys instead)
        model = model_class.from_pretrained(source, **kwargs)
        default_dtype = model.dtype if kwargs.get(_DTYPE_KWARG) is not None else torch.get_default_dtype()
        with _default_dtype(default_dtype):
            restore_buffers(model, lambda: model_class(copy.deepcopy(model.config)), checkpoint_keys(source))
    return model


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype):
    """Build under the weights' dtype as default, as transformers' eager loading does."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _configure(model, tokenizer, preset: Preset, mask_token_id, attention, block_length) -> None:
    """Write mask id, attention mode, block size, convention and stop ids into the config."""
    config = model.config
    vocab = get_convention(preset.forward).embeddings(model).weight.shape[0]
    mask_id = _first(
        mask_token_id, getattr(config, "mask_token_id", None), preset.mask_token_id, tokenizer.mask_token_id
    )
    if mask_id is None:
        raise ValueError(
            "no mask token id: the config, the tokenizer and the preset give none; pass mask_token_id"
        )
    if not 0 <= mask_id < vocab:
        raise ValueError(f"mask token id {mask_id} is outside the embedding table ({vocab} rows)")
    config_attention = getattr(config, "attention", None)
    mode = _first(
        attention, config_attention if config_attention in ATTENTION_MODES else None, preset.attention
    )
    # the model's one block length, written to its config: the decode loop, the trainer and the
    # adapter read it from there (`DiffusionModel.block_length`)
    block = _first(
        block_length,
        preset.block_length,
        checkpoint_block_length(config)
        if preset.forward == "sdar"
        else getattr(config, "block_length", None),
        getattr(config, preset.config_block_field, None) if preset.config_block_field else None,
    )
    if mode == "block-causal" and block is None:
        raise ValueError(
            "a block-causal model needs its block size: pass block_length (SDAR: preset sdar-b32 etc.)"
        )
    config.mask_token_id = int(mask_id)
    config.attention = mode
    config.block_length = block
    config.rcd_forward = preset.forward
    config.rcd_block_grid = preset.block_grid
    config.rcd_preset = preset.name
    config.rcd_stop_token_ids = [i for i in preset.stop_token_ids if i < vocab]

    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.pad_token_id == mask_id:
        raise ValueError("the pad token must differ from the mask token (padding would read as [M])")
    if tokenizer.chat_template is None and preset.chat_template is not None:
        tokenizer.chat_template = preset.chat_template


def _first(*values):
    return next((v for v in values if v is not None), None)


def check_shared_vocabulary(
    tokenizer: PreTrainedTokenizerBase, reference_tokenizer: PreTrainedTokenizerBase, reference: str
) -> None:
    """RCD feeds the reference's probabilities through the model's embedding table: the same
    token must have the same id in both (a same-sized but permuted vocabulary is garbage)."""
    if tokenizer.get_vocab() != reference_tokenizer.get_vocab():
        size = " (same size, other tokens or ids)" if len(tokenizer) == len(reference_tokenizer) else ""
        raise ValueError(
            f"the reference {reference} uses a different tokenizer than the model{size}: RCD needs a shared "
            "vocabulary; train the reference with the model's tokenizer"
        )


def load_tokenizer(
    path_or_id: str | Path, trust_remote_code: bool = False
) -> tuple[PreTrainedTokenizerBase, int | None]:
    """A checkpoint's tokenizer and context length without its weights (an adapter folder:
    its base's), for the checks made before any model loads."""
    source = check_source(adapter_base(path_or_id) if is_adapter_dir(path_or_id) else path_or_id)
    config = _load_config(source, trust_remote_code)
    tokenizer = tokenizer_from_pretrained(source, trust_remote_code=trust_remote_code)
    return tokenizer, config_context_length(config)


def check_reference_tokenizer(model: str, reference: str, trust_remote_code: bool = False) -> None:
    """The shared-vocabulary check from the two tokenizers alone, before any model loads."""
    first, second = (
        tokenizer_from_pretrained(check_source(path), trust_remote_code=trust_remote_code)
        for path in (model, reference)
    )
    check_shared_vocabulary(first, second, str(reference))
