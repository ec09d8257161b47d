"""Checkpoints that survive SIGKILL, a full disk and damaged files.

A checkpoint holds what Accelerate saves (model weights in safetensors, optimizer,
scheduler, RNG states of every process) plus `trainer_state.json` (step, epoch, position in
the epoch). It is written to a temporary folder, fsynced, then renamed: only renamed folders
count, so a kill or a full disk mid-write leaves the previous one intact. On resume each
file is checked (safetensors header against the file size, torch archives' directory, the
state JSON): a damaged checkpoint is passed over, with a notice, for the one before it.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

from accelerate import Accelerator
from safetensors import safe_open

STATE_FILE = "trainer_state.json"
PREFIX = "step-"


@dataclass
class TrainerState:
    step: int = 0  # optimizer steps done
    epoch: int = 0  # current epoch
    batch_in_epoch: int = 0  # micro-batches of the current epoch consumed
    tokens: int = 0  # tokens processed (all processes)
    seconds: float = 0.0  # training time so far (excluding evaluation and saving)


def checkpoints_dir(out: str | Path) -> Path:
    return Path(out) / "checkpoints"


class CheckpointError(RuntimeError):
    """A checkpoint that could not be written (full disk) or that no intact one precedes."""


def latest_checkpoint(out: str | Path) -> tuple[Path | None, list[str]]:
    """The newest intact checkpoint (None if there is none), and a one-line notice for each newer
    damaged one passed over; damaged ones only: CheckpointError naming the newest's fault."""
    found = sorted(checkpoints_dir(out).glob(f"{PREFIX}*"), reverse=True)
    damaged = []
    for path in found:
        reason = checkpoint_damage(path)
        if reason is None:
            resuming = f"resuming from {path.name}"
            return path, [f"checkpoint {bad} is damaged ({why}); {resuming}" for bad, why in damaged]
        damaged.append((path, reason))
    if damaged:
        bad, why = damaged[0]
        raise CheckpointError(
            f"checkpoint {bad} is damaged ({why}) and no intact checkpoint precedes it; remove "
            f"{checkpoints_dir(out)} to train from the start (or --overwrite)"
        )
    return None, []


def checkpoint_damage(path: Path) -> str | None:
    """What makes a checkpoint folder unusable (the file and the fault), or None if it is intact."""
    try:
        TrainerState(**json.loads((path / STATE_FILE).read_text()))
    except FileNotFoundError:
        return f"no {STATE_FILE}"
    except (ValueError, TypeError) as err:  # not JSON, not UTF-8, or other fields
        return f"{STATE_FILE} is not a trainer state: {' '.join(str(err).split())[:100]}"
    files = sorted(path.iterdir())
    if not any(f.suffix == ".safetensors" for f in files):
        return "no .safetensors weights"
    for f in files:
        if f.suffix == ".safetensors":
            try:
                with safe_open(f, framework="pt"):
                    pass
            except Exception as err:  # noqa: BLE001 (SafetensorError is not exported by every version)
                return f"{f.name}: {' '.join(str(err).split())[:100]} ({f.stat().st_size} bytes)"
        elif f.suffix in (".bin", ".pkl", ".pt") and not zipfile.is_zipfile(f):  # torch.save's zip archives
            return f"{f.name}: not a complete torch archive ({f.stat().st_size} bytes)"
    return None


def save_checkpoint(accelerator: Accelerator, out: str | Path, state: TrainerState, keep: int) -> Path:
    """Save the full training state; all processes must call it.

    A write that fails (a full disk: ENOSPC) removes its partial folder and raises
    CheckpointError on one line; the previous checkpoints are untouched.
    """
    root = checkpoints_dir(out)
    final = root / f"{PREFIX}{state.step:08d}"
    tmp = root / f".tmp-{PREFIX}{state.step:08d}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        root.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(tmp), safe_serialization=True)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            _write_synced(tmp / STATE_FILE, json.dumps(asdict(state), indent=2).encode())
            for f in tmp.iterdir():
                _fsync(f)
            _fsync(tmp)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        previous = latest_complete(root)
        kept = f"{previous.name} is intact" if previous is not None else "no earlier checkpoint exists"
        raise CheckpointError(
            f"could not write checkpoint {final.name} ({err.strerror or err}); {kept}: free space on "
            f"{root} and rerun the same command to resume"
        ) from err
    if accelerator.is_main_process:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        _fsync(root)  # the rename itself survives a power cut
        # only this run's earlier checkpoints go (train() never lets another run's sit here)
        older = sorted(p for p in root.glob(f"{PREFIX}*") if p.name < final.name)
        for old in older[: max(len(older) - keep + 1, 0)] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def latest_complete(root: Path) -> Path | None:
    """The newest renamed checkpoint folder (not checked: for messages)."""
    found = sorted(p for p in root.glob(f"{PREFIX}*") if p.is_dir())
    return found[-1] if found else None


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync(path: Path) -> None:
    """Flush a file's or a folder's (its entries') content to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_checkpoint(accelerator: Accelerator, path: Path) -> TrainerState:
    accelerator.load_state(str(path))
    return TrainerState(**json.loads((path / STATE_FILE).read_text()))
