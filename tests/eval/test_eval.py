"""Benchmarks, `rcd score`, and the resumable `rcd eval` runner."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import rcd
from rcd.cli import main
from rcd.eval import EvalConfig, evaluate, get_benchmark, load_problems, rescore
from rcd.eval.predictions import RowWriter, cut_torn_tail, fold_parts, read_rows
from rcd.eval.runner import prompt_text

GSM8K_ROWS = 1319


@pytest.fixture(scope="module")
def short_gsm8k(tmp_path_factory):
    """GSM8K-format problems with short questions: fast to decode with a tiny model."""
    path = tmp_path_factory.mktemp("data") / "short.jsonl"
    return write_jsonl(
        path, [{"question": f"{a}+{a}=?", "answer": f"{a}+{a}={2 * a}\n#### {2 * a}"} for a in range(40)]
    )


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny")
    tok = rcd.char_tokenizer()
    model = rcd.tiny_model(len(tok), mask_token_id=tok.mask_token_id, eos_token_id=tok.eos_token_id, seed=0)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_packaged_gsm8k_loads():
    problems = load_problems(get_benchmark("gsm8k"))
    assert len(problems) == GSM8K_ROWS and problems[0].gold == "18" and problems[2].gold == "70000"
    assert all(re.fullmatch(r"-?\d+(\.\d+)?", p.gold) for p in problems)


def test_gold_solutions_score_100_and_corrupted_finals_0(tmp_path):
    data = get_benchmark("gsm8k").default_data()
    lines = data.read_text().splitlines()
    gold = [{"index": i, "completion": json.loads(line)["answer"]} for i, line in enumerate(lines)]

    def corrupt(text):
        head, final = text.rsplit("####", 1)
        return f"{head}#### {int(final.replace(',', '')) + 1}"

    wrong = [{"index": r["index"], "completion": corrupt(r["completion"])} for r in gold]
    for rows, expected in ((gold, 1.0), (wrong, 0.0)):
        preds = write_jsonl(tmp_path / "pred.jsonl", rows)
        assert (
            main(
                [
                    "score",
                    "--task",
                    "gsm8k",
                    "--data",
                    str(data),
                    "--predictions",
                    str(preds),
                    "--out",
                    str(tmp_path / "summary.json"),
                ]
            )
            == 0
        )
        summary = json.loads((tmp_path / "summary.json").read_text())
        assert summary["n"] == GSM8K_ROWS and summary["accuracy"] == expected


def test_user_benchmark_files(tmp_path):
    data = write_jsonl(
        tmp_path / "math.jsonl",
        [
            {"problem": "What is $1/2 + 1/4$?", "answer": "\\frac{3}{4}"},
            {"Problem": "Compute $2^5$.", "Answer": 32},
            {"problem": "Simplify $6/8$.", "solution": "Divide by 2: $\\boxed{\\frac{3}{4}}$."},
        ],
    )
    for task in ("math500", "minerva", "aime24", "aime25"):
        assert [p.gold for p in load_problems(get_benchmark(task), data)] == [
            "\\frac{3}{4}",
            "32",
            "\\frac{3}{4}",
        ]
    preds = write_jsonl(
        tmp_path / "p.jsonl",
        [
            {"index": 0, "completion": "\\boxed{0.75}"},
            {"index": 1, "completion": "\\boxed{31}"},
            {"index": 2, "completion": "\\boxed{\\dfrac34}"},
            {"index": 2, "sample": 1, "completion": "no box"},
        ],
    )
    summary, rows = rescore("math500", preds, data)
    assert summary["n"] == 4 and summary["n_problems"] == 3 and summary["accuracy"] == 0.5
    assert [r["correct"] for r in rows] == [True, False, True, False]
    with pytest.raises(ValueError, match="not a row of the data file"):
        rescore("math500", write_jsonl(tmp_path / "bad.jsonl", [{"index": 3, "completion": "x"}]), data)
    with pytest.raises(ValueError, match="needs one of the keys"):
        load_problems(
            get_benchmark("math500"), write_jsonl(tmp_path / "nokey.jsonl", [{"text": "x", "answer": 1}])
        )
    with pytest.raises(ValueError, match="no packaged data"):
        load_problems(get_benchmark("aime24"))


def test_prompt_formats():
    tok = rcd.char_tokenizer()
    gsm8k, minerva = get_benchmark("gsm8k"), get_benchmark("minerva")
    text = prompt_text(gsm8k, tok, "What is 2+2?", 5, chat=False)
    assert (
        text.count("Question: ") == 6 and text.count("#### ") == 5 and text.endswith("What is 2+2?\nAnswer:")
    )
    assert prompt_text(minerva, tok, "Find $x$.", 4, chat=False).endswith("Problem:\nFind $x$.\n\nSolution:")
    assert minerva.plain_prompt("q", 4).count("I hope it is correct.") == 4
    messages = gsm8k.chat_messages("What is 2+2?", 2)
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]
    assert "\\boxed{}" in get_benchmark("aime25").chat_messages("q", 0)[0]["content"]
    with pytest.raises(ValueError, match="chat template"):
        prompt_text(gsm8k, tok, "q", 0, chat=True)
    with pytest.raises(ValueError, match="exemplars"):
        gsm8k.plain_prompt("q", 6)


def test_predictions_file_survives_a_torn_last_line(tmp_path):
    path = tmp_path / "p.jsonl"
    with RowWriter(path) as w:
        w.write({"index": 0})
        w.write({"index": 1})
    with path.open("ab") as f:
        f.write(b'{"index": 2, "compl')
    assert read_rows(path) == [{"index": 0}, {"index": 1}]
    cut_torn_tail(path)
    with RowWriter(path) as w:
        w.write({"index": 2})
    assert read_rows(path) == [{"index": 0}, {"index": 1}, {"index": 2}]
    path.write_text('{"index": 0}\nnot json\n{"index": 1}\n')
    with pytest.raises(ValueError, match=":2: not a JSON row"):
        read_rows(path)


def test_part_files_fold_into_the_predictions_once(tmp_path):
    """A fold cut short (rows already moved, parts still there) repeats without duplicates."""
    path, parts = tmp_path / "p.jsonl", tmp_path / "parts"
    parts.mkdir()
    row = lambda i: {"index": i, "sample": 0}  # noqa: E731
    for rank, indices in ((0, [0, 1, 2]), (1, [3, 4])):
        with RowWriter(parts / f"rank{rank}.jsonl") as w:
            for i in indices:
                w.write(row(i))
    with (parts / "rank1.jsonl").open("ab") as f:
        f.write(b'{"index": 5, "sa')  # torn: the rank was killed mid-row
    with RowWriter(path) as w:
        w.write(row(0))  # the interrupted fold had moved this row
    fold_parts(path, parts)
    assert read_rows(path) == [row(i) for i in range(5)] and not parts.exists()
    fold_parts(path, parts)  # nothing left to fold
    assert len(read_rows(path)) == 5


DECODE = ["--gen-length", "16", "--block-length", "8", "--threshold", "0.5"]


def eval_args(model, data, out, *extra):
    return [
        "eval",
        "--model",
        str(model),
        "--data",
        str(data),
        "--out",
        str(out),
        "--task",
        "gsm8k",
        "--shots",
        "0",
        *extra,
    ]


@pytest.mark.slow
def test_eval_writes_rows_and_a_reproducible_summary(tiny_checkpoint, short_gsm8k, tmp_path):
    out = tmp_path / "run"
    assert (
        main(
            eval_args(
                tiny_checkpoint,
                short_gsm8k,
                out,
                "--limit",
                "3",
                "--batch-size",
                "2",
                "--rcd",
                "--res-temperature",
                "0.92",
                *DECODE,
            )
        )
        == 0
    )
    rows = read_rows(out / "predictions.jsonl")
    assert sorted(r["index"] for r in rows) == [0, 1, 2]
    row = rows[0]
    assert {"prompt", "completion", "answer", "correct", "nfe", "tokens", "seconds"} <= set(row)
    assert row["prompt"] == "Question: 0+0=?\nAnswer:" and rows[2]["gold"] == "4"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 3 and summary["complete"] and summary["batch_size"] == 2
    assert (
        summary["options"]["residual"]["temperature"] == 0.92
        and summary["options"]["decode"]["threshold"] == 0.5
    )
    assert summary["tokens_per_step"] > 0 and summary["device"].startswith("cpu")
    assert summary["command"][:2] == ["rcd", "eval"]  # the run's own command line
    # the summary holds every option: rebuilding the configs from it gives the same run
    options = summary["options"]
    again = evaluate(
        summary["inputs"]["model"]["path"],
        tmp_path / "again",
        config=EvalConfig(**options["eval"]),
        decode=rcd.DecodeConfig(**options["decode"]),
        residual=rcd.ResidualConfig(**options["residual"]),
    )
    assert [
        r["completion"]
        for r in sorted(read_rows(tmp_path / "again" / "predictions.jsonl"), key=lambda r: r["index"])
    ] == [r["completion"] for r in sorted(rows, key=lambda r: r["index"])]
    assert again["accuracy"] == summary["accuracy"]
    assert (
        main(eval_args(tiny_checkpoint, short_gsm8k, out, "--limit", "3", *DECODE)) == 2
    )  # SeqD into RCD's run


@pytest.mark.slow
def test_eval_resumes_after_sigkill_without_losing_rows(tiny_checkpoint, short_gsm8k, tmp_path):
    out = tmp_path / "run"
    n = 16
    args = eval_args(
        tiny_checkpoint,
        short_gsm8k,
        out,
        "--limit",
        str(n),
        "--gen-length",
        "64",
        "--steps",
        "64",
        "--block-length",
        "8",
    )
    cmd = [sys.executable, "-m", "rcd", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # tiny model: threads only contend
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    predictions = out / "predictions.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if predictions.exists() and predictions.read_bytes().count(b"\n") >= 3:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = read_rows(predictions)
    assert 3 <= len(before) < n
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = read_rows(predictions)
    assert after[: len(before)] == before  # no finished row lost or rewritten
    assert sorted(r["index"] for r in after) == list(range(n))  # each problem exactly once
    assert json.loads((out / "summary.json").read_text())["complete"]


@pytest.mark.slow
def test_eval_splits_work_across_processes(tiny_checkpoint, short_gsm8k, tmp_path):
    """Two processes (torchrun; Accelerate's PartialState splits and gathers), one row per problem."""
    out = tmp_path / "run"
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [
        str(torchrun),
        "--nproc_per_node",
        "2",
        "-m",
        "rcd",
        *eval_args(tiny_checkpoint, short_gsm8k, out, "--limit", "5", "--device", "cpu", *DECODE),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300
    )
    rows = read_rows(out / "predictions.jsonl")
    assert sorted(r["index"] for r in rows) == [0, 1, 2, 3, 4]
    assert not (out / "predictions.parts").exists()
    assert {r["rank"] for r in rows} == {0, 1}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_processes"] == 2 and summary["this_run"]["rows_written"] == 5 and summary["complete"]
