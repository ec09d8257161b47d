"""Recompute a study report's intervals from the per-seed figures it prints (issue #32).

    python -m experiments.recompute experiments/reports/study-report.md [more]   # rewritten in place

The reports in experiments/reports/ were written with a percentile bootstrap CI that is too
narrow with 3-8 seeds, and their per-problem records were not kept. Each printed comparison row lists its
per-seed differences (0.1-point rounding), and each accuracy table its per-seed accuracies, so
the study's reported interval (`seed_t_interval`: a t-interval over the per-seed differences)
can be recomputed from the markdown alone. Rows are rewritten in the study's current format
(`comparison_line`), the old bootstrap CI kept in its column; SeqD baselines gain a row at
equal forward passes, interpolated per seed from the accuracy table (no cells right, and the
bootstrap's width borrowed from the equal-steps row: those need the records); the bars' lines and the section's count of
comparisons follow. Running it again on its own output changes nothing.
"""

from __future__ import annotations

import argparse
import itertools
import re
from pathlib import Path

import numpy as np

from .study import (
    COMPARISON_HEADER,
    COMPARISON_TITLE,
    EQUAL_PASS_BASELINES,
    ci_text,
    compared_at,
    comparison_line,
    multiplicity_note,
    seed_t_interval,
)

NOTE = (
    "Recomputed by `python -m experiments.recompute` (issue #32) from the per-seed differences printed in "
    "this report (rounded to 0.1 point; the per-problem records were not kept): the CI is a t-interval "
    "over them, the bootstrap column is the report's original CI. Rows at equal passes interpolate the "
    "baseline's per-seed accuracies of the table above; their bootstrap column is the equal-steps row's, "
    "moved to their mean (an approximation: their own needs the per-problem records)."
)
NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")


def cells_of(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def numbers(text: str) -> list[float]:
    return [float(x) / 100 for x in NUMBER.findall(text)]


def interval(diff: float, per_seed: list[float], boot: list[float] | None) -> dict:
    """The study's interval centred on the printed mean (the per-seed figures are rounded)."""
    lo, hi = seed_t_interval(per_seed)
    shift = diff - float(np.mean(per_seed))
    return {
        "diff": diff,
        "lo": None if lo is None else lo + shift,
        "hi": None if hi is None else hi + shift,
        "boot_lo": boot[0] if boot else None,
        "boot_hi": boot[1] if boot else None,
        "per_seed": per_seed,
    }


def parse_comparison(line: str) -> dict | None:
    """A comparison row of either format (old: 8 columns; current: 10); None for a derived
    equal-passes row (it is made again)."""
    cols = cells_of(line)
    if len(cols) == 8:
        base, new, setting, tokens, exact, cells, per_seed, why = cols
        at, boot = compared_at(setting), numbers(exact)[1:3]
    else:
        base, new, setting, at, tokens, exact, boot_text, cells, per_seed, why = cols
        boot = numbers(boot_text) or None
        if at == "equal passes":
            return None
    if "calibrated" in setting:
        at = "calibrated tau"
    exact_seeds, _, cell_seeds = per_seed.partition(";")
    row = {
        "base": base,
        "new": new,
        "setting": setting,
        "at": at,
        "why": why,
        "tokens_per_step": [float(x) for x in tokens.split(",")],
        "correct": interval(numbers(exact)[0], numbers(exact_seeds), boot),
    }
    row["cells"] = (
        interval(numbers(cells)[0], numbers(cell_seeds), numbers(cells)[1:3] if len(cols) == 8 else None)
        if cell_seeds.strip()
        else None
    )
    if row["cells"] and len(cols) == 10:  # the current format's cells column holds no bootstrap
        row["cells"]["boot_lo"] = row["cells"]["boot_hi"] = None
    return row


def equal_passes(row: dict, accuracy: dict[str, dict[str, dict]]) -> dict | None:
    """The row's baseline interpolated to the challenger's tokens per pass (linear in log tokens per
    pass between the two fixed schedules that bracket it), per seed from the accuracy table.
    Seeds pair by position: a method decoded on fewer seeds has the first ones (as in every report)."""
    if row["base"] not in EQUAL_PASS_BASELINES or row["at"] != "equal steps" or " " in row["setting"]:
        return None
    base_tokens, new_tokens = row["tokens_per_step"]
    new = accuracy.get(row["new"], {}).get(row["setting"])
    if new is None or abs(base_tokens / new_tokens - 1) <= 0.01:
        return None
    fixed = sorted(
        (p["tokens"], p["per_seed"])
        for s, p in accuracy.get(row["base"], {}).items()
        if s.startswith("steps=") and " " not in s
    )
    for (x0, a0), (x1, a1) in itertools.pairwise(fixed):
        if x0 <= new_tokens <= x1:
            w = float(np.log(new_tokens / x0) / np.log(x1 / x0))
            n = min(len(a0), len(a1), len(new["per_seed"]))
            diffs = [new["per_seed"][i] - ((1 - w) * a0[i] + w * a1[i]) for i in range(n)]
            diff, steps = float(np.mean(diffs)), row["correct"]
            boot = (
                None
                if steps["boot_lo"] is None
                else [x + diff - steps["diff"] for x in (steps["boot_lo"], steps["boot_hi"])]
            )
            return {
                **row,
                "at": "equal passes",
                "setting": f"{row['setting']} vs {row['base']} interpolated",
                "tokens_per_step": [new_tokens, new_tokens],
                "cells": None,
                "correct": interval(diff, diffs, boot),
            }
    return None


def recompute(text: str) -> str:
    """The report with every comparison section and bar line rewritten (see the module doc)."""
    lines, out, i = text.splitlines(), [], 0
    accuracy: dict[str, dict[str, dict]] = {}
    sections: list[list[dict]] = []
    while i < len(lines):
        line = lines[i]
        if line.startswith("| method | setting | seeds |"):
            accuracy = {}
            out += lines[i : i + 2]
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                method, setting, *_, tokens, per_seed = cells_of(lines[i])
                accuracy.setdefault(method, {})[setting] = {
                    "tokens": float(tokens),
                    "per_seed": numbers(per_seed),
                }
                out.append(lines[i])
                i += 1
            continue
        if line.lstrip("#").startswith(" Paired differences"):
            level = line[: len(line) - len(line.lstrip("#"))]
            i += 1
            while not lines[i].startswith("| baseline |"):  # the old notes, made again below
                i += 1
            i += 2
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                row = parse_comparison(lines[i])
                i += 1
                if row:
                    rows += [row] + ([extra] if (extra := equal_passes(row, accuracy)) else [])
            sections.append(rows)
            out += [
                level + COMPARISON_TITLE.lstrip("#"),
                "",
                NOTE + " " + multiplicity_note(rows),
                "",
                *COMPARISON_HEADER,
                *map(comparison_line, rows),
            ]
            continue
        bar = re.match(r"- (\S+) - SeqD at >= ([\d.]+) tokens per pass \(bar: [^)]*\): ", line)
        if bar and sections:
            name = {"RCD": "rcd"}.get(bar.group(1), bar.group(1))
            parallel = [
                r
                for r in sections[-1]
                if r["base"] == "seqd"
                and r["new"] == name
                and min(r["tokens_per_step"]) >= float(bar.group(2))
            ]
            line = bar.group(0) + (
                "; ".join(f"{r['setting']} ({r['at']}): {ci_text(r['correct'])}" for r in parallel)
                or "no setting"
            )
        out.append(line)
        i += 1
    return "\n".join(out) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.recompute",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("reports", nargs="+", type=Path, help="study reports (markdown), rewritten in place")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    for path in parser.parse_args(argv).reports:
        path.write_text(recompute(path.read_text()))
        print(f"rewrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
