import pytest

from rcd.data import read_jsonl, write_jsonl

ROWS = [{"prompt": "1+1=", "response": "2", "answer": "2"}, {"prompt": "é|\n", "response": "", "answer": ""}]


def test_round_trip_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "sub" / "data.jsonl"
    write_jsonl(path, ROWS)
    assert read_jsonl(path) == ROWS
    write_jsonl(path, ROWS[:1])
    assert read_jsonl(path) == ROWS[:1]
    assert [p.name for p in path.parent.iterdir()] == ["data.jsonl"]


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "data.jsonl"
    write_jsonl(path, ROWS)

    def broken():
        yield ROWS[0]
        raise RuntimeError("generator failed")

    with pytest.raises(RuntimeError):
        write_jsonl(path, broken())
    assert read_jsonl(path) == ROWS
    assert [p.name for p in tmp_path.iterdir()] == ["data.jsonl"]


@pytest.mark.parametrize(
    ("text", "message"), [("{not json}\n", "invalid JSON"), ("[1, 2]\n", "expected a JSON object")]
)
def test_read_errors_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n\n' + text, encoding="utf-8")
    with pytest.raises(ValueError, match=rf"bad\.jsonl:3: {message}"):
        read_jsonl(path)
