"""Remote code of the transformers-4 era (Dream, SDAR, LLaDA) through `rcd.load`.

The stand-ins reproduce what the real files need (tests/standins): every piece of rcd's
compatibility layer is needed (switched off, the stand-in fails as the real file does
under transformers 5) and enough (the loaded model equals the same weights built eagerly).
"""

import contextlib
import importlib.util
import sys

import pytest
import torch
import transformers
from torch import nn
from transformers import modeling_rope_utils
from transformers import utils as hf_utils

import rcd
from rcd.models import buffers, legacy_remote, loading
from rcd.models.compat import TRANSFORMERS_MAJOR
from standins.checkpoints import eager_copy, save_checkpoint

needs_5 = pytest.mark.skipif(
    TRANSFORMERS_MAJOR < 5, reason="transformers 4 still has what this shim puts back"
)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("remote")
    made = {
        kind: save_checkpoint(kind, root / kind, seed=i) for i, kind in enumerate(("llada", "dream", "sdar"))
    }
    made["sdar-unsized"] = save_checkpoint("sdar", root / "sdar-unsized", block_size=None)
    return made


def natural_logits(kind, model, ids):
    """The family's own call on token ids (SDAR: block-causal mask over blocks of 4 from 0)."""
    if kind == "llada":
        return model(input_ids=ids, use_cache=False).logits
    positions = torch.arange(ids.shape[1])[None]
    if kind == "dream":
        return model(input_ids=ids, position_ids=positions).logits
    blocks = positions[0] // 4
    mask = (blocks[None, :] <= blocks[:, None])[None, None]
    return model(input_ids=ids, attention_mask=mask, position_ids=positions).logits


IDS = torch.tensor([[5, 9, 12, 7, 3, 44, 21, 8, 17, 30, 2, 11]])


@pytest.mark.parametrize("kind", ["llada", "dream", "sdar"])
def test_loaded_model_equals_the_eager_build(checkpoints, kind):
    model, _ = rcd.load(checkpoints[kind], trust_remote_code=True, dtype="float32")
    eager = eager_copy(kind, checkpoints[kind])
    with torch.no_grad():
        assert torch.allclose(natural_logits(kind, model, IDS), natural_logits(kind, eager, IDS), atol=1e-6)


def _off(target, name, replacement):
    return lambda monkeypatch: monkeypatch.setattr(target, name, replacement)


# (kind, piece switched off, the error the real file gives without it)
FAILURES = [
    ("sdar", _off(loading, "flash_attn_standin", contextlib.nullcontext), ImportError, "flash_attn"),
    ("dream", _off(loading, "transformers4_names", contextlib.nullcontext), KeyError, "default"),
    # the first transformers-4 name the file imports that the installed version lacks
    # (transformers 5.25 has modeling_attn_mask_utils again, not LossKwargs)
    (
        "sdar",
        _off(loading, "transformers4_names", contextlib.nullcontext),
        ImportError,
        "modeling_attn_mask_utils|LossKwargs",
    ),
    ("dream", _off(loading, "adapt_generation_configs", lambda cls: []), TypeError, "user_set_attributes"),
    ("sdar", _off(loading, "fill_config_defaults", lambda config: None), AttributeError, "pad_token_id"),
]


@needs_5
@pytest.mark.parametrize(
    "kind, switch_off, error, message", FAILURES, ids=lambda x: getattr(x, "__name__", x)
)
def test_each_compat_piece_is_needed(checkpoints, monkeypatch, kind, switch_off, error, message):
    switch_off(monkeypatch)
    for name in [n for n in sys.modules if n.startswith("transformers_modules")]:
        monkeypatch.delitem(sys.modules, name)  # import the remote files afresh
    with pytest.raises(error, match=message):
        rcd.load(checkpoints[kind], trust_remote_code=True, dtype="float32")


@needs_5
@pytest.mark.parametrize("kind", ["dream", "sdar"])
def test_meta_device_loading_leaves_rope_buffers_wrong_unless_restored(checkpoints, monkeypatch, kind):
    monkeypatch.setattr(loading, "restore_buffers", lambda *args: [])
    model, _ = rcd.load(checkpoints[kind], trust_remote_code=True, dtype="float32")
    eager = eager_copy(kind, checkpoints[kind])
    with torch.no_grad():
        assert not torch.allclose(
            natural_logits(kind, model, IDS), natural_logits(kind, eager, IDS), atol=1e-3
        )


def test_compat_names_are_gone_after_loading(checkpoints):
    before = ("default" in modeling_rope_utils.ROPE_INIT_FUNCTIONS, hasattr(hf_utils, "LossKwargs"))
    rcd.load(checkpoints["sdar"], trust_remote_code=True)
    assert "flash_attn" not in sys.modules and importlib.util.find_spec("flash_attn") is None
    assert not transformers.utils.is_flash_attn_2_available()
    assert ("default" in modeling_rope_utils.ROPE_INIT_FUNCTIONS, hasattr(hf_utils, "LossKwargs")) == before


def test_flash_attn_standin_rms_norm_is_rms_norm():
    x, w = torch.randn(2, 5, 8, dtype=torch.bfloat16), torch.randn(8)
    expected = torch.nn.functional.rms_norm(x.float(), (8,), w, eps=1e-6).to(torch.bfloat16)
    assert torch.equal(legacy_remote._rms_norm_fn(x, w, None, eps=1e-6), expected)


def test_sdar_preset_reads_the_configs_block_size(checkpoints):
    model, _ = rcd.load(checkpoints["sdar"], preset="sdar", trust_remote_code=True)
    assert model.config.block_length == 4 and model.config.attention == "block-causal"
    with pytest.raises(ValueError, match="block size"):
        rcd.load(checkpoints["sdar-unsized"], preset="sdar", trust_remote_code=True)


class _Lazy(nn.Module):
    """A buffer that `__init__` leaves on the meta device: rcd cannot know its value."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(2))
        self.register_buffer("table", torch.empty(3, device="meta"), persistent=False)


def test_a_buffer_that_cannot_be_recomputed_is_refused_by_name():
    model = _Lazy()
    with pytest.raises(buffers.BufferError, match="'table'"):
        buffers.restore_buffers(model, _Lazy, saved={"weight"})
