"""Benchmarks of rcd's decoding and training cost: `python -m benchmarks [--quick]`."""
