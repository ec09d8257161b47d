"""The residual's train/test alignment on a trained RCD model (rcd.eval.alignment), and
whether it predicts wrong commits (rcd.eval.commit_risk).

    python -m experiments.alignment --model runs/demo/rcd --reference runs/demo/ref \
        --data runs/demo/data/test.jsonl [--skip 0] --limit 200 [--bins 10] \
        [--gen-length 42 --block-length 42 --threshold 0.9 ...] [--res-temperature 0.9 ...] \
        [--temperatures 0.5,1,1.5] [--json OUT] [--plot PNG]

decodes the prompts with RCD's self-loop and, at every residual update, runs the reference
(the model stage rcd trained against) on the sequence being fed; prints the mean
KL(p_reference || p_self) by bin of the self-loop's entropy and by denoising step. Where the
rows have a `response` (one gold token per position, as Sudoku's unique solution), each
commit is linked to the KL of the last residual fed into it: the wrong-commit rate by KL
quantile and the AUC of KL, of the self-loop's entropy and of low confidence as predictors
of a wrong commit. --temperatures decodes once per T_res (else at --res-temperature). The
reference's passes are the instrument's: the decode's tokens and pass counts are unchanged.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch

import rcd
from rcd.config import RES_PREFIX, add_dataclass_arguments, dataclass_from_args
from rcd.data import read_jsonl
from rcd.decode import encode_prompts
from rcd.decode.text import stop_ids
from rcd.eval.alignment import AlignmentRecord, residual_alignment
from rcd.eval.commit_risk import NO_GOLD, CommitLink, link_commits


@dataclass(frozen=True)
class Measurement:
    record: AlignmentRecord  # steps counted within each batch's decode
    commits: CommitLink | None  # None without gold responses
    solved: float | None  # share of problems with every gold position right


def gold_ids(tokenizer, responses: list[str]) -> torch.Tensor:
    """(N, G) gold ids of the responses, NO_GOLD past each one's end."""
    ids = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in responses]
    gold = torch.full((len(ids), max(map(len, ids), default=0)), NO_GOLD, dtype=torch.long)
    for row, tokens in enumerate(ids):
        gold[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
    return gold


def measure(
    model: torch.nn.Module,
    reference: torch.nn.Module,
    tokenizer,
    prompts: list[str],
    decode_config: rcd.DecodeConfig,
    residual: rcd.ResidualConfig,
    batch_size: int = 32,
    responses: list[str] | None = None,
    train_temperature: float = 1.0,
) -> Measurement:
    """Decode all prompts with the probe; link commits to residuals where `responses` are given."""
    stops = stop_ids(tokenizer, model.config) or None
    gold = gold_ids(tokenizer, responses) if responses is not None else None
    records, links, solved = [], [], []
    for start in range(0, len(prompts), batch_size):
        input_ids, attention_mask = encode_prompts(tokenizer, prompts[start : start + batch_size])
        out, record = residual_alignment(
            model,
            reference,
            input_ids,
            decode_config,
            residual=residual,
            train_temperature=train_temperature,
            attention_mask=attention_mask,
            eos_token_id=stops,
            return_trace=gold is not None,
        )
        records.append(record)
        if gold is not None:
            batch_gold = gold[start : start + len(input_ids)]
            links.append(link_commits(record, out.trace, batch_gold))
            width = min(batch_gold.shape[1], out.generated.shape[1])
            right = out.generated[:, :width].cpu() == batch_gold[:, :width]
            solved.append((right | (batch_gold[:, :width] == NO_GOLD)).all(-1))
    record = AlignmentRecord(
        *(torch.cat([getattr(r, f) for r in records]) for f in AlignmentRecord.__dataclass_fields__)
    )
    if gold is None:
        return Measurement(record, None, None)
    return Measurement(record, CommitLink.concat(links), float(torch.cat(solved).double().mean()))


def parse_temperatures(text: str) -> list[float]:
    return [float(t) for t in text.split(",") if t.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.alignment",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="trained RCD model directory")
    parser.add_argument("--reference", required=True, help="the reference it was trained against")
    parser.add_argument(
        "--data",
        required=True,
        help="JSONL with a 'prompt' per line (and a gold 'response' to score commits)",
    )
    parser.add_argument("--skip", type=int, default=0, help="leave out the first N prompts")
    parser.add_argument("--limit", type=int, default=None, help="N prompts only (after --skip)")
    parser.add_argument("--bins", type=int, default=10, help="entropy bins over [0, 1]")
    parser.add_argument("--kl-bins", type=int, default=5, help="KL quantile bins of the wrong-commit table")
    parser.add_argument(
        "--temperatures",
        type=parse_temperatures,
        default=None,
        help="T_res values to decode at in turn, e.g. 0.5,1,1.5 (default: --res-temperature)",
    )
    parser.add_argument(
        "--train-temperature",
        type=float,
        default=1.0,
        help="the T_res stage rcd trained at: the reference's temperature in the trained-on KL",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, default=None, help="also write the tables here")
    parser.add_argument(
        "--plot", type=Path, default=None, help="KL by entropy bin and by step, a line per T_res"
    )
    add_dataclass_arguments(parser.add_argument_group("decoding"), rcd.DecodeConfig)
    add_dataclass_arguments(parser.add_argument_group("residual"), rcd.ResidualConfig, prefix=RES_PREFIX)
    return parser


def print_run(run: dict) -> None:
    print(
        f"T_res {run['res_temperature']}: {run['count']} fed positions, mean KL(reference || self) "
        f"{run['mean_kl']:.4f} nats at T_res, {run['mean_kl_trained']:.4f} to the trained-on reference"
    )
    for row in run["by_entropy_bin"]:
        where = f"entropy [{row['entropy_from']:.2f}, {row['entropy_to']:.2f})"
        print(f"  {where}: {row['count']:>7}  {row['mean_kl']:.4f}  {row['mean_kl_trained']:.4f}")
    for row in run["by_step"]:
        print(
            f"  step {row['step']:>3}: {row['count']:>7}  {row['mean_kl']:.4f}  {row['mean_kl_trained']:.4f}"
        )
    commits = run.get("commits")
    if commits is None:
        return
    print(
        f"  solved {run['solved']:.3f}; {commits['commits']} scored commits, {commits['fed_commits']} fed a "
        f"residual: wrong {commits['wrong_rate_fed']:.4f} (unfed: {commits['wrong_rate_unfed']:.4f})"
    )
    for row in commits["by_kl_quantile"]:
        print(
            f"  KL ({row['kl_from']:.4g}, {row['kl_to']:.4g}]: {row['count']:>7}  wrong {row['wrong_rate']:.4f}"
        )
    print("  AUC for a wrong commit: " + ", ".join(f"{k} {v:.3f}" for k, v in commits["auc"].items()))


PLOT_MIN_COUNT = 30  # a point of the picture averages at least this many fed positions (the tables show all)


def plot(runs: list[dict], path: Path) -> None:
    """Mean KL by entropy bin and by step, a colour per T_res: solid, to the trained-on reference
    (the training temperature); dashed, both at T_res."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_bin, by_step) = plt.subplots(1, 2, figsize=(11, 4.2))
    for run, colour in zip(runs, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4):
        bins = [b for b in run["by_entropy_bin"] if b["count"] >= PLOT_MIN_COUNT]
        by_steps = [s for s in run["by_step"] if s["count"] >= PLOT_MIN_COUNT]
        centres = [(b["entropy_from"] + b["entropy_to"]) / 2 for b in bins]
        steps = [s["step"] for s in by_steps]
        label = f"T_res {run['res_temperature']:g} (mean {run['mean_kl_trained']:.3f} / {run['mean_kl']:.3f})"
        by_bin.plot(centres, [b["mean_kl_trained"] for b in bins], "o-", color=colour, label=label)
        by_bin.plot(centres, [b["mean_kl"] for b in bins], "--", color=colour, alpha=0.6)
        by_step.plot(steps, [s["mean_kl_trained"] for s in by_steps], "o-", color=colour, label=label)
        by_step.plot(steps, [s["mean_kl"] for s in by_steps], "--", color=colour, alpha=0.6)
    by_bin.set(xlabel="self-loop entropy H(p_self)/log V at T_res (bin centre)", ylabel="mean KL, nats")
    by_step.set(xlabel="residual update (denoising step)", ylabel="mean KL, nats")
    by_bin.set_title("KL(p_ref || p_self): solid, p_ref at the training T; dashed, at T_res", fontsize=9)
    by_step.set_title(f"points of >= {PLOT_MIN_COUNT} fed positions; legend: mean solid / dashed", fontsize=9)
    for axes in (by_bin, by_step):
        axes.set_yscale("log")
        axes.grid(alpha=0.3)
    by_step.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if min(args.bins, args.kl_bins, args.batch_size, args.limit or 1) < 1 or args.skip < 0:
        parser.error("--bins, --kl-bins, --limit and --batch-size must be >= 1, --skip >= 0")
    if not args.train_temperature > 0:
        parser.error("--train-temperature must be > 0 (the T_res stage rcd trained at, 1 by default)")
    decode_config = dataclass_from_args(rcd.DecodeConfig, args)
    residual = dataclass_from_args(rcd.ResidualConfig, args, prefix=RES_PREFIX)
    if residual.feedback != "self":
        parser.error("--res-feedback reference has no self-loop to measure: drop it")
    try:
        residuals = [replace(residual, temperature=t) for t in args.temperatures or [residual.temperature]]
    except ValueError as error:
        parser.error(f"--temperatures: {error}")
    model, tokenizer = rcd.load(args.model, device=args.device)
    reference = rcd.load(args.reference, device=args.device)[0]
    rows = read_jsonl(args.data)[args.skip :][: args.limit]
    prompts = [row["prompt"] for row in rows]
    responses = [row["response"] for row in rows] if all("response" in row for row in rows) else None
    runs = []
    for each in residuals:
        result = measure(
            model,
            reference,
            tokenizer,
            prompts,
            decode_config,
            each,
            args.batch_size,
            responses,
            args.train_temperature,
        )
        run = {
            "res_temperature": each.temperature,
            "problems": len(prompts),
            **result.record.summary(args.bins),
        }
        if result.commits is not None:
            run |= {"solved": result.solved, "commits": result.commits.summary(args.kl_bins)}
        print_run(run)
        runs.append(run)
    if args.json:
        args.json.write_text(json.dumps({"command": argv, "runs": runs}, indent=2) + "\n")
    if args.plot:
        plot(runs, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
