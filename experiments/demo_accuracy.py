"""What the opt-in approximations cost in accuracy, on the trained demo models.

`rcd demo` leaves a reference, a SeqD baseline and an RCD target trained on its task. This
section decodes the demo's held-out set again, over the demo's parallelism settings, with
  - the sparse residual, top_k in {8, 32, 128} against the dense (full-vocabulary) one;
  - Fast-dLLM's prefix and dual caches against exact decoding, for SeqD and for RCD;
and reports accuracy vs tokens per forward pass for each, plus the share of generated
tokens equal to the exact dense decoding's (same setting) and the seconds each took.

    python -m experiments.demo_accuracy --demo runs/demo     # after `make demo`
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path

import torch
from tqdm.auto import tqdm

import rcd
from rcd.app import choose_device
from rcd.config import dataclass_from_dict
from rcd.demo import DemoConfig
from rcd.eval.agreement import Variant, compare, top_k_variants
from rcd.eval.evalset import EvalSet
from rcd.eval.report import markdown_table, pareto_plot

CACHES = ("prefix", "dual")


def load_demo(demo_dir: Path, device: torch.device | str = "cpu") -> tuple[dict, dict, object]:
    """A finished `rcd demo` output: its report, the ref / seqd / rcd models, the tokenizer."""
    report = json.loads((demo_dir / "report.json").read_text())
    models, tokenizer = {}, None
    for name in ("ref", "seqd", "rcd"):
        models[name], tokenizer = rcd.load(demo_dir / name, device=device)
    return report, models, tokenizer


def run(demo_dir: Path, device: torch.device, quick: bool = False) -> dict:
    """Per setting of the demo's sweep, exact decoding then its approximations (agreement.compare)."""
    report, models, tokenizer = load_demo(demo_dir, device)
    evalset = EvalSet.from_jsonl(demo_dir / "data" / "test.jsonl", report["task"])
    if quick:
        evalset.rows = evalset.rows[:100]
    decoding = report["decoding"]
    demo = dataclass_from_dict(DemoConfig, report["config"])
    settings = demo.settings(decoding["gen_length"], decoding["block_length"])
    if quick:
        settings = settings[:2]
    temperature = demo.residual.residual.temperature
    warm = dataclasses.replace(demo.residual.residual, init="reference")
    caches = [Variant(cache=c) for c in CACHES] if decoding["attention"] == "bidirectional" else []
    runs = {
        "seqd": (models["seqd"], None, caches),
        "rcd": (models["rcd"], warm, top_k_variants(models["rcd"]) + caches),
    }
    curves: dict[str, list[dict]] = {}
    for setting in tqdm(settings, desc="demo-accuracy settings"):
        for method, (model, residual, variants) in runs.items():
            reference = models["ref"] if residual is not None else None
            batch_size = demo.sweep.batch_size
            for row in compare(model, tokenizer, evalset, setting, residual, variants, reference, batch_size):
                name = method if row["variant"] == "exact" else f"{method} {row['variant']}"
                label = {"setting": setting.describe(), "rule": setting.policy().name}
                curves.setdefault(name, []).append({**label, **row})
    return {
        "task": report["task"],
        "demo": str(demo_dir),
        "n": len(evalset.rows),
        "decoding": decoding,
        "residual_temperature": temperature,
        "curves": curves,
    }


def demo_accuracy_markdown(result: dict) -> str:
    def agreement(name: str, point: dict) -> str:
        exact = name in ("seqd", "rcd")
        return "" if exact else f" ({100 * point['token_agreement_with_exact']:.0f}% same)"

    curves = result["curves"]
    seconds = " | ".join(f"{sum(p['seconds'] for p in pts):.1f}" for pts in curves.values())
    stderr = 100 * math.sqrt(0.25 / result["n"])
    return "\n".join(
        [
            f"## Top-k residual and approximate caches on the demo task ({result['task']}, {result['n']} problems)",
            "",
            f"Accuracy @ tokens per forward pass (binomial standard error <= {stderr:.1f} points); in brackets,",
            "the share of generated tokens equal to exact dense decoding's, same method and setting.",
            "",
            markdown_table(curves, agreement),
            f"| seconds | {seconds} |",
            "",
        ]
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.demo_accuracy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--demo", type=Path, default=Path("runs/demo"), help="output directory of `rcd demo`")
    parser.add_argument("--out", type=Path, default=Path("experiments/reports"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="100 problems, two settings")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not (args.demo / "report.json").exists():
        parser.error(
            f"{args.demo}/report.json not found: run `make demo` (or `rcd demo --out {args.demo}`) first"
        )
    device = torch.device(choose_device(None if args.device == "auto" else args.device))
    result = run(args.demo, device, args.quick)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"demo-accuracy-{device.type}{'-quick' if args.quick else ''}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(demo_accuracy_markdown(result))
    pareto_plot(
        result["curves"], stem.with_suffix(".png"), title=f"{result['task']}: top-k residual and caches"
    )
    print(demo_accuracy_markdown(result))
    print(f"wrote {stem}.json, .md and .png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
