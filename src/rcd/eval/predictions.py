"""The predictions file: one JSON row per sample, appended and fsynced as it is made.

A run killed at any moment loses at most the row being written: every finished row is on
disk, and a torn last line (no newline, or cut JSON) is ignored on reading and cut off
before appending again. Several processes never append to one file (O_APPEND is not atomic
on every filesystem: on some, two appends land at one offset and a row is lost): each rank
writes its own part file, which the main process folds into the predictions file.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ..data.jsonl import cut_torn_tail, read_rows


class RowWriter:
    """Appends rows durably: whole rows, one fsync per row.

    A write that fails (a full disk: ENOSPC) cuts its partial row off again and raises an
    OSError naming the file; every earlier row stays as it was.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, row: dict) -> None:
        data = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
        end = os.lseek(self.fd, 0, os.SEEK_END)
        try:
            written = 0
            while written < len(data):  # a short write (the disk filling up) writes the rest again
                written += os.write(self.fd, data[written:])
            os.fsync(self.fd)
        except OSError as err:
            os.ftruncate(self.fd, end)
            raise OSError(
                f"could not append a row to {self.path} ({err.strerror or err}); its earlier rows are "
                "intact: free space and rerun the same command to continue"
            ) from err

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def fold_parts(path: str | Path, parts: str | Path) -> None:
    """Move the rows of every part file in folder `parts` into `path`, then remove the parts.

    Safe to repeat after an interruption: a row already in `path` (same index and sample)
    is not appended again.
    """
    path, parts = Path(path), Path(parts)
    if not parts.is_dir():
        return
    cut_torn_tail(path)
    done = {(r["index"], r["sample"]) for r in read_rows(path)}
    with RowWriter(path) as writer:
        for part in sorted(parts.glob("*.jsonl")):
            for row in read_rows(part):
                if (row["index"], row["sample"]) not in done:
                    writer.write(row)
                    done.add((row["index"], row["sample"]))
    shutil.rmtree(parts)
