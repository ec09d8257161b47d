"""Screenshot of the playground (docs/playground.png) on a finished demo's models.

Serves OUT's models with the command `rcd demo` printed (report.json's "playground"), decodes one
test problem with SeqD and RCD side by side at 4 tokens per step, replays both to --step and
saves the page:

    python scripts/playground_screenshot.py runs/demo docs/playground.png --step 5

Needs chromium + chromedriver (`make browser`) and selenium (the dev extra); run from the
repository root (it reuses the browser and serve tests' helpers).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    sys.path[:0] = [
        str(ROOT / "tests"),
        str(ROOT / "tests" / "serve"),
        str(ROOT),
    ]  # as pytest's pythonpath (tests/serving.py uses benchmarks/)
    from selenium import webdriver

    from serving import Server
    from test_playground import chromium, replay, run_decode, save_screenshot

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo", type=Path, help="a finished `rcd demo` output directory")
    parser.add_argument("png", type=Path, help="where to save the screenshot")
    parser.add_argument(
        "--step", type=int, default=5, help="the step both sides are replayed to (0: the end)"
    )
    parser.add_argument("--problem", type=int, default=0, help="which test problem to decode")
    args = parser.parse_args()
    command = shlex.split(json.loads((args.demo / "report.json").read_text())["playground"])
    rows = (args.demo / "data" / "test.jsonl").read_text().splitlines()
    prompt = json.loads(rows[args.problem])["prompt"]
    with tempfile.TemporaryDirectory() as scratch:  # the server's log (its tail is shown if it fails)
        server = Server(command[2:], Path(scratch) / "serve.log")
        driver = chromium(webdriver)
        try:
            run_decode(driver, server.url, "both", prompt, {"kind": "steps", "value": 4})
            if args.step:
                for side in ("seqd", "rcd"):
                    replay(driver, side, args.step)
            save_screenshot(driver, args.png)
        finally:
            driver.quit()
            server.stop()


if __name__ == "__main__":
    main()
