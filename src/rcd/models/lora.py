"""LoRA adapter folders (peft `save_pretrained` output) loaded like any checkpoint.

`rcd train --lora-rank R` saves OUT/adapter (the adapter and the base it adapts, by path
or Hub id) besides the merged model in OUT. `rcd.load(OUT/adapter)` loads the base with
the same options, applies the adapter and merges it, so `rcd eval` and `rcd generate`
take the folder directly; the base must still exist where the adapter says.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

ADAPTER_CONFIG = "adapter_config.json"


def is_adapter_dir(path_or_id) -> bool:
    path = Path(path_or_id)
    return path.is_dir() and (path / ADAPTER_CONFIG).exists() and not (path / "config.json").exists()


def adapter_base(path: str | Path) -> str:
    """The base model an adapter folder was trained on (its adapter config's)."""
    base_path = json.loads((Path(path) / ADAPTER_CONFIG).read_text()).get("base_model_name_or_path")
    if not base_path:
        raise ValueError(f"{path}/{ADAPTER_CONFIG} names no base model (base_model_name_or_path)")
    return base_path


def load_adapter(path: str | Path, load: Callable, **options):
    """(merged model, the base's tokenizer) of an adapter folder."""
    try:
        from peft import PeftModel
    except ImportError as err:
        raise ImportError(
            f"{path} is a LoRA adapter: loading it needs peft (pip install 'rcd[lora]')"
        ) from err
    device = options.pop("device", None)
    base, tokenizer = load(adapter_base(path), **options)
    model = PeftModel.from_pretrained(base, str(path)).merge_and_unload()
    if device is not None:
        model = model.to(device)
    return model.eval(), tokenizer
