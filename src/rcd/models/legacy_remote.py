"""Transformers-4 era remote code (Dream, SDAR) imported and built under transformers 5.

The published modeling files of Dream and SDAR were written against transformers 4.4x-4.5x
and stop at names transformers 5 removed (docs/models.md lists what was seen in public
copies of the files):

- `ROPE_INIT_FUNCTIONS["default"]` (the rotary classes look the plain RoPE up by name);
- `transformers.modeling_attn_mask_utils` and `transformers.utils.LossKwargs` (imported;
  of the mask helpers, LLaDA2 calls `_prepare_4d_causal_attention_mask_for_sdpa`, which
  passes rcd's 4D masks through), `transformers.utils.import_utils.is_torch_fx_available`
  (LLaDA2);
- a config without `pad_token_id` (transformers 5 configs no longer default it; the model
  reads it for the embedding's padding index);
- `GenerationConfig.validate(...)` called with keywords (`strict`, `user_set_attributes`)
  a remote subclass's own `validate(is_init=False)` does not take;
- `flash_attn`, imported unconditionally (SDAR's RMSNorm), which transformers'
  `check_imports` refuses before any fallback could act.

`transformers4_names()` puts the removed names back only while rcd imports and builds the
remote model, and takes them away afterwards, so nothing else in the process sees them.
`flash_attn_standin()` does the same for `flash_attn`, only when it is not installed and
only around the import itself: its functions are PyTorch computations of flash-attn's
contract (`rcd.models.flash_fallback`), and the remote module keeps references to them.
Where transformers still has a name, nothing is changed.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.machinery
import importlib.util
import inspect
import sys
import types
from collections.abc import Iterator
from typing import TypedDict

import torch
from transformers import DynamicCache, GenerationConfig, PretrainedConfig, modeling_rope_utils
from transformers import utils as hf_utils
from transformers.utils import import_utils

from .flash_fallback import flash_attn_available, sdpa_flash_attn_func

_MASK_UTILS = "transformers.modeling_attn_mask_utils"


def default_rope_parameters(
    config: PretrainedConfig | None = None, device=None, seq_len: int | None = None, **rope_kwargs
) -> tuple[torch.Tensor, float]:
    """Plain RoPE inverse frequencies and attention scale 1.0, as transformers 4 computed them.

    base and rotary dim come from `rope_kwargs` (`base`, `dim`, the legacy call) or from the
    config: `rope_theta` (or `rope_parameters["rope_theta"]`), `head_dim` (else hidden size
    over heads) times `partial_rotary_factor`.
    """
    if rope_kwargs:
        base, dim = rope_kwargs["base"], int(rope_kwargs["dim"])
    else:
        base = getattr(config, "rope_theta", None)
        if base is None:
            base = (getattr(config, "rope_parameters", None) or {}).get("rope_theta", 10000.0)
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        dim = int(head_dim * getattr(config, "partial_rotary_factor", 1.0))
    exponents = torch.arange(0, dim, 2, dtype=torch.int64).to(device=device, dtype=torch.float) / dim
    return 1.0 / (base**exponents), 1.0


class LossKwargs(TypedDict, total=False):
    """transformers 4's `LossKwargs`: the keyword arguments a loss function may receive."""

    num_items_in_batch: torch.Tensor | None


class _Removed(type):
    def __getattr__(cls, name):
        raise NotImplementedError(_removed_message(cls.__name__))


class AttentionMaskConverter(metaclass=_Removed):
    """Placeholder for the class transformers 5 removed: importable, refuses any use."""

    def __init__(self, *args, **kwargs):
        raise NotImplementedError(_removed_message("AttentionMaskConverter"))


def prepare_4d_mask_for_sdpa(
    attention_mask, input_shape, inputs_embeds, past_key_values_length, sliding_window=None
):
    """transformers 4's `_prepare_4d_causal_attention_mask_for_sdpa` for the masks rcd passes:
    a 4D mask is SDPA's mask as it is; any other use is refused."""
    if attention_mask is None or attention_mask.dim() != 4:
        raise NotImplementedError(
            _removed_message("_prepare_4d_causal_attention_mask_for_sdpa (for 2D masks)")
        )
    return attention_mask


def _refused_mask_helper(name: str):
    def refuse(*args, **kwargs):
        raise NotImplementedError(_removed_message(name))

    return refuse


def _removed_message(name: str) -> str:
    return (
        f"{_MASK_UTILS}.{name} was removed in transformers 5 and rcd does not provide it; rcd passes the "
        "remote model its attention masks itself, so call the model through rcd (DiffusionModel)"
    )


class LayerIndexedCache(DynamicCache):
    """A DynamicCache that also answers `cache[layer]` with (keys, values) and
    `get_usable_length`, as transformers 4's did: SDAR's attention reads finished blocks by
    layer, LLaDA2's forward asks the cached length that way (5.x caches do neither)."""

    def __getitem__(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        if hasattr(self, "layers"):
            return self.layers[layer].keys, self.layers[layer].values
        return super().__getitem__(layer)

    def get_usable_length(self, new_seq_length: int, layer_idx: int = 0) -> int:
        """Cached positions a new input can attend to: all of them (a dynamic cache has no cap)."""
        return self.get_seq_length(layer_idx)


def _torch_fx_available() -> bool:
    """transformers 4's answer for every torch rcd supports (torch.fx ships with torch >= 1.10)."""
    return True


def fill_config_defaults(config: PretrainedConfig) -> None:
    """`pad_token_id` = None where the config has none, as transformers 4 configs defaulted it."""
    if not hasattr(config, "pad_token_id"):
        config.pad_token_id = None


@contextlib.contextmanager
def transformers4_names() -> Iterator[None]:
    """The removed transformers names, present inside the block only (where they are missing)."""
    with contextlib.ExitStack() as stack:
        if "default" not in modeling_rope_utils.ROPE_INIT_FUNCTIONS:
            modeling_rope_utils.ROPE_INIT_FUNCTIONS["default"] = default_rope_parameters
            stack.callback(modeling_rope_utils.ROPE_INIT_FUNCTIONS.pop, "default", None)
        if not hasattr(hf_utils, "LossKwargs"):
            hf_utils.LossKwargs = LossKwargs
            stack.callback(delattr, hf_utils, "LossKwargs")
        if importlib.util.find_spec(_MASK_UTILS) is None:
            module = types.ModuleType(_MASK_UTILS, "rcd placeholder for a module removed in transformers 5")
            module.AttentionMaskConverter = AttentionMaskConverter
            module._prepare_4d_causal_attention_mask_for_sdpa = prepare_4d_mask_for_sdpa
            module._prepare_4d_causal_attention_mask = _refused_mask_helper(
                "_prepare_4d_causal_attention_mask"
            )
            stack.enter_context(_modules({_MASK_UTILS: module}))
        if not hasattr(import_utils, "is_torch_fx_available"):
            import_utils.is_torch_fx_available = _torch_fx_available
            stack.callback(delattr, import_utils, "is_torch_fx_available")
        yield


@contextlib.contextmanager
def flash_attn_standin() -> Iterator[None]:
    """An importable `flash_attn` made of PyTorch code inside the block, if flash-attn is absent."""
    if flash_attn_available():
        yield
        return
    _settle_availability_checks()
    with _modules(_flash_attn_modules()):
        yield


def adapt_generation_configs(model_class: type) -> list[str]:
    """Let the remote GenerationConfig subclasses next to `model_class` take transformers 5's
    `validate(...)` keywords; they are dropped, as transformers 4 never passed them.

    Returns the names of the adapted classes.
    """
    adapted = []
    package = model_class.__module__.rpartition(".")[0]
    for name, module in list(sys.modules.items()):
        if module is None or not (name == model_class.__module__ or name.startswith(package + ".")):
            continue
        for obj in list(vars(module).values()):
            if (
                isinstance(obj, type)
                and issubclass(obj, GenerationConfig)
                and obj is not GenerationConfig
                and "validate" in vars(obj)
                and not _takes_any_keyword(obj.validate)
            ):
                obj.validate = _keywords_dropped(obj.validate)
                adapted.append(obj.__qualname__)
    return adapted


def _keywords_dropped(validate):
    accepted = set(inspect.signature(validate).parameters)

    @functools.wraps(validate)
    def wrapper(self, *args, **kwargs):
        return validate(self, *args, **{k: v for k, v in kwargs.items() if k in accepted})

    wrapper._rcd_keywords_dropped = True
    return wrapper


def _takes_any_keyword(fn) -> bool:
    if getattr(fn, "_rcd_keywords_dropped", False):
        return True
    params = inspect.signature(fn).parameters.values()
    return any(p.kind is p.VAR_KEYWORD for p in params)


def _rms_norm_fn(x, weight, bias=None, residual=None, eps=1e-6, **unsupported):
    """flash_attn's `rms_norm_fn` for the plain call: float32 statistics, output in x's dtype."""
    if residual is not None or any(v not in (None, False, 0.0) for v in unsupported.values()):
        raise NotImplementedError("rcd's PyTorch rms_norm_fn supports only (x, weight, bias, eps)")
    x32 = x.float()
    y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps) * weight.float()
    if bias is not None:
        y = y + bias.float()
    return y.to(x.dtype)


def _unsupported(name: str):
    def refuse(*args, **kwargs):
        raise NotImplementedError(
            f"flash_attn.{name} needs flash-attn (pip install flash-attn); rcd's stand-in has only "
            "flash_attn_func and rms_norm_fn"
        )

    return refuse


def _flash_attn_modules() -> dict[str, types.ModuleType]:
    def package(name: str, **attrs) -> types.ModuleType:
        module = types.ModuleType(name, "rcd's PyTorch stand-in for flash-attn (not installed)")
        module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
        module.__path__ = []
        vars(module).update(attrs)
        return module

    return {
        "flash_attn": package(
            "flash_attn",
            __version__="0.0.0+rcd.standin",
            flash_attn_func=sdpa_flash_attn_func,
            flash_attn_varlen_func=_unsupported("flash_attn_varlen_func"),
        ),
        "flash_attn.bert_padding": package(
            "flash_attn.bert_padding",
            **{
                n: _unsupported(f"bert_padding.{n}") for n in ("index_first_axis", "pad_input", "unpad_input")
            },
        ),
        "flash_attn.ops": package("flash_attn.ops"),
        "flash_attn.ops.triton": package("flash_attn.ops.triton"),
        "flash_attn.ops.triton.layer_norm": package(
            "flash_attn.ops.triton.layer_norm", rms_norm_fn=_rms_norm_fn
        ),
    }


def _settle_availability_checks() -> None:
    """Evaluate transformers' cached flash-attn checks now, so the stand-in never answers them."""
    from transformers.utils import import_utils

    for name in ("is_flash_attn_2_available", "is_flash_attn_3_available", "is_flash_attn_4_available"):
        check = getattr(import_utils, name, None)
        if check is not None:
            check()


@contextlib.contextmanager
def _modules(modules: dict[str, types.ModuleType]) -> Iterator[None]:
    added = {name: module for name, module in modules.items() if name not in sys.modules}
    sys.modules.update(added)
    try:
        yield
    finally:
        for name, module in added.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
