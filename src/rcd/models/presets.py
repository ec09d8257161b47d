"""What rcd must know about each dLLM family to load it and decode with it.

A preset names the family's mask token, stop tokens, attention mode, block size, the
Auto class that loads it, its forward convention (`conventions.py`) and, where the
tokenizer ships none, a chat template. Values from the checkpoint's own config win over
the preset's defaults (a fine-tuned model may move its mask id); the defaults are the
published ones (docs/field-notes.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from .attention import ATTENTION_MODES

# Llama-3 style headers, as LLaDA's Instruct tokenizer uses; given to LLaDA Base, whose
# tokenizer has no template, so both take the same chat prompts.
LLAMA3_STYLE_TEMPLATE = (
    "{% if bos_token %}{{ bos_token }}{% endif %}{% for message in messages %}"
    "<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    "{{ message['content'] | trim }}<|eot_id|>"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


@dataclass(frozen=True)
class Preset:
    """Loading and calling facts of one model family.

    mask_token_id / stop_token_ids: published defaults, used where the checkpoint's config
        and tokenizer do not say.
    forward: name of the forward convention (`rcd.models.conventions`).
    auto_class: the transformers Auto class the family registers its model under.
    remote_code: the family's modeling code lives in the checkpoint (trust_remote_code).
    chat_template: used only when the tokenizer has none.
    block_grid: where a block-causal model's blocks start ("absolute": from each row's first
        token, as SDAR trains and generates; see `rcd.decode.grid`).
    config_block_field: the family's own name for its block size in its config (SDAR
        `block_size`, Fast-dLLM v2 `bd_size`), read when `block_length` is not given.
    """

    name: str
    description: str
    attention: str = "bidirectional"
    block_length: int | None = None
    mask_token_id: int | None = None
    stop_token_ids: tuple[int, ...] = ()
    forward: str = "hf"
    auto_class: str = "AutoModelForCausalLM"
    remote_code: bool = False
    chat_template: str | None = None
    block_grid: str = "generation"
    config_block_field: str | None = None

    def __post_init__(self) -> None:
        if self.attention not in ATTENTION_MODES:
            raise ValueError(f"attention must be one of {ATTENTION_MODES}, got {self.attention!r}")


SDAR_BLOCK_SIZES = (4, 8, 16, 32, 64)
TRADO_BLOCK = 4  # TraDo's released sampling settings (dLLM-RL's README and trado_eval.yaml)

_LLADA = Preset(
    name="llada",
    description="LLaDA 8B Base/Instruct (remote code): bidirectional, 2D mask, no position ids",
    mask_token_id=126336,
    stop_token_ids=(126081, 126348),
    forward="llada",
    auto_class="AutoModel",
    remote_code=True,
    chat_template=LLAMA3_STYLE_TEMPLATE,
)
_DREAM = Preset(
    name="dream",
    description="Dream 7B (remote code): bidirectional, Qwen2 tokenizer, logits shifted by one",
    mask_token_id=151666,
    stop_token_ids=(151643, 151645),
    forward="dream",
    auto_class="AutoModel",
    remote_code=True,
)
_SDAR = Preset(
    name="sdar",
    description="SDAR 1.7B/4B/8B (remote code, Qwen3-based): block-causal with KV cache; "
    "block size from the config or the model name (-b32), else give sdar-bN",
    attention="block-causal",
    mask_token_id=151669,
    stop_token_ids=(151645, 151643),
    forward="sdar",
    remote_code=True,
    block_grid="absolute",
    config_block_field="block_size",
)
_LLADA2 = Preset(
    name="llada2",
    description="LLaDA2.0 mini/flash (remote code, MoE): block-causal, blocks of 32 from the sequence "
    "start, additive 4D mask, KV cache",
    attention="block-causal",
    block_length=32,
    mask_token_id=156895,
    stop_token_ids=(156892,),
    forward="llada2",
    remote_code=True,
    block_grid="absolute",
)
# TraDo (Gen-Verse dLLM-RL, TraceRL-trained from SDAR): SDAR's modeling code, config (model_type
# sdar, mask 151669) and tokenizer; only the name and the block size it is run with differ
_TRADO = replace(
    _SDAR,
    name="trado",
    description="TraDo 4B/8B Instruct, 8B Thinking (Gen-Verse dLLM-RL; SDAR's remote code): "
    f"block-causal, blocks of {TRADO_BLOCK} from the sequence start, KV cache",
    block_length=TRADO_BLOCK,
)
_FAST_DLLM_V2 = Preset(
    name="fast-dllm-v2",
    description="Fast-dLLM v2 1.5B/7B (remote code, Qwen2.5-based): block-causal, blocks of bd_size (32) "
    "from the sequence start, KV cache, logits shifted by one; its sampler is --threshold with "
    "--sub-block-length 8",
    attention="block-causal",
    mask_token_id=151665,
    stop_token_ids=(151645, 151643),
    forward="fast_dllm_v2",
    remote_code=True,
    block_grid="absolute",
    config_block_field="bd_size",
)
_HF = Preset(
    name="hf",
    description="any transformers architecture (Llama, Qwen2, Qwen3, ...) decoded as a dLLM "
    "with a bidirectional (default) or block-causal mask; mask id from the config or tokenizer",
)
_RCD_TINY = Preset(
    name="rcd-tiny",
    description="rcd's own tiny dLLM (tests, demo, trained checkpoints)",
    auto_class="AutoModel",
)

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        _LLADA,
        _DREAM,
        _LLADA2,
        _SDAR,
        _TRADO,
        _FAST_DLLM_V2,
        *(
            replace(_SDAR, name=f"sdar-b{b}", description=f"SDAR with block size {b}", block_length=b)
            for b in SDAR_BLOCK_SIZES
        ),
        _HF,
        _RCD_TINY,
    )
}

# config.model_type of each family's checkpoints
_MODEL_TYPES = {
    "llada": "llada",
    "dream": "dream",
    "sdar": "sdar",
    "llada2_moe": "llada2",
    "fast_dllm_qwen": "fast-dllm-v2",
    "rcd-tiny": "rcd-tiny",
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]


def detect_preset(config, name_or_path: str = "") -> Preset | None:
    """The family preset of a checkpoint's config (None: not a known dLLM family).

    An SDAR config without a block size gets it from the checkpoint name (`...-b32`); an SDAR
    config whose checkpoint's name or path says TraDo is TraDo's (block size 4 unless its config says).
    """
    family = _MODEL_TYPES.get(str(getattr(config, "model_type", "")).lower())
    if family is None:
        return None
    preset = PRESETS[family]
    if family != "sdar":
        return preset
    if "trado" in str(name_or_path).lower():  # a Hub id, a local copy or the Hub cache's folder
        preset = PRESETS["trado"]
    block = checkpoint_block_length(config, name_or_path)
    return replace(preset, block_length=block) if block is not None else preset


def checkpoint_block_length(config, name_or_path: str = "") -> int | None:
    """The block size a checkpoint declares: SDAR's `block_size` or rcd's `block_length` in its
    config, else a `-bN` in its name (SDAR's checkpoints); None when it declares none.

    The one reading of an SDAR-family checkpoint's block size (another family's is its preset's
    `config_block_field`); `rcd.models.loading` resolves the model's block length from it, an
    explicit override and the preset, and writes it to the config.
    """
    block = getattr(config, "block_size", None) or getattr(config, "block_length", None)
    if block is None:
        found = re.search(r"-b(\d+)(?:\b|_|$)", str(name_or_path))
        block = found.group(1) if found else None
    return int(block) if block is not None else None
