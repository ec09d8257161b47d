"""Checkpoints that survive SIGKILL: written to a temporary folder, then renamed.

A checkpoint holds what Accelerate saves (model weights in safetensors, optimizer,
scheduler, RNG states of every process) plus `trainer_state.json` (step, epoch, position in
the epoch). Only renamed folders count, so a kill mid-write leaves the previous one intact.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from accelerate import Accelerator

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


def latest_checkpoint(out: str | Path) -> Path | None:
    found = sorted(checkpoints_dir(out).glob(f"{PREFIX}*"))
    complete = [p for p in found if (p / STATE_FILE).exists()]
    return complete[-1] if complete else None


def save_checkpoint(accelerator: Accelerator, out: str | Path, state: TrainerState, keep: int) -> Path:
    """Save the full training state; all processes must call it."""
    root = checkpoints_dir(out)
    final = root / f"{PREFIX}{state.step:08d}"
    tmp = root / f".tmp-{PREFIX}{state.step:08d}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        root.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / STATE_FILE).write_text(json.dumps(asdict(state), indent=2))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        # only this run's earlier checkpoints go (train() never lets another run's sit here)
        older = sorted(p for p in root.glob(f"{PREFIX}*") if p.name < final.name)
        for old in older[: max(len(older) - keep + 1, 0)] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator: Accelerator, path: Path) -> TrainerState:
    accelerator.load_state(str(path))
    return TrainerState(**json.loads((path / STATE_FILE).read_text()))
