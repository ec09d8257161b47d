"""Every preset loads a tiny same-architecture checkpoint from disk and decodes with it."""

import sys

import pytest
import torch

import rcd
from rcd.decode.text import stop_ids
from rcd.models.adapter import DiffusionModel
from rcd.models.attention import allowed_keys
from rcd.models.compat import TRANSFORMERS_MAJOR
from rcd.models.flash_fallback import sdpa_flash_attn_func
from rcd.models.presets import PRESETS, detect_preset
from standins.checkpoints import KINDS, NATIVE, REMOTE, save_checkpoint

BLOCK = 4


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    return {kind: save_checkpoint(kind, root / kind, seed=i) for i, kind in enumerate(KINDS)}


def load(checkpoints, kind, **kw):
    if kind == "llada2":  # its config has no block size (the preset's is 32): decode the stand-in with 4
        kw = {"block_length": BLOCK, **kw}
    return rcd.load(checkpoints[kind], trust_remote_code=True, dtype="float64", **kw)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("residual", [None, rcd.ResidualConfig()], ids=["seqd", "rcd"])
def test_preset_loads_and_decodes(checkpoints, kind, residual):
    model, tok = load(checkpoints, kind)
    assert model.config.rcd_preset == ("hf" if kind in NATIVE else kind)
    ids, mask = rcd.encode_prompts(tok, ["12+34=", "7*8="])
    kw = dict(attention_mask=mask, gen_length=8, block_length=BLOCK, residual=residual)
    out = rcd.generate(model, ids, threshold=0.5, **kw)
    assert out.generated.shape == (2, 8) and not (out.generated == tok.mask_token_id).any()
    assert out.nfe >= 2 and out.tokens_per_step >= 1.0
    # a row decodes the same alone as in the left-padded batch (LLaDA has no position ids: exempt)
    if kind != "llada":
        alone = rcd.generate(model, ids[1:, 2:], steps=8, gen_length=8, block_length=BLOCK, residual=residual)
        batch = rcd.generate(model, ids, steps=8, **kw)
        assert torch.equal(alone.generated[0], batch.generated[1])


def natural_logits(kind, model, ids):
    """Logits from the family's own way of calling its model on token ids (no padding)."""
    n = ids.shape[1]
    if kind == "llada":
        return model(input_ids=ids, use_cache=False).logits
    if kind == "dream":
        logits = model(input_ids=ids).logits
        return torch.cat([logits[:, :1], logits[:, :-1]], 1)
    positions = torch.arange(n)[None]
    if kind == "fast-dllm-v2":  # its own block mask from the ids; its sampler shifts the logits
        with torch.compiler.set_stance("force_eager"):  # its rotary class is wrapped in torch.compile
            logits = model(input_ids=ids, block_size=BLOCK).logits
        return torch.cat([logits[:, :1], logits[:, :-1]], 1)
    if kind in ("sdar", "llada2"):  # their own generates: a block-causal mask over blocks from 0
        blocks = positions[0] // BLOCK
        structure = (blocks[None, :] <= blocks[:, None])[None, None]
        if kind == "llada2":  # additive, 0 / -inf
            structure = torch.zeros(structure.shape, dtype=model.dtype).masked_fill(~structure, float("-inf"))
            return model(
                input_ids=ids, attention_mask=structure, position_ids=positions, use_cache=False
            ).logits
        return model(input_ids=ids, attention_mask=structure, position_ids=positions).logits
    return model(
        input_ids=ids, attention_mask=torch.zeros(1, 1, n, n, dtype=model.dtype), position_ids=positions
    ).logits


@pytest.mark.parametrize("kind", KINDS)
def test_adapter_call_matches_the_familys_own_call(checkpoints, kind):
    model, tok = load(checkpoints, kind)
    dm = DiffusionModel.wrap(model)
    ids = torch.tensor([tok("1+2=3;4*5=20")["input_ids"][: BLOCK * 3]])
    with torch.no_grad():
        ours, _ = dm.forward(
            dm.embed(ids), key_valid=torch.ones_like(ids, dtype=torch.bool), block_length=BLOCK
        )
        assert torch.allclose(ours, natural_logits(kind, model, ids), atol=1e-10)


@pytest.mark.parametrize("kind", ["sdar", "qwen3" if "qwen3" in KINDS else "qwen2", "llama"])
def test_block_causal_cache_gives_the_same_tokens(checkpoints, kind):
    model, tok = load(checkpoints, kind, attention="block-causal", block_length=BLOCK)
    for prompts in (["12+34="], ["12+34=", "7*8="]):  # unpadded: SDAR's all-true (flash) path
        ids, mask = rcd.encode_prompts(tok, prompts)
        kw = dict(
            attention_mask=mask,
            gen_length=12,
            block_length=BLOCK,
            threshold=0.4,
            residual=rcd.ResidualConfig(),
        )
        cached = rcd.generate(model, ids, use_cache=True, **kw)
        fresh = rcd.generate(model, ids, use_cache=False, **kw)
        assert torch.equal(cached.sequences, fresh.sequences)


def test_sdar_flash_attention_falls_back_to_sdpa(checkpoints):
    model, _ = load(checkpoints, "sdar")
    remote = sys.modules[type(model.model).__module__]
    assert remote.flash_attn_func is sdpa_flash_attn_func
    q, k, v = torch.randn(2, 5, 4, 8), torch.randn(2, 5, 2, 8), torch.randn(2, 5, 2, 8)
    expected = torch.nn.functional.scaled_dot_product_attention(
        q.transpose(1, 2),
        k.repeat_interleave(2, 2).transpose(1, 2),
        v.repeat_interleave(2, 2).transpose(1, 2),
    ).transpose(1, 2)
    assert torch.allclose(sdpa_flash_attn_func(q, k, v), expected, atol=1e-6)


def test_sdar_trains_through_the_adapter(checkpoints):
    """SDAR's forward refuses inputs_embeds in training mode; the adapter's path does not."""
    model, tok = load(checkpoints, "sdar")
    model.train()
    dm = DiffusionModel.wrap(model)
    ids = torch.tensor([tok("1+2=3;45")["input_ids"]])
    with pytest.raises(ValueError, match="training mode"):
        model(inputs_embeds=dm.embed(ids))
    logits, _ = dm.forward(
        dm.embed(ids), key_valid=torch.ones_like(ids, dtype=torch.bool), block_length=BLOCK
    )
    logits.sum().backward()
    assert dm.embedding_weight.grad is not None and dm.embedding_weight.grad.abs().sum() > 0
    model.eval()


@pytest.mark.parametrize("kind", ["llada", "llama", "sdar"])
def test_explicit_attention_pattern_reaches_the_model(checkpoints, kind):
    """Training calls `DiffusionModel.call` with its own patterns: a block-causal one hides
    later blocks from earlier ones, through every family's convention."""
    model, tok = load(checkpoints, kind)
    dm = DiffusionModel.wrap(model)
    ids = torch.tensor([tok("1+2=3;45")["input_ids"]])
    changed = ids.clone()
    changed[0, -1] = tok.convert_tokens_to_ids("9")
    valid = torch.ones_like(ids, dtype=torch.bool)
    positions = torch.arange(ids.shape[1])[None]
    causal = allowed_keys(valid, 0, mode="block-causal", gen_start=0, block_length=BLOCK)
    full = allowed_keys(valid, 0, mode="bidirectional", gen_start=0, block_length=None)
    with torch.no_grad():
        a, b, full_a, full_b = (
            dm.call(dm.embed(x), allowed=pattern, position_ids=positions)[0]
            for x, pattern in ((ids, causal), (changed, causal), (ids, full), (changed, full))
        )
    assert torch.allclose(a[:, :BLOCK], b[:, :BLOCK], atol=1e-10)
    assert not torch.allclose(full_a[:, :BLOCK], full_b[:, :BLOCK])


@pytest.mark.parametrize("kind", list(REMOTE))
def test_remote_code_needs_trust(checkpoints, kind):
    with pytest.raises(ValueError, match="trust_remote_code"):
        rcd.load(checkpoints[kind])


def test_bidirectional_families_refuse_block_causal(checkpoints):
    with pytest.raises(ValueError, match="bidirectional"):
        load(checkpoints, "dream", attention="block-causal", block_length=BLOCK)


def test_overrides_and_their_errors(checkpoints):
    model, tok = load(checkpoints, "qwen2", mask_token_id=10, attention="block-causal", block_length=8)
    assert (model.config.mask_token_id, model.config.attention, model.config.block_length) == (
        10,
        "block-causal",
        8,
    )
    with pytest.raises(ValueError, match="outside the embedding table"):
        load(checkpoints, "qwen2", mask_token_id=10_000)
    with pytest.raises(ValueError, match="pad token"):
        load(checkpoints, "qwen2", mask_token_id=tok.pad_token_id)
    with pytest.raises(ValueError, match="block size"):
        load(checkpoints, "qwen2", attention="block-causal")
    with pytest.raises(ValueError, match="unknown preset"):
        load(checkpoints, "qwen2", preset="gpt")
    with pytest.raises(FileNotFoundError):
        rcd.load(checkpoints["qwen2"] / "missing")


def test_llada_gets_a_chat_template_and_stop_ids(checkpoints):
    model, tok = load(checkpoints, "llada")
    text = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text.startswith("<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>")
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert model.config.rcd_stop_token_ids == []  # LLaDA's ids lie outside the tiny vocabulary
    model.config.rcd_stop_token_ids = [5]
    assert stop_ids(tok, model.config) == [tok.eos_token_id, 5]


def test_sdar_without_block_size_is_refused(tmp_path):
    unsized = save_checkpoint("sdar", tmp_path / "sdar", block_size=None)
    with pytest.raises(ValueError, match="block size"):
        rcd.load(unsized, trust_remote_code=True)
    assert rcd.load(unsized, preset="sdar-b4", trust_remote_code=True)[0].config.block_length == 4


def test_sdar_block_size_from_config_or_name():
    class Config:
        model_type = "sdar"

    assert detect_preset(Config(), "JetLM/SDAR-8B-Chat-b32").block_length == 32
    assert detect_preset(Config(), "SDAR-4B-Chat").block_length is None
    Config.block_size = 64
    assert detect_preset(Config(), "x-b32").block_length == 64
    assert detect_preset(type("C", (), {"model_type": "llama"})()) is None
    assert PRESETS["sdar-b16"].block_length == 16 and PRESETS["sdar-b16"].attention == "block-causal"


@pytest.mark.skipif(TRANSFORMERS_MAJOR < 5, reason="transformers 4 loads these classes as they are")
def test_transformers4_era_remote_classes_are_adapted(checkpoints):
    """LLaDA-style code skips post_init and takes no tie_weights arguments: plain loading fails."""
    from rcd.models.compat import adapt_remote_class
    from standins.modeling_llada import LLaDAModelLM

    class Old(LLaDAModelLM):
        pass

    with pytest.raises(AttributeError, match="all_tied_weights_keys"):
        Old.from_pretrained(checkpoints["llada"])
    model = adapt_remote_class(Old).from_pretrained(checkpoints["llada"])
    assert adapt_remote_class(Old) is Old and isinstance(model.all_tied_weights_keys, dict)
