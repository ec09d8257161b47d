"""`rcd serve` under limits: the API key, a full queue (429 at once), SIGTERM draining the
requests in flight before exit 0, and flags refused before any model loads."""

from __future__ import annotations

import concurrent.futures
import signal
import time

import pytest
import requests

from conftest import require_extra
from rcd.cli import main
from serving import Server, save_tiny

require_extra("fastapi", "serve")

KEY = "s3cret-key"
LONG = {"model": "tiny", "prompt": "1", "rcd": {"gen_length": 64, "steps": 64}}  # a second or more


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """One request decoded at a time, one waiting at most, a key on /v1."""
    root = tmp_path_factory.mktemp("serve-limits")
    model = save_tiny(root / "tiny", seed=3)
    running = Server(
        [
            "--model",
            str(model),
            "--gen-length",
            "16",
            "--block-length",
            "8",
            "--api-key",
            KEY,
            "--max-batch-size",
            "1",
            "--max-queue",
            "1",
            "--batch-wait-ms",
            "0",
        ],
        root / "server.log",
    )
    yield running
    running.stop()


def post(server, body, key=KEY, timeout=60):
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return requests.post(server.url + "/v1/completions", json=body, headers=headers, timeout=timeout)


def wait_for(condition, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_api_key(guarded):
    body = {"model": "tiny", "prompt": "1"}
    for key in (None, "wrong", KEY + "x", ""):
        response = post(guarded, body, key=key)
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    assert requests.get(guarded.url + "/v1/models", timeout=10).status_code == 401
    assert post(guarded, body).status_code == 200
    assert requests.get(guarded.url + "/health", timeout=10).status_code == 200  # probes need no key


def test_a_full_queue_answers_429_at_once(guarded):
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        first = pool.submit(post, guarded, LONG)
        wait_for(lambda: guarded.metric("rcd_requests_decoding") == 1)
        second = pool.submit(post, guarded, LONG)
        wait_for(lambda: guarded.metric("rcd_queue_depth") == 1)
        started = time.monotonic()
        refused = post(guarded, {"model": "tiny", "prompt": "1"}, timeout=10)
        assert refused.status_code == 429 and time.monotonic() - started < 5
        assert refused.json()["error"]["code"] == "queue_full"
        assert first.result().status_code == second.result().status_code == 200  # the others are served
    assert guarded.metric("rcd_rejected_requests_total") == 1


def test_sigterm_finishes_the_requests_in_flight_then_exits_0(guarded):
    alone = post(guarded, LONG).json()["choices"][0]["text"]
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(post, guarded, LONG)
        wait_for(lambda: guarded.metric("rcd_requests_decoding") == 1)
        guarded.process.send_signal(signal.SIGTERM)
        answer = pending.result()
    assert answer.status_code == 200 and answer.json()["choices"][0]["text"] == alone
    assert guarded.process.wait(60) == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(guarded.url + "/health", timeout=5)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--port", "0"], "port must lie in [1, 65535]"),
        (["--max-queue", "0"], "max_queue must be >= 1"),
        (["--api-key", " "], "api_key is empty"),
        (["--res-temperature", "0.9"], "add --rcd"),
        (["--steps", "3"], "multiple of the number of blocks"),
    ],
)
def test_bad_flags_fail_before_any_model_loads(flags, message, capsys):
    assert main(["serve", "--model", "/nonexistent/model", *flags]) == 2  # the model is never looked at
    assert message in capsys.readouterr().err
