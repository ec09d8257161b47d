import pytest
from transformers import AutoTokenizer

import rcd

WORDS = ["sort", ":", "3", "12", "100"]


def test_word_tokenizer_ids_and_round_trip(tmp_path):
    tokenizer = rcd.word_tokenizer(WORDS)
    char = rcd.char_tokenizer()
    for name in ("pad", "eos", "unk", "mask"):
        assert getattr(tokenizer, f"{name}_token_id") == getattr(char, f"{name}_token_id")
    ids = tokenizer("sort 12 3 100 :", add_special_tokens=False).input_ids
    assert ids == [4, 7, 6, 8, 5]
    assert tokenizer.decode([*ids, tokenizer.eos_token_id], skip_special_tokens=True) == "sort 12 3 100 :"
    assert tokenizer("7 3", add_special_tokens=False).input_ids == [tokenizer.unk_token_id, 6]
    tokenizer.save_pretrained(tmp_path)
    assert AutoTokenizer.from_pretrained(tmp_path).decode(ids) == "sort 12 3 100 :"


def test_word_tokenizer_masks_and_batches():
    tokenizer = rcd.word_tokenizer(WORDS)
    ids, mask = rcd.encode_prompts(tokenizer, ["sort 3 :", "sort 12 3 :"])
    assert ids.tolist() == [[0, 4, 6, 5], [4, 7, 6, 5]] and mask[0, 0] == 0
    assert tokenizer.decode([tokenizer.mask_token_id, 6]) == "<mask> 3"


@pytest.mark.parametrize("bad", ["two words", "", "tab\t"])
def test_word_tokenizer_refuses_words_with_whitespace(bad):
    with pytest.raises(ValueError, match="whitespace"):
        rcd.word_tokenizer(["ok", bad])
