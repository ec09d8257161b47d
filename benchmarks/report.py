"""The markdown summary of a benchmark run (the JSON holds every figure)."""

from __future__ import annotations

STAGES = ("seqd", "rcd", "rcd (source self)", "rcd, 2 epochs", "rcd, 2 epochs, cached reference")


def _f(x, digits: int = 2) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "NO"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_f(c) for c in row) + " |" for row in rows]
    return lines + [""]


def markdown(results: dict) -> str:
    m = results["machine"]
    out = [
        f"# rcd benchmark ({'quick' if results['quick'] else 'full'}, {results['device']})",
        "",
        f"`{results['command']}` on {m['cpu']} ({m['cpu_cores']} cores, {m['torch_threads']} torch threads)"
        + (f", {m['gpu']}" if "gpu" in m else "")
        + f", torch {m['torch']}; load average at start {_f(m['load_average_at_start'][0])}, "
        f"run took {results['seconds']:.0f} s. "
        "Ratios, not absolute times, are the point: this machine is shared.",
        "",
    ]
    sections = results["sections"]
    if "decode" in sections:
        out += [
            "## SeqD vs RCD per decode step (tiny demo models)",
            "",
            "Median interval between forward passes (one full step); same prompts, same fixed schedule.",
            "",
        ]
        out += _table(
            [
                "attention",
                "model",
                "batch",
                "SeqD ms/step",
                "RCD ms/step",
                "RCD/SeqD",
                "SeqD tok/s",
                "RCD tok/s",
                "passes",
            ],
            [
                [
                    r["attention"],
                    r["model"],
                    r["batch"],
                    r["seqd"]["step_ms"],
                    r["rcd"]["step_ms"],
                    f"**{r['rcd_over_seqd_step']:.3f}**",
                    r["seqd"]["tokens_per_s"],
                    r["rcd"]["tokens_per_s"],
                    r["rcd"]["forward_passes"],
                ]
                for r in sections["decode"]
            ],
        )
    if "shapes" in sections:
        out += [
            "## Residual cost at real shapes (forward estimated from one measured layer)",
            "",
            (
                "RCD/SeqD per-step time = (forward + commit + residual) / (forward + commit), "
                "all block positions masked (worst case)."
            ),
            "",
        ]
        rows = sections["shapes"]
        kinds = list(rows[0]["rcd"])
        out += _table(
            [
                "shape",
                "block",
                "batch",
                "forward est. ms",
                *[f"RCD/SeqD {k}" for k in kinds],
                *[f"extra ms {k}" for k in kinds],
            ],
            [
                [
                    r["shape"],
                    r["block_length"],
                    r["batch"],
                    r["forward_estimate_ms"],
                    *[f"{r['rcd'][k]['rcd_over_seqd_step']:.3f}" for k in kinds],
                    *[r["rcd"][k]["extra_ms"] for k in kinds],
                ]
                for r in rows
            ],
        )
        out += _table(
            [
                "shape",
                "block",
                "batch",
                "softmax+entr ms",
                "fused ms",
                "softmax+entr peak MB",
                "fused peak MB",
                "residual peak MB dense / top32",
            ],
            [
                [
                    r["shape"],
                    r["block_length"],
                    r["batch"],
                    r["entropy"]["softmax+entr"]["ms"],
                    r["entropy"]["fused"]["ms"],
                    r["entropy"]["softmax+entr"]["peak_memory_mb"],
                    r["entropy"]["fused"]["peak_memory_mb"],
                    " / ".join(_f(r["rcd"][k]["peak_memory_mb"], 0) for k in ("dense", "top32")),
                ]
                for r in rows
            ],
        )
    if "kv-cache" in sections:
        out += ["## Block-causal KV cache vs recomputing the prefix", ""]
        out += _table(
            ["model", "generated", "passes", "cached s", "recompute s", "speedup", "identical tokens"],
            [
                [
                    r["model"],
                    r["gen_length"],
                    r["forward_passes"],
                    r["cached_s"],
                    r["recompute_s"],
                    f"**{r['speedup']:.1f}x**",
                    r["identical_tokens"],
                ]
                for r in sections["kv-cache"]
            ],
        )
    if "approx-cache" in sections:
        out += ["## Prefix / dual cache (bidirectional): speed and drift from exact decoding", ""]
        out += _table(
            ["setting", "decoding", "cache", "seconds", "speedup", "token agreement with exact", "accuracy"],
            [
                [
                    r["model"],
                    r["decoding"],
                    r["variant"],
                    r["seconds"],
                    r["speedup_vs_exact"],
                    r["token_agreement_with_exact"],
                    f"{r['accuracy']:.3f} ± {r['stderr']:.3f}" if "accuracy" in r else "n/a",
                ]
                for r in sections["approx-cache"]
            ],
        )
    if "top-k" in sections:
        out += ["## Sparse top-k residual vs dense", ""]
        topk = sections["top-k"]
        error_rows = []
        for part in ("random", "trained"):
            if part in topk:
                for k, e in topk[part]["delta_error"].items():
                    error_rows.append(
                        [
                            topk[part]["model"],
                            k,
                            e["max_rel_error"],
                            e["mean_rel_error"],
                            e["mean_top_k_mass"],
                        ]
                    )
        out += _table(
            ["model", "k", "max rel. Delta error", "mean rel. Delta error", "mean top-k mass"],
            [[a, b, _f(c, 4), _f(d, 4), _f(e, 4)] for a, b, c, d, e in error_rows],
        )
        decode_rows = [
            [topk["random"]["model"], r["variant"], r["token_agreement_with_exact"], "n/a"]
            for r in topk["random"]["decoding"]
        ]
        if "trained" in topk:
            decode_rows += [
                [
                    topk["trained"]["model"],
                    r["variant"],
                    r["token_agreement_with_exact"],
                    f"{r['accuracy']:.3f} ± {r['stderr']:.3f}",
                ]
                for r in topk["trained"]["decoding"]
            ]
        out += _table(["model", "variant", "token agreement with dense exact", "accuracy"], decode_rows)
    if "training" in sections:
        t = sections["training"]
        out += [
            (
                f"## Training throughput, stage seqd vs rcd ({t['task']}, {t['model']}, "
                f"batch {t['batch_size']}, {t['steps']} steps after a {t['reference_steps']}-step reference, "
                f"{t['device']})"
            ),
            "",
        ]
        out += _table(
            ["stage", "tokens/s", "ms/step", "final loss"],
            [[s, t[s]["tokens_per_s"], t[s]["step_ms"], t[s]["final_loss"]] for s in STAGES if s in t],
        )
        out += [f"rcd / seqd tokens/s: **{t['rcd_over_seqd_tokens_per_s']:.3f}**", ""]
        if "cached_over_uncached_tokens_per_s" in t:
            out += [
                "cached / uncached reference, stage rcd over 2 epochs (the 2nd from the cache): "
                f"**{t['cached_over_uncached_tokens_per_s']:.3f}** x tokens/s",
                "",
            ]
    if "memory" in sections:
        mem = sections["memory"]
        out += [
            f"## Training memory, stage seqd vs rcd, activation checkpointing off/on ({mem['model']}, "
            f"batch {mem['batch_size']}, responses of {mem['response_length']} tokens, {mem['steps']} steps, "
            f"{mem['device']})",
            "",
            f"Peak growth while training, above the memory held after setup: {mem['method']}; "
            "one fresh process per row.",
            "",
        ]
        out += _table(
            ["stage", "checkpointing", "training peak MiB", "tokens/s", "final loss"],
            [
                [
                    r["stage"],
                    "on" if r["gradient_checkpointing"] else "off",
                    r["training_peak_mb"],
                    r["tokens_per_s"],
                    r["final_loss"],
                ]
                for r in mem["rows"]
            ],
        )
        out += [
            f"checkpointing on/off, {stage}: memory **{_f(mem.get(f'{stage}_checkpointing_memory_ratio'), 3)}**, "
            f"tokens/s **{_f(mem[f'{stage}_checkpointing_tokens_per_s_ratio'], 3)}**; "
            for stage in ("seqd", "rcd")
        ]
        out += [f"rcd / seqd memory (checkpointing off): **{_f(mem.get('rcd_over_seqd_memory'), 3)}**", ""]
    if "serving" in sections:
        serving = sections["serving"]
        d, o = serving["decoding"], serving["overhead_vs_offline"]
        out += [
            "## `rcd serve` under load (tiny model, CPU)",
            "",
            (
                f"RCD, gen_length {d['gen_length']}, block {d['block_length']}, {d['steps']} steps; clients are "
                "threads posting /v1/completions one request after another."
            ),
            "",
        ]
        out += _table(
            ["clients", "requests", "requests/s", "tokens/s (generated)", "p50 s", "p99 s"],
            [
                [
                    r["clients"],
                    r["requests"],
                    r["requests_per_s"],
                    r["generated_tokens_per_s"],
                    r["p50_s"],
                    r["p99_s"],
                ]
                for r in serving["load"]
            ],
        )
        one = o["overhead_one_batch_waves"]
        out += [
            (
                f"16 concurrent requests vs offline `rcd.generate` on the same 16 prompts: "
                f"{_f(o['served_s'], 3)} s vs {_f(o['offline_s'], 3)} s, overhead **{100 * o['overhead']:.0f}%** "
                f"({_f(o['server_batches_per_wave'])} server batches per wave of 16; over the "
                f"{o['one_batch_waves']} waves decoded as one batch: "
                f"{'n/a' if one is None else f'{100 * one:.0f}%'})"
            ),
            "",
        ]
    return "\n".join(out)
