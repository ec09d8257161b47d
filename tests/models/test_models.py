import torch
from transformers import AutoModel, AutoTokenizer

import rcd
from conftest import make_model, random_prompts


def test_save_load_round_trip(tmp_path):
    model = make_model("block-causal", seed=4)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    for loaded in (rcd.RcdTinyForDiffusionLM.from_pretrained(tmp_path), AutoModel.from_pretrained(tmp_path)):
        assert isinstance(loaded, rcd.RcdTinyForDiffusionLM)
        assert loaded.config.attention == "block-causal" and loaded.config.block_length == 4
        kw = dict(gen_length=8, block_length=4, threshold=0.3, residual=rcd.ResidualConfig())
        a = rcd.generate(model, random_prompts(2, 4), **kw)
        b = rcd.generate(loaded, random_prompts(2, 4), **kw)
        assert torch.equal(a.sequences, b.sequences)


def test_tiny_model_is_seeded_and_bidirectional_by_default():
    a, b = make_model(seed=2), make_model(seed=2)
    x = random_prompts(1, 6)
    assert torch.equal(a(x).logits, b(x).logits)
    # bidirectional: changing the last token changes the first position's logits
    y = x.clone()
    y[0, -1] = (y[0, -1] + 1) % 40 + 4
    assert not torch.allclose(a(x).logits[0, 0], a(y).logits[0, 0])


def test_left_padding_with_2d_mask_matches_unpadded():
    model = make_model(seed=5)
    x = random_prompts(1, 5)
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), x], 1)
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1]])
    assert torch.allclose(model(x).logits, model(padded, attention_mask=mask).logits[:, 3:], atol=1e-5)


def test_char_tokenizer_round_trip(tmp_path):
    tok = rcd.char_tokenizer()
    ids = tok("12+3=15")["input_ids"]
    assert len(ids) == 7 and tok.decode(ids) == "12+3=15"
    assert (tok.pad_token_id, tok.eos_token_id, tok.mask_token_id) == (0, 1, 3)
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again("12+3=15")["input_ids"] == ids and again.mask_token_id == 3
    assert tok.decode(ids + [tok.eos_token_id], skip_special_tokens=True) == "12+3=15"
