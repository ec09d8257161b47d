"""Data: JSONL files, SFT examples and collation."""

from .jsonl import DataError, read_jsonl, write_jsonl
from .sft import SftCollator, SftExample, load_sft

__all__ = ["DataError", "SftCollator", "SftExample", "load_sft", "read_jsonl", "write_jsonl"]
