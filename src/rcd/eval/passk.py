"""The unbiased pass@k estimator (Chen et al., 2021, "Evaluating Large Language Models
Trained on Code"), for `rcd eval --n-samples n`.

With n samples of a problem of which c are correct, the probability that at least one of
k samples drawn without replacement from those n is correct is
    pass@k = 1 - C(n - c, k) / C(n, k),
computed as the product 1 - prod_{i = n - c + 1}^{n} (1 - k / i), which stays exact in
floating point for large n. A benchmark's pass@k is the mean over problems. pass@1 is the
fraction of correct samples (AIME's "16 samples, pass@1" of the paper).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable


def pass_at_k(n: int, c: int, k: int) -> float:
    """pass@k of one problem with n samples, c of them correct (1 <= k <= n)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    product = 1.0
    for i in range(n - c + 1, n + 1):
        product *= 1.0 - k / i
    return 1.0 - product


def pass_at_k_table(rows: Iterable[dict]) -> dict[str, float]:
    """{"pass@1": ..., ..., "pass@K"} over graded rows (`index`, `correct`), K = fewest samples of a problem."""
    counts: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        counts[row["index"]][0] += 1
        counts[row["index"]][1] += bool(row["correct"])
    if not counts:
        return {}
    most = min(n for n, _ in counts.values())
    return {
        f"pass@{k}": sum(pass_at_k(n, c, k) for n, c in counts.values()) / len(counts)
        for k in range(1, most + 1)
    }
