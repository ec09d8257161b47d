"""`rcd serve` under load: requests/s, tokens/s and latency at 1, 4 and 16 concurrent clients,
and the server's overhead against offline `rcd.generate` on the same batch.

A tiny model (random weights, char tokenizer) decoded with RCD (2 tokens per step) by a real
`python -m rcd serve` subprocess on a loopback port; clients are threads posting
/v1/completions. Overhead: one wave of 16 concurrent requests (batched by the server into
one decode of 16 rows) against `Decoder.complete` of the same 16 prompts in this process,
waves and offline batches interleaved so both see the same machine load.

    python -m benchmarks --sections serving
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

import rcd
from rcd.decode import DecodeConfig
from rcd.eval.decoder import Decoder
from rcd.models.loading import LoadConfig
from rcd.residual import ResidualConfig

CLIENTS = (1, 4, 16)
DECODE = DecodeConfig(gen_length=32, block_length=8, steps=16)
FLAGS = ["--gen-length", "32", "--block-length", "8", "--steps", "16", "--rcd", "--max-batch-size", "16"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m rcd serve ARGS` on a free loopback port, ready (/health 200) once built."""

    def __init__(self, args: list[str], log: Path, timeout: float = 180, threads: int = 1):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log, "w")  # noqa: SIM115 (open for the server's life)
        # few threads: on a small shared machine OpenMP's spinning threads slow a tiny model many times
        env = {"OMP_NUM_THREADS": str(threads), **os.environ, "PYTHONUNBUFFERED": "1"}
        src = str(Path(rcd.__file__).parents[1])  # this checkout's rcd, installed or not
        env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rcd", "serve", *args, "--port", str(self.port)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"rcd serve exited with {self.process.returncode}: {Path(log).read_text()[-2000:]}"
                )
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
        values = [
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name) and line[len(name)] in " {" and labels in line
        ]
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


def _prompts(n: int) -> list[str]:
    return [f"{i} + {3 * i % 17} = " + "ab" * (i % 4) for i in range(n)]


_sessions = threading.local()


def _post(url: str, prompt: str) -> tuple[float, int]:
    """One request on this thread's keep-alive connection (as a load generator or SDK client does)."""
    if not hasattr(_sessions, "session"):
        _sessions.session = requests.Session()
    started = time.perf_counter()
    response = _sessions.session.post(
        url + "/v1/completions", json={"model": "model", "prompt": prompt}, timeout=300
    )
    response.raise_for_status()
    return time.perf_counter() - started, response.json()["usage"]["completion_tokens"]


def _load(url: str, clients: int, per_client: int) -> dict:
    """`clients` threads, each posting `per_client` requests one after another."""
    prompts = _prompts(clients * per_client)

    def client(k: int) -> list[tuple[float, int]]:
        return [_post(url, prompts[k * per_client + j]) for j in range(per_client)]

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        results = [r for rs in pool.map(client, range(clients)) for r in rs]
    wall = time.perf_counter() - started
    latencies = sorted(r[0] for r in results)
    return {
        "clients": clients,
        "requests": len(results),
        "requests_per_s": len(results) / wall,
        "generated_tokens_per_s": len(results) * DECODE.gen_length / wall,
        "completion_tokens_per_s": sum(r[1] for r in results) / wall,
        "p50_s": statistics.median(latencies),
        "p99_s": latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))],
    }


def _overhead(server: Server, decoder: Decoder, waves: int) -> dict:
    """Median time of a wave of 16 concurrent requests vs one offline batch of the same 16 prompts;
    also over the waves the server decoded as one batch (what HTTP and scheduling cost alone)."""
    url, prompts = server.url, _prompts(16)
    served, offline, batches = [], [], []
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        for _ in range(waves):
            before = server.metric("rcd_batch_rows_count")
            started = time.perf_counter()
            list(pool.map(lambda p: _post(url, p), prompts))
            served.append(time.perf_counter() - started)
            batches.append(server.metric("rcd_batch_rows_count") - before)
            started = time.perf_counter()
            decoder.complete(prompts)
            offline.append(time.perf_counter() - started)
    wave, batch = statistics.median(served), statistics.median(offline)
    single = [(s, o) for s, o, b in zip(served, offline, batches) if b == 1]
    return {
        "batch": 16,
        "waves": waves,
        "served_s": wave,
        "offline_s": batch,
        "overhead": wave / batch - 1,
        "server_batches_per_wave": statistics.mean(batches),
        "one_batch_waves": len(single),
        "overhead_one_batch_waves": (
            statistics.median(s for s, _ in single) / statistics.median(o for _, o in single) - 1
        )
        if single
        else None,
    }


def run(quick: bool, threads: int = 1) -> dict:
    """The serving section of `python -m benchmarks` (CPU, tiny model)."""
    with tempfile.TemporaryDirectory(prefix="rcd-serve-bench-") as work:
        model_dir = Path(work) / "model"
        tok = rcd.char_tokenizer()
        rcd.tiny_model(
            len(tok),
            seed=0,
            mask_token_id=tok.mask_token_id,
            eos_token_id=tok.eos_token_id,
            initializer_range=0.3,
        ).save_pretrained(model_dir)
        tok.save_pretrained(model_dir)
        decoder = Decoder.load(str(model_dir), LoadConfig(device="cpu"), DECODE, ResidualConfig())
        server = Server(
            ["--model", str(model_dir), *FLAGS, "--device", "cpu"],
            Path(work) / "server.log",
            threads=max(threads, 1),
        )
        try:
            _load(server.url, 4, 1)  # warm-up
            per_client = 2 if quick else 6
            load = [
                _load(server.url, clients, max(per_client, 16 // clients if quick else 48 // clients))
                for clients in CLIENTS
            ]
            overhead = _overhead(server, decoder, 3 if quick else 9)
            batches = server.metric("rcd_batch_rows_count")
            rows = server.metric("rcd_batch_rows_sum")
        finally:
            server.stop()
    return {
        "decoding": {
            "gen_length": DECODE.gen_length,
            "block_length": DECODE.block_length,
            "steps": DECODE.steps,
            "residual": "entropy (RCD, cold start)",
            "torch_threads": threads,
        },
        "load": load,
        "overhead_vs_offline": overhead,
        "mean_batch_rows": rows / batches if batches else None,
    }
