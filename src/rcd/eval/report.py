"""Reports of a sweep: report.json / report.md / pareto.png (one writer for `rcd demo` and
`rcd sweep`), the markdown table, the accuracy-vs-parallelism plot, a trace picture."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..decode.output import TraceStep  # noqa: E402
from .sweep import accuracy_stderr  # noqa: E402


def markdown_table(
    curves: Mapping[str, Sequence[dict]],
    note: Callable[[str, dict], str] | None = None,
    stderr: bool = False,
) -> str:
    """One row per setting; per method 'accuracy % @ tokens/step' (with stderr: 'accuracy ± its
    standard error %', from the point's n) (+ `note(method, point)`)."""
    names = list(curves)
    settings = list(dict.fromkeys(p["setting"] for pts in curves.values() for p in pts))
    lines = ["| setting | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for setting in settings:
        cells = []
        for name in names:
            point = next((p for p in curves[name] if p["setting"] == setting), None)
            cell = "" if point is None else f"{_accuracy(point, stderr)} @ {point['tokens_per_step']:.2f}"
            cells.append(cell + (note(name, point) if note and point else ""))
        lines.append(f"| {setting} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _accuracy(point: dict, stderr: bool) -> str:
    if not stderr:
        return f"{100 * point['accuracy']:.1f}%"
    return f"{100 * point['accuracy']:.1f} ± {100 * accuracy_stderr(point['accuracy'], point['n']):.1f}%"


def _problems(curves: Mapping[str, Sequence[dict]]) -> str:
    return " / ".join(str(n) for n in sorted({p["n"] for points in curves.values() for p in points}))


def pareto_plot(curves: Mapping[str, Sequence[dict]], path: str | Path, title: str = "") -> None:
    """Accuracy vs tokens per forward pass; per method, fixed schedules (o, solid) and thresholds (^, dashed)."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, points in curves.items():
        color = None
        for is_threshold, marker, style in ((False, "o", "-"), (True, "^", "--")):
            pts = sorted(
                (p for p in points if (p["rule"] == "threshold") == is_threshold),
                key=lambda p: p["tokens_per_step"],
            )
            if not pts:
                continue
            x = [p["tokens_per_step"] for p in pts]
            y = [100 * p["accuracy"] for p in pts]
            (line,) = ax.plot(
                x, y, style, marker=marker, color=color, alpha=0.8, label=None if color else name
            )
            color = line.get_color()
    ax.set_xscale("log", base=2)
    ax.set_xlabel("tokens per forward pass (every pass counted)")
    ax.set_ylabel("exact-match accuracy (%)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(title="o/solid: fixed schedule, ^/dashed: threshold", fontsize=8, title_fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# what a trace picture (and the playground page) shades a still-masked position by: the alpha fed
# back where it varies across positions; where it does not (SeqD's 0, a fixed alpha) the colour
# would be flat, so the model's confidence instead
SHADES = {
    "alpha": ("Oranges", "alpha fed into this step"),
    "confidence": ("Blues", "confidence (alpha constant)"),
}
FLAT = 1e-6


def shaded_quantity(trace: Sequence[TraceStep], row: int = 0) -> str:
    """'alpha' if the alpha fed back differs between the masked positions of some step, else 'confidence'."""
    for step in trace:
        alpha = step.alpha[row]
        alpha = alpha[~alpha.isnan()]
        if alpha.numel() > 1 and float(alpha.max() - alpha.min()) > FLAT:
            return "alpha"
    return "confidence"


def trace_plot(
    traces: Mapping[str, Sequence[TraceStep]], path: str | Path, row: int = 0, title: str = ""
) -> None:
    """Per method: the shade of each still-masked position at every step, and the step that committed it (x).

    The picture of the method at a glance: RCD feeds uncertain positions back with high alpha
    until they are committed; where alpha is the same everywhere (SeqD, a fixed alpha) the
    colour is the confidence of the prediction instead (`shaded_quantity`).
    """
    fig, axes = plt.subplots(1, len(traces), figsize=(5 * len(traces), 4), squeeze=False)
    for ax, (name, trace) in zip(axes[0], traces.items()):
        quantity = shaded_quantity(trace, row)
        cmap, label = SHADES[quantity]
        starts = sorted({s.block_start for s in trace})
        width = trace[0].alpha.shape[1]
        offset = {start: i * width for i, start in enumerate(starts)}
        length = width * len(starts)
        shade = np.full((len(trace), length), np.nan)
        for t, step in enumerate(trace):
            cols = slice(offset[step.block_start], offset[step.block_start] + width)
            shade[t, cols] = getattr(step, quantity)[row].numpy()
        image = ax.imshow(shade, aspect="auto", cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        for t, step in enumerate(trace):
            cols = np.nonzero(step.committed[row].numpy())[0] + offset[step.block_start]
            ax.plot(cols, [t] * len(cols), "x", color="red", markersize=5)
        ax.set_xlabel("generated position")
        ax.set_ylabel("denoising step (forward pass)")
        ax.set_title(f"{name}: {len(trace)} steps")
        fig.colorbar(image, ax=ax, label=label)
    fig.suptitle(
        title or "red x: committed at this step; colour: alpha fed back (confidence where alpha is flat)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(report: dict[str, Any], out: Path, title: str | None = None) -> None:
    """OUT/report.json, OUT/pareto.png and OUT/report.md of a sweep (with its training table, if any).

    report: task, curves ({method: [point, ...]}), training ({stage: summary figures}),
    decoding, config, device and total_seconds.
    """
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    pareto_plot(report["curves"], out / "pareto.png", title=f"{report['task']}: accuracy vs tokens per step")
    lines = [
        f"# {title or 'rcd: ' + report['task']}",
        "",
        "Exact-match accuracy ± its standard error (sqrt(p(1-p)/n), n = "
        f"{_problems(report['curves'])} held-out problems) @ tokens per forward pass "
        "(every pass counted, warm-start passes included).",
        "",
        markdown_table(report["curves"], stderr=True),
        "",
    ]
    if report["training"]:
        lines += [
            "| stage | steps | seconds | tokens/s | final loss | held-out loss |",
            "|---|---|---|---|---|---|",
        ]
        for name, s in report["training"].items():
            lines.append(
                f"| {name} | {s['steps']} | {s['train_seconds']:.0f} | {s['tokens_per_second']:.0f} | "
                f"{s['final_loss']:.4f} | {s['eval_loss']:.4f} |"
            )
        lines.append("")
    lines += [f"Total: {report['total_seconds']:.0f} s on {report['device']}.", ""]
    (out / "report.md").write_text("\n".join(lines))
