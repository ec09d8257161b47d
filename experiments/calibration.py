"""How far to trust a commit's confidence: SeqD vs RCD under a threshold rule.

Threshold decoding commits every position whose confidence clears tau, so a method whose
confidence runs ahead of its accuracy commits wrong tokens early. On the trained `rcd demo`
models this decodes the held-out set once per method with `return_trace=True` and reports,
per confidence bin of the committed tokens, how often they equal the gold response token.

    python -m experiments.calibration --demo runs/demo --threshold 0.9 --limit 300
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import rcd
from rcd.data import read_jsonl

from .demo_accuracy import load_demo

BINS = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0 + 1e-6)


def gold_tokens(tokenizer, responses: list[str], gen_length: int) -> torch.Tensor:
    """The responses as token ids, EOS-padded to the generation length (what a perfect decode gives)."""
    gold = torch.full((len(responses), gen_length), tokenizer.eos_token_id)
    for row, text in enumerate(responses):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][:gen_length]
        gold[row, : len(ids)] = torch.tensor(ids)
    return gold


def committed_confidence(out: rcd.GenerationOutput, gold: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(confidence, correct) of every committed token, from the trace."""
    confidence, correct = [], []
    for step in out.trace:
        rows, cols = step.committed.nonzero(as_tuple=True)
        positions = step.block_start - out.prompt_length + cols
        confidence.append(step.confidence[rows, cols])
        correct.append(out.generated[rows, positions].cpu() == gold[rows, positions])
    return torch.cat(confidence), torch.cat(correct).float()


def run(demo_dir: Path, threshold: float, limit: int) -> dict:
    report, models, tokenizer = load_demo(demo_dir)
    rows = read_jsonl(demo_dir / "data" / "test.jsonl")[:limit]
    methods = {  # name: (model, residual, reference)
        "seqd": (models["seqd"], None, None),
        "rcd": (models["rcd"], rcd.ResidualConfig(init="reference"), models["ref"]),
        "rcd-cold": (models["rcd"], rcd.ResidualConfig(), None),
    }
    gen_length, block_length = report["decoding"]["gen_length"], report["decoding"]["block_length"]
    gold = gold_tokens(tokenizer, [r["response"] for r in rows], gen_length)
    ids, mask = rcd.encode_prompts(tokenizer, [r["prompt"] for r in rows])
    result = {"task": report["task"], "threshold": threshold, "n": len(rows), "methods": {}}
    for name, (model, residual, reference) in methods.items():
        out = rcd.generate(
            model,
            ids,
            attention_mask=mask,
            gen_length=gen_length,
            block_length=block_length,
            threshold=threshold,
            residual=residual,
            reference=reference,
            return_trace=True,
        )
        confidence, correct = committed_confidence(out, gold)
        bins = []
        for lo, hi in zip(BINS[:-1], BINS[1:]):
            inside = (confidence >= lo) & (confidence < hi)
            if inside.any():
                bins.append(
                    {
                        "from": lo,
                        "to": min(hi, 1.0),
                        "tokens": int(inside.sum()),
                        "accuracy": float(correct[inside].mean()),
                    }
                )
        result["methods"][name] = {
            "token_accuracy": float(correct.mean()),
            "tokens": len(correct),
            "bins": bins,
        }
    return result


def markdown(result: dict) -> str:
    names = list(result["methods"])
    edges = sorted({(b["from"], b["to"]) for m in result["methods"].values() for b in m["bins"]})
    lines = [
        f"## Calibration of committed tokens ({result['task']}, tau {result['threshold']}, {result['n']} problems)",
        "",
        "Share of committed tokens equal to the gold token, by the confidence they were committed with.",
        "",
        "| confidence | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for lo, hi in edges:
        cells = []
        for name in names:
            b = next((b for b in result["methods"][name]["bins"] if (b["from"], b["to"]) == (lo, hi)), None)
            cells.append(f"{100 * b['accuracy']:.1f}% (n={b['tokens']})" if b else "")
        lines.append(f"| [{lo:.2f}, {hi:.2f}) | " + " | ".join(cells) + " |")
    overall = [f"{100 * m['token_accuracy']:.1f}%" for m in result["methods"].values()]
    lines.append("| all | " + " | ".join(overall) + " |")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.calibration",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--demo", type=Path, default=Path("runs/demo"), help="output directory of `rcd demo`")
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--limit", type=int, default=300, help="held-out problems decoded")
    parser.add_argument("--out", type=Path, default=Path("experiments/reports"))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not (args.demo / "report.json").exists():
        parser.error(f"{args.demo}/report.json not found: run `make demo` first")
    result = run(args.demo, args.threshold, args.limit)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / "demo-calibration"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
