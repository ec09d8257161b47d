"""Model names answered at once: a path that does not exist, a Hub id without a network (one
line, no retries), a cached Hub id without a network (loads); other libraries' output hidden."""

import logging
import time

import pytest
from huggingface_hub import constants

import rcd
from rcd.cli import main
from rcd.models import hub
from test_bad_input import save_tiny, write_jsonl
from test_lora_hub import hub_cache

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: the connection is refused at once


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """The Hub endpoint refuses connections and the Hub cache is an empty folder of this test."""
    monkeypatch.setattr(constants, "ENDPOINT", UNREACHABLE)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    hub.hub_unreachable.cache_clear()
    yield tmp_path / "hub-cache"
    hub.hub_unreachable.cache_clear()


def forbid_the_hub(monkeypatch):
    def probe(*args, **kwargs):
        raise AssertionError("the Hub was asked about a local path")

    monkeypatch.setattr(hub, "get_session", probe)


@pytest.mark.parametrize("name", ["./nope", "~/rcd-no-such-model", "/no/such/model", "runs/nope", "nope/"])
def test_a_path_that_does_not_exist_fails_without_asking_the_hub(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()  # 'runs/nope' is a path because runs/ exists here
    forbid_the_hub(monkeypatch)
    with pytest.raises(FileNotFoundError, match="no model directory at"):
        rcd.load(name)


# every command that takes a model name (sweep once read the tokenizer before the name's check)
COMMAND_LINES = {
    "generate": ["--prompt", "1+1="],
    "sweep": ["--data", "data.jsonl", "--out", "out"],
    "eval": ["--data", "data.jsonl", "--out", "out"],
    "serve": [],
}


@pytest.mark.parametrize("command", sorted(COMMAND_LINES))
def test_a_hub_id_without_network_fails_at_once_with_one_line(
    command, no_network, capsys, caplog, monkeypatch
):
    monkeypatch.chdir(no_network.parent)
    write_jsonl(
        no_network.parent / "data.jsonl",
        [{"prompt": "1+1=", "response": "2", "question": "1+1?", "answer": "#### 2"}],
    )
    started = time.perf_counter()
    with caplog.at_level(logging.DEBUG, logger="huggingface_hub"):
        code = main([command, "--model", "rcd-test/no-such-model", *COMMAND_LINES[command]])
    seconds = time.perf_counter() - started
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1, err
    assert (
        "rcd-test/no-such-model" in err
        and "cannot be reached" in err
        and "nor is the model in its cache" in err
    )
    assert not [r for r in caplog.records if "Retry" in r.getMessage()]
    assert seconds < 5, seconds  # the Hub's own retries take ~30 s


def test_the_hub_is_probed_once_per_process(no_network, monkeypatch):
    probes = []
    real = hub.get_session
    monkeypatch.setattr(hub, "get_session", lambda: probes.append(1) or real())
    for _ in range(3):
        with pytest.raises(FileNotFoundError, match="cannot be reached"):
            rcd.load("rcd-test/no-such-model")
    assert len(probes) == 1


def test_an_invalid_hub_id_is_named_as_such(no_network):
    with pytest.raises(FileNotFoundError, match="not a Hugging Face Hub id"):
        rcd.load("bad--name..x")


def test_a_cached_hub_id_loads_without_network(no_network, tmp_path):
    hub_cache(no_network, "rcd-test/tiny", save_tiny(tmp_path / "tiny"))
    started = time.perf_counter()
    model, tokenizer = rcd.load("rcd-test/tiny")
    assert time.perf_counter() - started < 5
    assert model.config.mask_token_id == tokenizer.mask_token_id
    assert hub.resolve_hub_name("rcd-test/tiny").startswith(str(no_network))  # its cached snapshot


def test_other_libraries_progress_bars_show_only_with_verbose(tmp_path, capsys):
    model = save_tiny(tmp_path / "model")
    argv = ["generate", "--model", str(model), "--prompt", "1+1=", "--gen-length", "8", "--block-length", "8"]
    assert main(argv) == 0
    quiet = capsys.readouterr()
    assert main([*argv, "--verbose"]) == 0
    verbose = capsys.readouterr()
    assert "Loading weights" not in quiet.err and "Loading weights" in verbose.err
    assert quiet.out.splitlines()[0] == verbose.out.splitlines()[0]  # the same completion
    main(argv)  # back to quiet in the same process
    assert "Loading weights" not in capsys.readouterr().err
