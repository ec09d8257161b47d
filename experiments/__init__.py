"""The research around rcd: studies, their arms and comparisons, and what they found.

Each driver is a command (`python -m experiments.study`, `.scale`, ...; experiments/README.md).
It may import `rcd` (any room but `cli`); `rcd` and `benchmarks` never import it.
"""
