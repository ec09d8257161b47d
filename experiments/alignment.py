"""The residual's train/test alignment on a trained RCD model (rcd.eval.alignment).

    python -m experiments.alignment --model runs/demo/rcd --reference runs/demo/ref \
        --data runs/demo/data/test.jsonl --limit 200 [--bins 10] \
        [--gen-length 42 --block-length 42 --threshold 0.9 ...] [--res-temperature 0.9 ...] [--json OUT]

decodes the prompts with RCD's self-loop and, at every residual update, runs the reference
(the model stage rcd trained against) on the sequence being fed; prints the mean
KL(p_reference || p_self) by bin of the self-loop's entropy and by denoising step. The
reference's passes are the instrument's: the decode's tokens and pass counts are unchanged.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import rcd
from rcd.config import RES_PREFIX, add_dataclass_arguments, dataclass_from_args
from rcd.data import read_jsonl
from rcd.decode import encode_prompts
from rcd.decode.text import stop_ids
from rcd.eval.alignment import AlignmentRecord, residual_alignment


def measure(
    model: torch.nn.Module,
    reference: torch.nn.Module,
    tokenizer,
    prompts: list[str],
    decode_config: rcd.DecodeConfig,
    residual: rcd.ResidualConfig,
    batch_size: int = 32,
) -> AlignmentRecord:
    """One AlignmentRecord over all prompts (steps counted within each batch's decode)."""
    stops = stop_ids(tokenizer, model.config) or None
    records = []
    for start in range(0, len(prompts), batch_size):
        input_ids, attention_mask = encode_prompts(tokenizer, prompts[start : start + batch_size])
        _, record = residual_alignment(
            model,
            reference,
            input_ids,
            decode_config,
            residual=residual,
            attention_mask=attention_mask,
            eos_token_id=stops,
        )
        records.append(record)
    return AlignmentRecord(
        *(torch.cat([getattr(r, f) for r in records]) for f in AlignmentRecord.__dataclass_fields__)
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.alignment",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="trained RCD model directory")
    parser.add_argument("--reference", required=True, help="the reference it was trained against")
    parser.add_argument("--data", required=True, help="JSONL with a 'prompt' per line")
    parser.add_argument("--limit", type=int, default=None, help="first N prompts only")
    parser.add_argument("--bins", type=int, default=10, help="entropy bins over [0, 1]")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, default=None, help="also write the tables here")
    add_dataclass_arguments(parser.add_argument_group("decoding"), rcd.DecodeConfig)
    add_dataclass_arguments(parser.add_argument_group("residual"), rcd.ResidualConfig, prefix=RES_PREFIX)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.bins < 1 or (args.limit is not None and args.limit < 1) or args.batch_size < 1:
        parser.error("--bins, --limit and --batch-size must be >= 1")
    decode_config = dataclass_from_args(rcd.DecodeConfig, args)
    residual = dataclass_from_args(rcd.ResidualConfig, args, prefix=RES_PREFIX)
    if residual.feedback != "self":
        parser.error("--res-feedback reference has no self-loop to measure: drop it")
    model, tokenizer = rcd.load(args.model, device=args.device)
    reference = rcd.load(args.reference, device=args.device)[0]
    prompts = [row["prompt"] for row in read_jsonl(args.data)][: args.limit]
    summary = measure(model, reference, tokenizer, prompts, decode_config, residual, args.batch_size).summary(
        args.bins
    )
    print(f"{summary['count']} fed positions, mean KL(reference || self) {summary['mean_kl']:.4f} nats")
    for row in summary["by_entropy_bin"]:
        print(
            f"  entropy [{row['entropy_from']:.2f}, {row['entropy_to']:.2f}): {row['count']:>7}  {row['mean_kl']:.4f}"
        )
    for row in summary["by_step"]:
        print(f"  step {row['step']:>3}: {row['count']:>7}  {row['mean_kl']:.4f}")
    if args.json:
        args.json.write_text(json.dumps({"command": argv, **summary}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
