"""Errors the command line reports as one line: usage errors exit with 2, failures with 1."""

from __future__ import annotations


class UsageError(ValueError):
    """A bad option or combination of options (exit code 2): the fix is in the command."""
