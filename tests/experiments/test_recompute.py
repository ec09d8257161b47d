"""The docs' reports recomputed from their own per-seed figures (issue #32)."""

from __future__ import annotations

import numpy as np

from experiments.recompute import recompute

OLD = """# RCD study: sudoku6

## Accuracy @ tokens per forward pass

| method | setting | seeds | exact match | cells right | tokens/pass | exact match per seed |
|---|---|---|---|---|---|---|
| rcd | steps=12 | 3 | 15.0% | 77.2% | 3.69 | 11.0 / 16.0 / 18.0 |
| seqd | steps=24 | 3 | 27.0% | 80.4% | 2.00 | 20.0 / 30.0 / 31.0 |
| seqd | steps=12 | 3 | 14.0% | 77.6% | 4.00 | 10.0 / 14.0 / 18.0 |

## Paired differences (challenger - baseline), 95% bootstrap CI over seeds and problems

| baseline | challenger | setting | tok/pass (base, new) | exact match diff [CI] | cells diff [CI] | per-seed exact; cells diffs | question |
|---|---|---|---|---|---|---|---|
| seqd | rcd | steps=12 | 4.00, 3.69 |  **+1.0 [+0.2, +1.8]** | -0.4 [-1.7, +0.9] | +1.0 / +2.0 / +0.0; +0.0 / +0.7 / -1.8 | core |
| seqd | rcd | tau=0.9 | 4.43, 4.68 |  **-6.7 [-9.1, -4.5]** | -2.1 [-3.1, -1.2] | -5.6 / -7.1 / -7.3; -1.8 / -1.9 / -2.7 | core |

## The issue's bars (seqd vs rcd)

- RCD - SeqD at >= 4 tokens per pass (bar: >= +5 points, CI above 0): tau=0.9: -6.7 [-9.1, -4.5]
"""


def test_a_report_is_recomputed_from_its_per_seed_figures_and_stays_so():
    new = recompute(OLD)
    rows = {line.split(" | ")[2]: line for line in new.splitlines() if line.startswith("| seqd | rcd |")}
    # t(2) = 4.30: +1.0 +- 4.30 * 1.0 / sqrt(3); no longer bold; the old CI kept as the bootstrap column
    assert "| equal steps | 4.00, 3.69 | +1.0 [-1.5, +3.5] | [+0.2, +1.8] |" in rows["steps=12"]
    assert "| **-6.7 [-9.0, -4.4]** | [-9.1, -4.5] |" in rows["tau=0.9"]
    # SeqD at 3.69 tokens per pass: per seed between its 4.00 and 2.00 points, linear in log tokens per pass
    w = np.log2(3.69 / 2)
    expected = [r - ((1 - w) * s2 + w * s4) for r, s2, s4 in zip((11, 16, 18), (20, 30, 31), (10, 14, 18))]
    passes = rows["steps=12 vs seqd interpolated"]
    assert "| equal passes | 3.69, 3.69 |" in passes and "| n/a |" in passes
    shift = np.mean(expected) - 1.0  # the equal-steps row's bootstrap [+0.2, +1.8], moved to this row's mean
    assert f"| [{0.2 + shift:+.1f}, {1.8 + shift:+.1f}] |" in passes
    assert " / ".join(f"{x:+.1f}" for x in expected) in passes
    assert "3 comparisons of exact match (1 at equal steps, 1 at equal passes" in new
    assert "no multiplicity correction" in new and "Recomputed by" in new
    assert "tau=0.9 (equal tau): -6.7 [-9.0, -4.4]" in new  # the bars follow
    assert recompute(new) == new
