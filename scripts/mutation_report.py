"""Summarise a finished `mutmut run` as Markdown: score per module, then every surviving mutant's diff.

Run by `make mutate` (from the repository root, after mutmut); prints the report to stdout.
"""

from __future__ import annotations

import collections
import re
import subprocess
import sys
from pathlib import Path

MUTMUT = str(Path(sys.executable).with_name("mutmut"))
KILLED = ("killed", "timeout")  # a mutant that hangs the tests is caught too
LINE = re.compile(r"^\s*(\S+): (.+)$")


def mutant_statuses() -> dict[str, str]:
    out = subprocess.run(
        [MUTMUT, "results", "--all", "true"], capture_output=True, text=True, check=True
    ).stdout
    return {m.group(1): m.group(2).strip() for m in map(LINE.match, out.splitlines()) if m}


def module_of(name: str) -> str:
    return name.split(".x")[0].split(".xǁ")[0]


def main() -> int:
    statuses = mutant_statuses()
    if not statuses:
        print("no mutmut results: run `mutmut run` first", file=sys.stderr)
        return 1
    by_module: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for name, status in statuses.items():
        by_module[module_of(name)][status] += 1
    total = collections.Counter(statuses.values())
    killed = sum(total[s] for s in KILLED)
    print("# Mutation report (mutmut, `make mutate`)\n")
    print(
        f"Score: {killed}/{len(statuses)} mutants killed = {killed / len(statuses):.1%} "
        f"(timeouts count as killed; 'no tests': no selected test runs the function).\n"
    )
    print("| module | mutants | killed | survived | no tests | timeout |")
    print("|---|---|---|---|---|---|")
    for module, c in sorted(by_module.items()):
        print(
            f"| {module} | {sum(c.values())} | {c['killed']} | {c['survived']} | {c['no tests']} | {c['timeout']} |"
        )
    print("\n## Surviving mutants\n")
    for name, status in statuses.items():
        if status in ("survived", "no tests"):
            diff = subprocess.run([MUTMUT, "show", name], capture_output=True, text=True).stdout
            body = "\n".join(line for line in diff.splitlines() if line.startswith(("+", "-", "@")))
            print(f"### {name} ({status})\n\n```diff\n{body}\n```\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
