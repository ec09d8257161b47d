import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

import rcd
import rcd.tokenizer
from rcd.tokenizer import DEFAULT_ALPHABET

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


# --- round trips (hypothesis): every text over the alphabet, runs of whitespace included ---

CHAR = rcd.char_tokenizer()
WHITESPACE_RUNS = st.text(alphabet=" \n\t", min_size=1, max_size=6)
CHAR_TEXTS = st.lists(st.one_of(st.text(alphabet=DEFAULT_ALPHABET, max_size=8), WHITESPACE_RUNS))
OLD_PATTERN = "<pad>|<eos>|<unk>|<mask>|."


@settings(max_examples=200, deadline=None)
@given(CHAR_TEXTS.map("".join))
def test_char_tokenizer_round_trips_every_text_over_its_alphabet(text):
    ids = CHAR(text, add_special_tokens=False).input_ids
    assert CHAR.unk_token_id not in ids
    assert CHAR.decode(ids) == text
    assert rcd.tokenizer.check_representable(CHAR, text, "text") == ids


@pytest.mark.parametrize("text", ["\n\n", "a\n\nb", "\n\n\n", " \n\n\t\t  ", "Q: 1\n\nA: 2\n\n\n"])
def test_char_tokenizer_reads_runs_of_newlines_one_id_each(text):
    ids = CHAR(text, add_special_tokens=False).input_ids
    assert len(ids) == len(text) and CHAR.decode(ids) == text


def test_char_tokenizer_saved_before_the_newline_fix_loads_repaired(tmp_path):
    """A tokenizer.json written by an older rcd (pattern `...|.`) keeps its ids and now reads blank lines."""
    CHAR.save_pretrained(tmp_path)
    saved = tmp_path / "tokenizer.json"
    content = json.loads(saved.read_text())
    assert content["pre_tokenizer"]["pattern"] == {"Regex": rcd.tokenizer.CHAR_SPLIT_PATTERN}
    content["pre_tokenizer"]["pattern"] = {"Regex": OLD_PATTERN}
    saved.write_text(json.dumps(content))
    old = AutoTokenizer.from_pretrained(tmp_path)
    assert old("a\n\nb", add_special_tokens=False).input_ids[1] == CHAR.unk_token_id  # the bug
    loaded = rcd.tokenizer.tokenizer_from_pretrained(tmp_path)
    assert loaded.get_vocab() == CHAR.get_vocab()
    ids = loaded("a\n\nb", add_special_tokens=False).input_ids
    assert ids == CHAR("a\n\nb", add_special_tokens=False).input_ids


def test_loading_a_model_dir_repairs_its_old_char_tokenizer(tmp_path):
    from rcd.models.loading import load_tokenizer

    model = rcd.tiny_model(vocab_size=len(CHAR), hidden_size=16, num_hidden_layers=1, num_attention_heads=2)
    model.save_pretrained(tmp_path)
    CHAR.save_pretrained(tmp_path)
    saved = tmp_path / "tokenizer.json"
    old = saved.read_text().replace(json.dumps(rcd.tokenizer.CHAR_SPLIT_PATTERN)[1:-1], OLD_PATTERN)
    assert f'"{OLD_PATTERN}"' in old
    saved.write_text(old)
    tokenizer, _ = load_tokenizer(tmp_path)
    assert tokenizer("\n\n", add_special_tokens=False).input_ids == [CHAR.convert_tokens_to_ids("\n")] * 2


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=10),
    st.lists(WHITESPACE_RUNS, min_size=10, max_size=10),
)
def test_word_tokenizer_round_trips_its_words_and_separators(words, separators):
    """Single-spaced words come back exactly; any whitespace run between words reads as the one separator."""
    tokenizer = rcd.word_tokenizer(WORDS)
    single = " ".join(words)
    ids = tokenizer(single, add_special_tokens=False).input_ids
    assert tokenizer.unk_token_id not in ids and len(ids) == len(words)
    assert tokenizer.decode(ids) == single
    spaced = "".join(word + separator for word, separator in zip(words, separators))
    assert tokenizer(spaced, add_special_tokens=False).input_ids == ids
