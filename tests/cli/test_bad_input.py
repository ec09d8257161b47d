"""Bad input gets one clear line (exit 2: usage, 1: failure) before any model loads, and
changes nothing on disk; run directories never mix two runs; a second run into a busy
`--out` is refused."""

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import rcd
from rcd.cli import main
from rcd.eval import get_benchmark, load_problems
from rcd.eval.runner import prompt_text, prompts_fit
from rcd.rundir import LOCK_FILE
from rcd.tokenizer import DEFAULT_ALPHABET, check_representable
from rcd.train import TrainConfig, train


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def snapshot(root: Path) -> dict:
    """Every file under root with its content hash: 'nothing changed' compares two of these."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def save_tiny(path, seed=0, tokenizer=None, **kw):
    tok = tokenizer or rcd.char_tokenizer()
    model = rcd.tiny_model(
        len(tok),
        mask_token_id=tok.mask_token_id,
        eos_token_id=tok.eos_token_id,
        seed=seed,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        **kw,
    )
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Inputs shared by the cases: tiny models, a 'poisoned' one, data files."""
    base = tmp_path_factory.mktemp("inputs")
    save_tiny(base / "model")
    save_tiny(base / "short-context", max_position_embeddings=64)
    # same vocabulary size, two tokens swapped: a reference that reads the model's ids wrongly
    chars = list(DEFAULT_ALPHABET)
    chars[0], chars[1] = chars[1], chars[0]
    save_tiny(base / "permuted", seed=1, tokenizer=rcd.char_tokenizer("".join(chars)))
    # a model whose weights cannot load: an error that comes from it proves the model was loaded
    shutil.copytree(base / "model", base / "poisoned")
    (base / "poisoned" / "model.safetensors").write_bytes(b"not weights")
    shutil.copytree(base / "short-context", base / "short-poisoned")
    (base / "short-poisoned" / "model.safetensors").write_bytes(b"not weights")
    write_jsonl(base / "train.jsonl", [{"prompt": f"{a}+{a}=", "response": str(2 * a)} for a in range(32)])
    write_jsonl(base / "gsm.jsonl", [{"question": f"{a}+{a}=?", "answer": f"#### {2 * a}"} for a in range(6)])
    write_jsonl(base / "sweep.jsonl", [{"prompt": f"{a}+{a}=", "answer": str(2 * a)} for a in range(4)])
    return base


def run_cli(capsys, *argv):
    """(exit code, stderr) of `rcd ...` in this process."""
    capsys.readouterr()  # what came before is not this command's
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def assert_error(code, err, expected_code, *phrases, before_model=True):
    lines = [line for line in err.strip().splitlines() if line.startswith("rcd: error:")]
    assert code == expected_code, err
    assert len(lines) == 1 and "Traceback" not in err, err
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    if before_model:  # nothing but the error line: no model was loaded, no progress shown
        assert err.strip() == lines[0], err


def eval_cmd(model, data, out, *extra):
    return [
        str(a)
        for a in (
            "eval",
            "--model",
            model,
            "--data",
            data,
            "--out",
            out,
            "--task",
            "gsm8k",
            "--shots",
            "0",
            "--gen-length",
            "8",
            "--block-length",
            "8",
            *extra,
        )
    ]


def train_cmd(data, out, *extra):
    return [
        "train",
        "--model",
        "tiny-xs",
        "--data",
        data,
        "--out",
        out,
        "--batch-size",
        "8",
        "--no-progress",
        *extra,
    ]


# ----------------------------------------------------------------- training options
@pytest.mark.parametrize("steps", ["0", "-5"])
def test_max_steps_must_be_positive(root, tmp_path, capsys, steps):
    code, err = run_cli(capsys, *train_cmd(root / "train.jsonl", tmp_path / "out", "--max-steps", steps))
    assert_error(code, err, 2, f"--max-steps must be >= 1 (or left out for --epochs), not {steps}")
    assert not (tmp_path / "out").exists()


def test_wrong_typed_field_is_named_as_such(root, tmp_path, capsys):
    data = write_jsonl(
        tmp_path / "d.jsonl", [{"prompt": "1+1=", "response": "2"}, {"prompt": 12, "response": "2"}]
    )
    before = snapshot(tmp_path)
    code, err = run_cli(capsys, *train_cmd(data, tmp_path / "out", "--max-steps", "1"))
    assert_error(code, err, 1, "d.jsonl:2: field 'prompt' must be a string, got int 12")
    assert snapshot(tmp_path) == before  # not even --out was created... apart from its lock, removed
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_non_utf8_input_names_file_and_line(root, tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_bytes(b'{"prompt": "1+1=", "response": "2"}\n{"prompt": "caf\xe9=", "response": "2"}\n')
    code, err = run_cli(capsys, *train_cmd(data, tmp_path / "out", "--max-steps", "1"))
    assert_error(code, err, 1, "d.jsonl:2: not UTF-8 text (byte 0xe9 at column 16)")
    gsm = tmp_path / "g.jsonl"
    gsm.write_bytes(b'{"question": "1+1?", "answer": "#### 2"}\n{"question": "\xff", "answer": "#### 1"}\n')
    code, err = run_cli(capsys, *eval_cmd(root / "model", gsm, tmp_path / "eval"))
    assert_error(code, err, 1, "g.jsonl:2: not UTF-8 text (byte 0xff")


def test_character_outside_the_tokenizer_is_named_with_its_position(root, tmp_path, capsys):
    data = write_jsonl(
        tmp_path / "d.jsonl", [{"prompt": "1+1=", "response": "2"}, {"prompt": "2→3=", "response": "5"}]
    )
    code, err = run_cli(capsys, *train_cmd(data, tmp_path / "out", "--max-steps", "1"))
    assert_error(
        code, err, 1, "d.jsonl:2: prompt: character '→' at position 1 is not in the tokenizer's vocabulary"
    )
    # the default character tokenizer has printable ASCII (GSM8K's uppercase letters); beyond, it refuses
    question = load_problems(get_benchmark("gsm8k"))[0].question
    check_representable(rcd.char_tokenizer(), question.replace("’", "'"), "gsm8k 0")
    with pytest.raises(ValueError, match="gsm8k 0: character '’' at position 5"):
        check_representable(rcd.char_tokenizer(), question, "gsm8k 0")


def test_gsm8k_few_shot_prompt_is_representable_by_the_char_tokenizer():
    """The 5-shot prompt separates exemplars with blank lines, which the char tokenizer once read as <unk>."""
    task = get_benchmark("gsm8k")
    ascii_problems = [p for p in load_problems(task)[:40] if set(p.question) <= set(DEFAULT_ALPHABET)]
    assert "\n\n" in prompt_text(task, rcd.char_tokenizer(), ascii_problems[0].question, 5, chat=False)
    prompts_fit(task, rcd.char_tokenizer(), None, ascii_problems, 5, chat=False, gen_length=64)


def test_typo_in_a_local_path_says_so_without_the_hub(root, tmp_path, capsys):
    typo = tmp_path / "runs" / "rf"
    (tmp_path / "runs").mkdir()
    for cmd in (
        eval_cmd(typo, root / "gsm.jsonl", tmp_path / "out"),
        ["generate", "--model", typo, "--prompt", "1+1="],
        train_cmd(root / "train.jsonl", tmp_path / "out", "--stage", "seqd", "--model", "./rf"),
    ):
        code, err = run_cli(capsys, *cmd)
        assert_error(
            code, err, 1, "no such file or directory" if cmd[0] != "generate" else "no model directory"
        )
        assert "huggingface" not in err.lower()
    # relative to the working directory: 'runs/rf' where runs/ exists is a path, not a hub id
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        code, err = run_cli(capsys, "generate", "--model", "runs/rf", "--prompt", "1+1=")
    finally:
        os.chdir(cwd)
    assert_error(code, err, 1, "no model directory at runs/rf")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_preset_that_does_not_fit_the_checkpoint(root, capsys):
    code, err = run_cli(
        capsys, "generate", "--model", root / "model", "--preset", "llada", "--prompt", "1+1="
    )
    assert_error(code, err, 1, "--preset llada does not fit", "rcd-tiny model", before_model=False)
    assert "is a llada checkpoint" not in err


# ----------------------------------------------------------------- evaluation
def test_empty_eval_file(root, tmp_path, capsys):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    code, err = run_cli(capsys, *eval_cmd(root / "model", empty, tmp_path / "out"))
    assert_error(code, err, 1, "empty.jsonl: no problems (the file is empty)")
    assert not (tmp_path / "out").exists()


def test_eval_checks_options_before_loading_the_model(root, tmp_path, capsys):
    cmd = eval_cmd(root / "poisoned", root / "gsm.jsonl", tmp_path / "out")
    code, err = run_cli(capsys, *cmd[:-4], "--gen-length", "10", "--block-length", "4")
    assert_error(code, err, 2, "gen_length (10) must be a multiple of block_length (4)")
    code, err = run_cli(capsys, *cmd, "--shots", "9")
    assert_error(code, err, 2, "--shots 9: gsm8k has 5 exemplars")
    assert not (tmp_path / "out").exists()


def test_prompt_longer_than_the_context(root, tmp_path, capsys):
    long_question = write_jsonl(
        tmp_path / "long.jsonl", [{"question": "1+" * 40 + "1=?", "answer": "#### 41"}]
    )
    code, err = run_cli(capsys, *eval_cmd(root / "short-poisoned", long_question, tmp_path / "out"))
    assert_error(code, err, 1, "problem 0: its prompt (", "exceed the model's context of 64 positions")
    assert (
        not (tmp_path / "out" / "options.json").exists()
        and not (tmp_path / "out" / "predictions.jsonl").exists()
    )
    code, err = run_cli(
        capsys,
        "generate",
        "--model",
        root / "short-context",
        "--prompt",
        "1+" * 40,
        "--gen-length",
        "8",
        "--block-length",
        "8",
    )
    assert_error(
        code,
        err,
        1,
        "a prompt of 80 tokens + gen_length 8 exceed the model's context of 64 positions",
        before_model=False,
    )


def test_reference_with_a_permuted_vocabulary_is_refused_at_decode_time(root, tmp_path, capsys):
    rcd_flags = ["--rcd", "--res-init", "reference", "--reference", root / "permuted"]
    code, err = run_cli(capsys, "generate", "--model", root / "poisoned", "--prompt", "1+1=", *rcd_flags)
    assert_error(code, err, 1, "uses a different tokenizer than the model (same size, other tokens or ids)")
    code, err = run_cli(
        capsys, *eval_cmd(root / "poisoned", root / "gsm.jsonl", tmp_path / "out", *rcd_flags)
    )
    assert_error(code, err, 1, "uses a different tokenizer than the model")
    assert not (tmp_path / "out" / "options.json").exists()


def test_generate_with_temperature_takes_a_seed(root, capsys):
    def sample(seed):
        assert (
            main(
                [
                    "generate",
                    "--model",
                    str(root / "model"),
                    "--prompt",
                    "1+1=",
                    "--gen-length",
                    "16",
                    "--block-length",
                    "16",
                    "--temperature",
                    "1",
                    "--seed",
                    str(seed),
                ]
            )
            == 0
        )
        return capsys.readouterr().out.splitlines()[0]

    assert sample(3) == sample(3)
    assert len({sample(s) for s in (3, 4, 5)}) > 1  # the seed is the noise's


# ----------------------------------------------------------------- score and sweep
def test_score_missing_predictions_file(root, tmp_path, capsys):
    code, err = run_cli(
        capsys,
        "score",
        "--task",
        "gsm8k",
        "--data",
        root / "gsm.jsonl",
        "--predictions",
        tmp_path / "missing.jsonl",
        "--out",
        tmp_path / "s.json",
    )
    assert_error(code, err, 1, "missing.jsonl: no such predictions file")
    assert not (tmp_path / "s.json").exists()


def test_score_duplicate_rows(root, tmp_path, capsys):
    preds = write_jsonl(
        tmp_path / "p.jsonl",
        [
            {"index": 0, "completion": "#### 0"},
            {"index": 1, "completion": "x"},
            {"index": 0, "completion": "#### 0"},
        ],
    )
    code, err = run_cli(
        capsys,
        "score",
        "--task",
        "gsm8k",
        "--data",
        root / "gsm.jsonl",
        "--predictions",
        preds,
        "--out",
        tmp_path / "s.json",
    )
    assert_error(code, err, 1, "p.jsonl:3: problem 0 sample 0 was already scored at line 1")
    assert not (tmp_path / "s.json").exists()


def sweep_cmd(root, out, *extra):
    return ["sweep", "--model", root / "poisoned", "--data", root / "sweep.jsonl", "--out", out, *extra]


def test_sweep_setting_that_does_not_divide(root, tmp_path, capsys):
    code, err = run_cli(
        capsys, *sweep_cmd(root, tmp_path / "out", "--gen-length", "8", "--tokens-per-step", "1,3")
    )
    assert_error(code, err, 2, "tokens per step [3] must divide the block length 8")
    code, err = run_cli(
        capsys, *sweep_cmd(root, tmp_path / "out", "--gen-length", "8", "--thresholds", "1.5")
    )
    assert_error(code, err, 2, "thresholds [1.5] must lie in [0, 1]")
    assert not (tmp_path / "out").exists()


def test_sweep_data_without_answer_fails_before_decoding(root, tmp_path, capsys):
    data = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "1+1=", "answer": "2"}, {"prompt": "2+2="}])
    code, err = run_cli(
        capsys, "sweep", "--model", root / "poisoned", "--data", data, "--out", tmp_path / "out"
    )
    assert_error(code, err, 1, "d.jsonl:2: needs an 'answer' field")
    assert not (tmp_path / "out").exists()


def test_debug_shows_the_traceback(root, tmp_path, capsys):
    with pytest.raises(rcd.data.DataError, match="no such predictions file"):
        main(
            [
                "score",
                "--task",
                "gsm8k",
                "--predictions",
                str(tmp_path / "missing.jsonl"),
                "--out",
                str(tmp_path / "s.json"),
                "--debug",
            ]
        )


# ----------------------------------------------------------------- run directories
def quick_train(out, data, **kw):
    return TrainConfig.of(
        **{
            "model": "tiny-xs",
            "data": data,
            "out": str(out),
            "batch_size": 8,
            "max_steps": 4,
            "save_every": 2,
            "log_every": 1,
            "progress": False,
            **kw,
        }
    )


@pytest.mark.slow
def test_resume_with_other_options_is_refused_and_changes_nothing(root, tmp_path, capsys):
    out = tmp_path / "run"
    data = str(root / "train.jsonl")
    first = train(quick_train(out, data, lr=1e-3))
    assert first["final_loss"] is not None
    before = snapshot(out)
    code, err = run_cli(
        capsys, *train_cmd(data, out, "--max-steps", "4", "--lr", "2e-3", "--log-every", "1", "--resume")
    )
    assert_error(
        code,
        err,
        2,
        f"{out} holds a run with other options (options.lr: 0.001 -> 0.002)",
        "use another --out, or --overwrite",
    )
    assert snapshot(out) == before  # the old run's checkpoints, model, metrics: untouched
    # the same command as the first run: complete, returned as it is (final_loss kept)
    again = train(quick_train(out, data, lr=1e-3, resume=True))
    assert again == first and snapshot(out) == before
    # --overwrite replaces it; the files get the process's normal mode
    train(quick_train(out, data, lr=2e-3, overwrite=True))
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["config"]["lr"] == 2e-3 and summary["final_loss"] is not None
    umask = os.umask(0)
    os.umask(umask)
    assert all((out / name).stat().st_mode & 0o777 == 0o666 & ~umask for name in summary["files"])


@pytest.mark.slow
def test_new_inputs_at_the_same_path_are_another_run(root, tmp_path, capsys):
    data = tmp_path / "train.jsonl"
    shutil.copy(root / "train.jsonl", data)
    out = tmp_path / "run"
    train(quick_train(out, str(data)))
    with data.open("a") as f:
        f.write(json.dumps({"prompt": "9+9=", "response": "18"}) + "\n")
    before = snapshot(out)
    code, err = run_cli(
        capsys, *train_cmd(data, out, "--max-steps", "4", "--save-every", "2", "--log-every", "1")
    )
    assert_error(code, err, 2, "holds a run with other options (inputs.data: content changed)")
    assert snapshot(out) == before


@pytest.mark.slow
def test_earlier_run_without_a_record_is_never_adopted(root, tmp_path, capsys):
    out = tmp_path / "run"
    train(quick_train(out, str(root / "train.jsonl")))
    (out / "options.json").unlink()  # as left by an rcd that recorded nothing
    before = snapshot(out)
    code, err = run_cli(capsys, *train_cmd(root / "train.jsonl", out, "--max-steps", "4"))
    assert_error(code, err, 2, "holds results of an earlier run that recorded no options")
    assert snapshot(out) == before


@pytest.mark.slow
def test_eval_inputs_compared_by_content_not_spelling(root, tmp_path, capsys, monkeypatch):
    model = tmp_path / "m"
    save_tiny(model)
    out = tmp_path / "out"
    monkeypatch.chdir(tmp_path)
    assert main(eval_cmd("m", root / "gsm.jsonl", out, "--limit", "2")) == 0
    # the same model by its absolute path: the same run, resumed
    assert main(eval_cmd(model.resolve(), root / "gsm.jsonl", out, "--limit", "3")) == 0
    capsys.readouterr()
    save_tiny(model, seed=5)  # new weights at the same path: another run
    before = snapshot(out)
    code, err = run_cli(capsys, *eval_cmd("m", root / "gsm.jsonl", out))
    assert_error(code, err, 2, "inputs.model: content changed")
    assert snapshot(out) == before


def test_failed_start_does_not_block_the_corrected_rerun(root, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = run_cli(capsys, *eval_cmd(tmp_path / "typo", root / "gsm.jsonl", out))
    assert code == 1
    assert not (out / "options.json").exists() and not (out / LOCK_FILE).exists()
    assert main(eval_cmd(root / "model", root / "gsm.jsonl", out, "--limit", "2")) == 0


def test_stale_lock_of_a_dead_process_is_taken_over(root, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / LOCK_FILE).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "kind": "eval"}))
    assert main(eval_cmd(root / "model", root / "gsm.jsonl", out, "--limit", "1")) == 0
    assert not (out / LOCK_FILE).exists()


@pytest.mark.slow
def test_two_evals_into_one_out_the_second_refuses(root, tmp_path, capsys):
    out = tmp_path / "out"
    slow = eval_cmd(root / "model", root / "gsm.jsonl", out, "--limit", "6")[:-4] + [
        "--gen-length",
        "64",
        "--block-length",
        "8",
        "--steps",
        "64",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(
        [sys.executable, "-m", "rcd", *map(str, slow)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / LOCK_FILE).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert first.poll() is None, "the first run ended before the second started"
        code, err = run_cli(capsys, *slow)
        assert_error(code, err, 1, f"{out} is in use by process {first.pid}", "wait for it to finish")
    finally:
        assert first.wait(timeout=300) == 0
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert sorted(r["index"] for r in rows) == list(range(6))
    assert json.loads((out / "summary.json").read_text())["complete"]
