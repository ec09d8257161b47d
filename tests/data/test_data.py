import json

import pytest

import rcd
from rcd.data import DataError, SftCollator, load_sft, read_jsonl, write_jsonl


def write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def tok():
    return rcd.char_tokenizer()


def test_bad_lines_name_file_and_line(tmp_path, tok):
    bad = write(tmp_path / "a.jsonl", [json.dumps({"prompt": "1+1=", "response": "2"}), "{oops"])
    with pytest.raises(DataError, match=r"a\.jsonl:2: invalid JSON"):
        load_sft(bad, tok, max_prompt_length=9, max_response_length=9)
    missing = write(tmp_path / "b.jsonl", [json.dumps({"prompt": "1+1="})])
    with pytest.raises(DataError, match=r"b\.jsonl:1: needs string fields"):
        load_sft(missing, tok, max_prompt_length=9, max_response_length=9)
    chat = write(tmp_path / "c.jsonl", [json.dumps({"messages": [{"role": "user", "content": "hi"}]})])
    with pytest.raises(DataError, match=r"c\.jsonl:1: the last message must have role 'assistant'"):
        load_sft(chat, tok, max_prompt_length=99, max_response_length=9)


def test_chat_rows_without_template_and_overflow_counts(tmp_path, tok):
    rows = [
        json.dumps({"messages": [{"role": "user", "content": "2+2"}, {"role": "assistant", "content": "4"}]}),
        json.dumps({"prompt": "1" * 30, "response": "2"}),
        json.dumps({"prompt": "3+3=", "response": "6" * 30}),
    ]
    path = write(tmp_path / "d.jsonl", rows)
    kept, stats = load_sft(path, tok, max_prompt_length=24, max_response_length=10)
    assert (stats.kept, stats.dropped, stats.truncated) == (1, 2, 0)
    assert tok.decode(kept[0].prompt_ids) == "user: 2+2\nassistant: "
    assert kept[0].response_ids == (*tok("4", add_special_tokens=False)["input_ids"], tok.eos_token_id)
    cut, stats = load_sft(path, tok, max_prompt_length=24, max_response_length=10, overflow="truncate")
    assert (stats.kept, stats.dropped, stats.truncated) == (3, 0, 2)
    assert len(cut[1].prompt_ids) == 24 and len(cut[2].response_ids) == 10


def test_collator_layout(tok):
    a = rcd.data.SftExample(0, (5, 6, 7), (8, rcd.char_tokenizer().eos_token_id))
    b = rcd.data.SftExample(1, (9,), (10, 11, 12, 1))
    batch = SftCollator(tok.pad_token_id, tok.eos_token_id, block_length=3)([a, b])
    assert batch["prompt_length"].item() == 3
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 1, 1, 1, 1, 1], [0, 0, 9, 10, 11, 12, 1, 1, 1]]
    assert batch["attention_mask"][1].tolist() == [False, False] + [True] * 7
    assert batch["index"].tolist() == [0, 1]
    fixed = SftCollator(tok.pad_token_id, tok.eos_token_id, response_length=7)([a, b])
    assert fixed["input_ids"].tolist() == [[5, 6, 7, 8, 1, 1, 1, 1, 1, 1], [0, 0, 9, 10, 11, 12, 1, 1, 1, 1]]


def test_jsonl_round_trip_is_atomic(tmp_path):
    rows = [{"a": 1}, {"b": "x"}]
    write_jsonl(tmp_path / "x.jsonl", rows)
    assert read_jsonl(tmp_path / "x.jsonl") == rows
    assert [p.name for p in tmp_path.iterdir()] == ["x.jsonl"]
