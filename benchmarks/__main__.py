"""Run the decoding / training cost benchmarks and write JSON + markdown.

    python -m benchmarks            # full run, < 10 minutes on a 2-core CPU
    python -m benchmarks --quick    # a smaller run (~1 minute)

Results go to OUT/<device>[-quick].json and .md (default OUT: benchmarks/results).
Sections: training (also trains the small models other sections decode), memory (peak
training memory of seqd vs rcd, with and without activation checkpointing), decode (SeqD vs
RCD per step on tiny demo models), shapes (the residual at real vocabulary/width),
kv-cache (block-causal), approx-cache (prefix/dual on bidirectional), top-k, serving (`rcd serve`
under 1/4/16 concurrent clients, overhead vs offline decoding; CPU). What top-k and the caches
cost in accuracy on the trained `rcd demo` models: `python -m experiments.demo_accuracy`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import bidir_cache, kv_cache, memory, real_shapes, serving, tiny_decode, topk, training
from .measure import machine, pick_device
from .report import markdown

SECTIONS = ("training", "memory", "decode", "shapes", "kv-cache", "approx-cache", "top-k", "serving")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller shapes and fewer repeats")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads for torch (default 1: on a shared machine, several threads stall each other "
        "and the timings scatter; 0 keeps torch's default)",
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    device = pick_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    started = time.perf_counter()
    results = {
        "command": ("python -m benchmarks " + shlex.join(sys.argv[1:] if argv is None else argv)).strip(),
        "quick": args.quick,
        "device": device.type,
        "machine": machine(),
        "sections": {},
        "section_seconds": {},
    }
    trained = None
    with tempfile.TemporaryDirectory(prefix="rcd-bench-") as work:
        for section in tqdm(args.sections, desc="benchmark sections"):
            sections = results["sections"]
            section_start = time.perf_counter()
            if section == "training":
                sections[section], trained = training.run(Path(work), args.quick)
            elif section == "memory":
                sections[section] = memory.run(Path(work), args.quick, args.threads)
            elif section == "decode":
                sections[section] = tiny_decode.run(device, args.quick)
            elif section == "shapes":
                sections[section] = real_shapes.run(device, args.quick)
            elif section == "kv-cache":
                sections[section] = kv_cache.run(device, args.quick)
            elif section == "approx-cache":
                sections[section] = bidir_cache.run(device, args.quick, trained)
            elif section == "top-k":
                sections[section] = topk.run(device, args.quick, trained)
            elif section == "serving":
                sections[section] = serving.run(args.quick, args.threads)
            results["section_seconds"][section] = time.perf_counter() - section_start
    results["seconds"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / (device.type + ("-quick" if args.quick else ""))
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(results))
    print(f"wrote {stem}.json and {stem}.md ({results['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
