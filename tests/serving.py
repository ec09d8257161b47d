"""Helpers of the serve tests: tiny saved models and a real `rcd serve` in a subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

import rcd

CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)


def save_tiny(path: Path, seed: int, chat: bool = False, **config) -> Path:
    """A tiny char-level model dir (random weights, peaky logits so EOS and stops happen), in fp64
    so that rounding never decides a token (the server and the test may use other thread counts)."""
    tok = rcd.char_tokenizer()
    if chat:
        tok.chat_template = CHAT_TEMPLATE
    model = rcd.tiny_model(len(tok), seed=seed, mask_token_id=tok.mask_token_id, eos_token_id=tok.eos_token_id,
                           initializer_range=0.3, **config).double()
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m rcd serve ARGS` on a free loopback port; `url` once /health answers 200."""

    def __init__(self, args: list[str], log: Path, timeout: float = 180):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log, "w")  # noqa: SIM115 (open for the server's life)
        # one thread: on a small shared machine OpenMP's spinning threads make a tiny model 30x slower
        env = {"OMP_NUM_THREADS": "1", **os.environ, "PYTHONUNBUFFERED": "1"}
        src = str(Path(rcd.__file__).parents[1])  # this checkout's rcd, installed or not
        env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
        self.process = subprocess.Popen([sys.executable, "-m", "rcd", "serve", *args, "--port", str(self.port)],
                                        stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"rcd serve exited with {self.process.returncode}: {Path(log).read_text()[-2000:]}")
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"rcd serve did not answer /health within {timeout}s")

    def metric(self, name: str, labels: str = "") -> float:
        """A sample of /metrics (summed over the samples whose labels contain `labels`)."""
        text = requests.get(self.url + "/metrics", timeout=10).text
        values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                  if line.startswith(name) and (line[len(name)] in " {") and labels in line]
        return sum(values)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()
        return self.process.returncode
