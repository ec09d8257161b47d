"""The playground page (`GET /` of `rcd serve`) in a real headless browser: Debian's chromium driven by selenium.

Two servers feed the page: a scripted step stream (a stdlib HTTP server in this file, sending the
events of `POST /v1/rcd/denoise` cut into odd pieces) checks the page's parsing and shading rules
exactly; a real `rcd serve` subprocess on tiny saved models checks the page end to end and leaves
a screenshot (RCD_PLAYGROUND_SHOT=PATH: copied there too).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from conftest import require_extra
from rcd.cli import serve
from rcd.cli.options import decode_config, residual_config
from rcd.demo import DemoConfig, example_setting, playground_command
from rcd.eval.sweep import rcd_methods
from serving import Server, save_tiny

STATIC = Path(__file__).resolve().parents[2] / "src" / "rcd" / "serve" / "static"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
TIMEOUT = 30  # seconds any wait on the page may take


def chromium(webdriver):
    """Debian's chromium, headless, driven by its chromedriver, in a 1280 px wide window."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(TIMEOUT)
    driver.set_script_timeout(TIMEOUT)
    return driver


@pytest.fixture(scope="module")
def browser():
    """Headless chromium; missing, the test skips, except under CI (CI=1), where it fails."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
    if missing and not os.environ.get("CI"):
        pytest.skip(
            f"no browser ({', '.join(missing)}): apt-get install chromium chromium-driver (make browser)"
        )
    assert not missing, f"{missing} missing: apt-get install chromium chromium-driver (make browser does)"
    driver = chromium(require_extra("selenium.webdriver", "dev"))
    yield driver
    driver.quit()


# ---- a scripted step stream --------------------------------------------------------------------

GEN, BLOCK = 8, 4
INFO = {
    "models": [
        {"id": "tiny-rcd", "residual": True, "role": "rcd"},
        {"id": "tiny-seqd", "residual": False, "role": "baseline"},
    ],
    "defaults": {"gen_length": GEN, "block_length": BLOCK, "steps": 4, "threshold": None},
}
TEXT = "abcdefgh"
COMMITS = [[1, 0], [3, 2], [4, 6], [5, 7]]  # positions committed at each step, two per step


def scripted_events(residual: bool) -> list[dict]:
    """A decode of 8 positions in 2 blocks of 4, 2 tokens per step; RCD's alpha fixed at 0.5, so the
    page must shade by confidence, which rises with the position."""
    events = [
        {
            "type": "start",
            "model": "tiny",
            "residual": residual,
            "gen_length": GEN,
            "block_length": BLOCK,
            "prompt": "1+2=",
        }
    ]
    order = [-1] * GEN
    for step, positions in enumerate(COMMITS):
        block = positions[0] // BLOCK
        for p in positions:
            order[p] = step
        canvas = [TEXT[p] if order[p] >= 0 else None for p in range(GEN)]
        masked = [order[p] < 0 and p // BLOCK == block for p in range(GEN)]
        events.append(
            {
                "type": "step",
                "block": block,
                "step": step % 2,
                "nfe": step + 1,
                "canvas": canvas,
                "committed": positions,
                "order": list(order),
                "confidence": [0.1 + 0.1 * p if m else None for p, m in enumerate(masked)],
                "alpha": [(0.5 if residual else 0.0) if m else None for m in masked],
            }
        )
    events.append(
        {"type": "done", "text": TEXT, "usage": {"nfe": 4, "reference_nfe": 0, "tokens_per_step": 2.0}}
    )
    return events


class ScriptedServer(BaseHTTPRequestHandler):
    requests: ClassVar[list[dict]] = []
    api_key: ClassVar[str | None] = (
        None  # when set, /v1 routes answer 401 without `Authorization: Bearer KEY`
    )

    def log_message(self, *args):  # quiet
        pass

    def reply(self, body: bytes, kind: str, status: int = 200):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def refused(self) -> bool:
        if (
            self.path.startswith("/v1")
            and self.api_key
            and self.headers["Authorization"] != f"Bearer {self.api_key}"
        ):
            self.reply(b'{"error": {"message": "missing or wrong API key"}}', "application/json", 401)
            return True
        return False

    def do_GET(self):
        if self.refused():
            return None
        if self.path == "/v1/rcd/info":
            return self.reply(json.dumps(INFO).encode(), "application/json")
        name = "index.html" if self.path == "/" else self.path.removeprefix("/static/")
        kinds = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
        path = STATIC / name
        if "/" in name or not path.is_file():
            return self.reply(b"{}", "application/json", 404)
        self.reply(path.read_bytes(), kinds.get(path.suffix, "application/octet-stream"))

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.refused():
            return None
        ScriptedServer.requests.append(body)
        if self.path != "/v1/rcd/denoise":
            return self.reply(b"{}", "application/json", 404)
        if "empty" in body["prompt"]:
            error = {
                "error": {
                    "message": "prompt: must not be empty",
                    "type": "invalid_request_error",
                    "param": "prompt",
                    "code": None,
                }
            }
            return self.reply(json.dumps(error).encode(), "application/json", 400)
        residual = body["model"] == "tiny-rcd"
        stream = (
            "".join(f"data: {json.dumps(e)}\r\n\r\n" for e in scripted_events(residual)) + "data: [DONE]\n\n"
        )
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for i in range(0, len(stream), 97):  # pieces that cut events, lines and CRLFs apart
            self.wfile.write(stream[i : i + 97].encode())
            self.wfile.flush()
            time.sleep(0.002)


@pytest.fixture(scope="module")
def scripted():
    server = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


# ---- the page --------------------------------------------------------------------------------


def wait_for(driver, condition: str, what: str):
    """Poll a JS expression until true (bounded)."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if driver.execute_script(f"return Boolean({condition})"):
            return
        time.sleep(0.05)
    raise AssertionError(
        f"timed out after {TIMEOUT}s waiting for {what}; status: "
        + str(driver.execute_script("return document.querySelector('#server-status').textContent"))
    )


def run_decode(driver, url: str, side: str, prompt: str, rule: dict):
    driver.get(url + "/")
    wait_for(driver, "!document.querySelector('#run').disabled", "the model list")
    driver.execute_script(
        """const [side, prompt, rule] = arguments;
        document.querySelector(`input[name=side][value=${side}]`).checked = true;
        document.querySelector('#prompt').value = prompt;
        document.querySelector(`input[name=rule][value=${rule.kind}]`).checked = true;
        if (rule.kind === 'threshold') document.querySelector('#threshold').value = rule.value;
        else document.querySelector('#tokens-per-step').value = String(rule.value);""",
        side,
        prompt,
        rule,
    )
    driver.find_element("id", "run").click()
    wait_for(
        driver,
        "document.querySelector('.panel') && [...document.querySelectorAll('.panel')]"
        ".every(p => p.dataset.state !== 'running')",
        "the decode to finish",
    )


def panels(driver) -> list[dict]:
    """What each panel shows, read from the page."""
    return driver.execute_script(
        """return [...document.querySelectorAll('.panel')].map(p => ({
            side: p.dataset.side, state: p.dataset.state,
            step: p.querySelector('.stat-step').textContent, nfe: p.querySelector('.stat-nfe').textContent,
            parallelism: p.querySelector('.stat-parallelism').textContent,
            shade: p.querySelector('.stat-shade').textContent,
            error: p.querySelector('.error').hidden ? null : p.querySelector('.error').textContent,
            slider: {min: +p.querySelector('.replay-slider').min, max: +p.querySelector('.replay-slider').max,
                     value: +p.querySelector('.replay-slider').value,
                     disabled: p.querySelector('.replay-slider').disabled},
            cells: [...p.querySelectorAll('.cell')].map(c => ({
                kind: c.classList.contains('committed') ? 'committed'
                    : c.classList.contains('masked') ? 'masked' : 'waiting',
                text: c.firstChild ? c.firstChild.textContent : '',
                order: c.querySelector('.order') ? +c.querySelector('.order').textContent : null,
                fresh: c.classList.contains('fresh'), background: c.style.background})),
        }))"""
    )


def replay(driver, side: str, step: int):
    driver.execute_script(
        """const slider = document.querySelector(`.panel[data-side=${arguments[0]}] .replay-slider`);
        slider.value = arguments[1]; slider.dispatchEvent(new Event('input'));""",
        side,
        step,
    )


def test_page_draws_a_scripted_stream_and_replays_it(browser, scripted):
    ScriptedServer.requests.clear()
    run_decode(browser, scripted, "both", "1+2=", {"kind": "steps", "value": 2})
    sent = {r["model"]: r for r in ScriptedServer.requests}
    assert set(sent) == {"tiny-rcd", "tiny-seqd"}  # one stream per side
    assert (
        sent["tiny-rcd"]["rcd"] == {"steps": 4, "threshold": None} and sent["tiny-rcd"]["max_tokens"] == GEN
    )
    seqd, rcd = panels(browser)
    for panel in (seqd, rcd):
        assert panel["state"] == "done" and panel["error"] is None
        assert panel["step"] == "4 / 4" and panel["nfe"] == "4" and panel["parallelism"] == "2.00"
        assert panel["slider"] == {"min": 1, "max": 4, "value": 4, "disabled": False}
        assert [c["text"] for c in panel["cells"]] == list(TEXT)
        orders = [c["order"] for c in panel["cells"]]
        assert orders == [1, 1, 2, 2, 3, 4, 3, 4]  # the step (1-based) of COMMITS that committed each
    assert seqd["shade"] == "confidence" and rcd["shade"] == "confidence (alpha fed back: 0.50 everywhere)"

    replay(browser, "rcd", 1)  # after step 1: two committed, two masked of block 0 shaded, block 1 waiting
    cells = panels(browser)[1]["cells"]
    assert [c["kind"] for c in cells] == ["committed"] * 2 + ["masked"] * 2 + ["waiting"] * 4
    assert all(c["fresh"] for c in cells[:2])
    assert (
        cells[2]["background"] != cells[3]["background"]
    )  # shaded by confidence (0.3 vs 0.4), not flat alpha
    assert panels(browser)[1]["step"] == "1 / 4"
    assert panels(browser)[1]["shade"] == "confidence (alpha fed back: 0.50 everywhere)"


def test_page_shows_a_request_error(browser, scripted):
    run_decode(browser, scripted, "seqd", "empty", {"kind": "threshold", "value": 0.8})
    (panel,) = panels(browser)
    assert panel["state"] == "error" and panel["error"] == "prompt: must not be empty"
    assert not browser.find_element("css selector", ".panel .replay").is_displayed()  # no empty replay
    assert ScriptedServer.requests[-1]["rcd"] == {"threshold": 0.8, "steps": None}


def test_page_asks_for_the_api_key_of_a_guarded_server(browser, scripted, monkeypatch):
    monkeypatch.setattr(ScriptedServer, "api_key", "sesame")
    browser.get(scripted + "/")
    wait_for(browser, "!document.querySelector('#key-field').hidden", "the API key field")
    assert browser.find_element("id", "run").get_attribute("disabled")  # no models known yet
    key = browser.find_element("id", "api-key")
    key.send_keys("sesame")
    key.send_keys("\t")  # change event: the page reads the models with the key
    wait_for(browser, "!document.querySelector('#run').disabled", "the model list")
    browser.find_element("id", "prompt").send_keys("1+2=")
    browser.find_element("id", "run").click()
    wait_for(
        browser,
        "[...document.querySelectorAll('.panel')].every(p => p.dataset.state === 'done')",
        "the decode",
    )
    assert [p["step"] for p in panels(browser)] == ["4 / 4", "4 / 4"]


def save_screenshot(driver, path: Path) -> Path:
    """The whole page at 1280 px wide (the viewport made as tall as the page)."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    metrics = {"width": 1280, "height": min(height, 2400), "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    try:
        assert driver.save_screenshot(str(path))
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    return path


# ---- a real `rcd serve` ------------------------------------------------------------------------

SERVE_GEN, SERVE_BLOCK = 16, 8


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`rcd serve` of two tiny saved models: RCD (entropy alpha, the default residual) and a SeqD baseline."""
    base = tmp_path_factory.mktemp("served")
    args = [
        "--model",
        str(save_tiny(base / "tiny-rcd", 0)),
        "--baseline",
        str(save_tiny(base / "tiny-seqd", 1)),
        "--rcd",
        "--gen-length",
        str(SERVE_GEN),
        "--block-length",
        str(SERVE_BLOCK),
        "--steps",
        str(SERVE_GEN // 2),
    ]
    server = Server(args, base / "serve.log")
    yield server.url
    server.stop()


def check_finished(panel: dict, steps: int | None = None) -> int:
    """A finished panel's step count, forward passes, slider and canvas agree; returns the step count."""
    assert panel["state"] == "done" and panel["error"] is None, panel["error"]
    total = panel["slider"]["max"]
    assert steps is None or total == steps
    assert panel["step"] == f"{total} / {total}" and panel["nfe"] == str(total)  # one forward pass per step
    assert panel["slider"] == {"min": 1, "max": total, "value": total, "disabled": False}
    assert [c["kind"] for c in panel["cells"]] == ["committed"] * SERVE_GEN
    orders = [c["order"] for c in panel["cells"]]
    assert set(orders) == set(range(1, total + 1))  # every step committed something, and only those steps
    return total


@pytest.mark.slow  # the server subprocess starts in 10-30 s
def test_page_decodes_live_with_rcd_serve(browser, served, tmp_path):
    run_decode(browser, served, "both", "1+2=", {"kind": "steps", "value": 2})
    seqd, rcd_panel = panels(browser)
    for panel in (seqd, rcd_panel):
        check_finished(panel, steps=SERVE_GEN // 2)
        orders = sorted(c["order"] for c in panel["cells"])
        assert orders == sorted(list(range(1, SERVE_GEN // 2 + 1)) * 2)  # 2 tokens per step
    assert (
        seqd["shade"] == "confidence" and rcd_panel["shade"] == "the alpha fed back"
    )  # entropy alpha varies

    replay(browser, "rcd", 3)  # mid-decode: block 0 part committed, part shaded, block 1 waiting
    cells = panels(browser)[1]["cells"]
    kinds = [c["kind"] for c in cells]
    assert sorted(kinds[:SERVE_BLOCK]) == ["committed"] * 6 + ["masked"] * 2
    assert kinds[SERVE_BLOCK:] == ["waiting"] * SERVE_BLOCK
    masked = [c for c in cells if c["kind"] == "masked"]
    assert sum(c["fresh"] for c in cells) == 2 and all(c["background"] for c in masked)
    path = save_screenshot(browser, tmp_path / "playground.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    if os.environ.get("RCD_PLAYGROUND_SHOT"):
        shutil.copy(path, os.environ["RCD_PLAYGROUND_SHOT"])


@pytest.mark.slow  # the server subprocess starts in 10-30 s
def test_page_decodes_by_threshold_with_rcd_serve(browser, served):
    run_decode(browser, served, "rcd", "12+3=", {"kind": "threshold", "value": 0.2})
    (panel,) = panels(browser)
    assert panel["side"] == "rcd" and check_finished(panel) <= SERVE_GEN


def test_the_demo_prints_an_rcd_serve_command_that_parses(tmp_path):
    """The command `rcd demo` prints, read by the real `rcd serve` parser, decodes as the demo's `rcd` method."""
    config = DemoConfig()
    seqd, rcd_model, reference = object(), object(), object()  # stand-ins: the command names directories
    methods = rcd_methods(rcd_model, config.residual.residual, reference, baseline=seqd, cold_start=False)
    setting = example_setting(config.settings(40, 40))
    line = shlex.join(playground_command(tmp_path / "demo dir", methods[1], setting))
    assert line.startswith("rcd serve ")
    parser = argparse.ArgumentParser()
    serve.register(parser)
    args = parser.parse_args(shlex.split(line)[2:])
    demo = tmp_path / "demo dir"  # a space: the printed line quotes it
    assert (args.model, args.reference, args.baseline) == tuple(str(demo / d) for d in ("rcd", "ref", "seqd"))
    assert decode_config(args) == setting and setting.tokens_per_step == 4
    warm_start = dataclasses.replace(config.residual.residual, init="reference")
    assert residual_config(args) == methods[1].residual == warm_start
