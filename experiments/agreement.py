"""Approximate decoding (sparse top-k residual, prefix/dual cache) against exact decoding.

On any trained model and graded JSONL set:

    python -m experiments.agreement --model DIR --data test.jsonl [--task sudoku6] \
        [--reference REF --res-init reference] [--k 8 32 128] [--cache prefix dual] [--seqd] \
        [--gen-length 42 --block-length 42 --threshold 0.9 ...] [--json OUT]

prints, per variant, accuracy with its binomial standard error, the share of generated
tokens equal to exact dense decoding's, and the speed-up (`rcd.eval.agreement.compare`).
`--seqd` decodes without residuals (then only `--cache` variants apply). A variant can
become a default only where its accuracy stays within that noise of the exact one on real
tasks.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import rcd
from rcd.config import RES_PREFIX, add_dataclass_arguments, dataclass_from_args
from rcd.eval.agreement import TOP_K, Variant, compare, top_k_variants
from rcd.eval.evalset import EvalSet


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.agreement",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="trained model directory (save_pretrained format)")
    parser.add_argument("--data", required=True, help="JSONL with a 'prompt' (and 'answer') per line")
    parser.add_argument(
        "--task", default=None, help="grade with rcd.data.SYNTHETIC_TASKS[task] instead of exact answer"
    )
    parser.add_argument("--reference", default=None, help="reference model directory (--res-init reference)")
    parser.add_argument("--k", type=int, nargs="*", default=list(TOP_K), help="top-k residual variants")
    parser.add_argument("--cache", nargs="*", default=[], choices=["prefix", "dual"], help="cache variants")
    parser.add_argument("--seqd", action="store_true", help="decode without residuals (SeqD)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    add_dataclass_arguments(parser.add_argument_group("decoding"), rcd.DecodeConfig, skip=("cache",))
    group = parser.add_argument_group("residual (top-k comes from --k)")
    add_dataclass_arguments(group, rcd.ResidualConfig, prefix=RES_PREFIX, skip=("top_k",))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    model, tokenizer = rcd.load(args.model, device=args.device)
    reference = rcd.load(args.reference, device=args.device)[0] if args.reference else None
    residual = None if args.seqd else dataclass_from_args(rcd.ResidualConfig, args, prefix=RES_PREFIX)
    variants = [Variant(cache=c) for c in args.cache]
    if residual is not None:
        variants = top_k_variants(model, args.k) + variants
    rows = compare(
        model,
        tokenizer,
        EvalSet.from_jsonl(args.data, args.task),
        dataclass_from_args(rcd.DecodeConfig, args),
        residual,
        variants,
        reference,
    )
    for row in rows:
        print(
            f"{row['variant']:>8}: accuracy {row['accuracy']:.3f} ± {row['stderr']:.3f} (n={row['n']}), "
            f"token agreement with exact {row['token_agreement_with_exact']:.3f}, "
            f"{row['seconds']:.1f} s ({row['speedup_vs_exact']:.2f}x)"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
