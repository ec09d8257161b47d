"""Run directories that cannot mix: an options record with input fingerprints, and a lock.

Every command that writes into an `--out` (train, eval, demo) records there the options that
made the run and a fingerprint of each input (model, reference, data, tokenizer): a file by
the SHA-256 of its content, a model directory by the hashes of its weight, config and
tokenizer files, a preset or hub name by the name itself. Paths are resolved, so an absolute
spelling of the same model is the same input and new weights at the same path are not.

A rerun continues the run only when its record is the same; otherwise it is refused with
one line naming what differs and the fix (`--out` elsewhere, or `--overwrite`). The record
is written once the run really starts (`RunDir.record`), so a failed start (a typo'd path)
leaves nothing that blocks the corrected rerun.

The lock follows git's lock files: `OUT/.rcd.lock` is created with O_EXCL and holds the
owner's pid and host; a lock whose process is gone (same host) is taken over.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import UsageError

OPTIONS_FILE = "options.json"
LOCK_FILE = ".rcd.lock"
# files of a model directory that make the model (weights, config, tokenizer, code)
_MODEL_SUFFIXES = (".safetensors", ".bin", ".json", ".model", ".txt", ".py", ".jinja", ".tiktoken")
# records of runs that may sit in a model directory and are not part of the model
_RUN_RECORDS = {OPTIONS_FILE, "train_summary.json", "summary.json", "trainer_state.json", "report.json"}
_HASHES: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256, per process


class RunMismatchError(UsageError):
    """`--out` holds a run of other options or inputs."""


class RunLockedError(RuntimeError):
    """Another live process writes into the same `--out`."""


# ----------------------------------------------------------------- fingerprints
def looks_like_path(text: str) -> bool:
    """A name meant as a local path (not a hub id such as `org/model` nor a preset name)."""
    if text.startswith((".", "/", "~")) or text.endswith(("/", os.sep)) or os.sep != "/" and os.sep in text:
        return True
    parts = text.split("/")
    if len(parts) > 2 or Path(text).suffix in (".json", ".jsonl", ".safetensors", ".bin", ".txt"):
        return True
    return len(parts) == 2 and Path(parts[0]).is_dir()  # runs/ref where runs/ exists


def file_sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def model_files(directory: Path) -> list[Path]:
    """The files that make a model directory's model (run records and checkpoints excluded)."""
    return sorted(
        p
        for p in directory.iterdir()
        if p.is_file()
        and p.suffix in _MODEL_SUFFIXES
        and p.name not in _RUN_RECORDS
        and not p.name.startswith(".")
    )


def fingerprint(name: str | os.PathLike | None, *, what: str = "input") -> dict[str, str] | None:
    """Identity of an input: resolved path + content hash, or the name of a preset / hub id.

    Raises FileNotFoundError for a name that looks like a local path and does not exist.
    """
    if name is None:
        return None
    text = str(name)
    path = Path(text).expanduser()
    if path.is_file():
        return {"path": str(path.resolve()), "sha256": file_sha256(path)}
    if path.is_dir():
        digest = hashlib.sha256()
        for f in model_files(path):
            digest.update(f"{f.name}\0{file_sha256(f)}\n".encode())
        return {"path": str(path.resolve()), "sha256": digest.hexdigest()}
    if looks_like_path(text):
        raise FileNotFoundError(f"{what} {text}: no such file or directory ({path.absolute()})")
    return {"name": text}


# ----------------------------------------------------------------- comparing records
def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict) and data:
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): data}


def differences(old: dict, new: dict) -> list[str]:
    """'key: old -> new' for every leaf that differs; an input at the same path: 'content changed'."""
    a, b = _flatten(old), _flatten(new)
    out = []
    for key in sorted(set(a) | set(b)):
        if a.get(key) == b.get(key):
            continue
        if key.endswith(".sha256"):
            base = key[: -len(".sha256")]
            if a.get(base + ".path") == b.get(base + ".path"):
                out.append(f"{base}: content changed")
        else:
            out.append(f"{key}: {a.get(key, 'unset')!r} -> {b.get(key, 'unset')!r}")
    return out


class RunDir:
    """One `--out` directory: its lock, its options record, and what counts as its work.

    kind: "train", "eval" or "demo" (recorded, and compared like an option).
    work: names (files or folders) whose presence means the directory holds a run's results.
    """

    def __init__(self, out: str | os.PathLike, kind: str, work: Iterable[str]):
        self.out = Path(out)
        self.kind = kind
        self.work = tuple(work)
        self._locked = False

    @property
    def options_path(self) -> Path:
        return self.out / OPTIONS_FILE

    def record_of(self, options: dict, inputs: dict) -> dict:
        """The record as it reads back from disk (tuples as lists), so records compare equal."""
        return json.loads(json.dumps({"kind": self.kind, "options": options, "inputs": inputs}))

    def has_work(self) -> bool:
        return any(_non_empty(self.out / name) for name in self.work)

    def check(self, record: dict, *, overwrite: bool = False) -> bool:
        """True when `out` holds a run of this record to continue, False when it starts fresh.

        A run of other options (or an earlier run that recorded none) is refused unless
        `overwrite`, which removes its work; a record without work (a failed start) is
        simply replaced.
        """
        saved = json.loads(self.options_path.read_text()) if self.options_path.exists() else None
        if not self.has_work():
            return False
        if saved == record:
            return True
        if not overwrite:
            if saved is None:
                what = "results of an earlier run that recorded no options"
            else:
                diff = differences(saved, record)
                what = "a run with other options (" + "; ".join(diff[:3])
                what += f"; {len(diff) - 3} more)" if len(diff) > 3 else ")"
            raise RunMismatchError(
                f"{self.out} holds {what}; use another --out, or --overwrite to replace it"
            )
        self.clear()
        return False

    def clear(self) -> None:
        """Remove this run's work and record (nothing else in the directory)."""
        for name in (*self.work, OPTIONS_FILE):
            path = self.out / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()

    def record(self, record: dict) -> None:
        """Write the record (atomically): call it once the run has really started."""
        write_json(self.options_path, record)

    # ------------------------------------------------------------- the lock
    @property
    def lock_path(self) -> Path:
        return self.out / LOCK_FILE

    def lock(self) -> RunDir:
        """Take the directory's lock (creating `out`); refuse if a live process holds it."""
        if self.out.exists() and not self.out.is_dir():
            raise UsageError(
                f"--out {self.out} is a file, not a directory; give a directory for the run's results"
            )
        self.out.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "kind": self.kind}
        for _ in range(3):
            try:
                fd = os.open(self.lock_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = _read_lock(self.lock_path)
                if holder is None or _alive(holder):
                    who = f"process {holder['pid']} on {holder['host']}" if holder else "another process"
                    raise RunLockedError(
                        f"{self.out} is in use by {who} (lock {self.lock_path}); wait for it to finish, "
                        "or use another --out"
                    ) from None
                self.lock_path.unlink(missing_ok=True)  # the holder died: take the lock over
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self._locked = True
            return self
        raise RunLockedError(
            f"could not take the lock {self.lock_path}; remove it if no rcd process uses {self.out}"
        )

    def unlock(self) -> None:
        if self._locked:
            self.lock_path.unlink(missing_ok=True)
            self._locked = False

    def __enter__(self) -> RunDir:
        return self.lock()

    def __exit__(self, *exc) -> None:
        self.unlock()


def _non_empty(path: Path) -> bool:
    if path.is_dir():
        return any(path.iterdir())
    return path.exists() and path.stat().st_size > 0


def _read_lock(path: Path) -> dict | None:
    try:
        holder = json.loads(path.read_text())
        return holder if isinstance(holder, dict) and isinstance(holder.get("pid"), int) else None
    except (OSError, ValueError):
        return None  # being written right now, or garbage: treat as held


def _alive(holder: dict) -> bool:
    if holder.get("host") != socket.gethostname():
        return True  # another machine's process: cannot tell, so respect the lock
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ----------------------------------------------------------------- files
def write_json(path: Path, data: Any) -> None:
    """Write-then-rename with the process's normal file mode (umask), never half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def normal_mode(path: Path) -> None:
    """Give a file made by mkstemp (0600) the mode a plain open() would (0666 & ~umask)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)
