"""Train a dLLM stage: `ref` (reference), `seqd` (plain baseline) or `rcd` (residual-aware target).

Typical two-stage recipe:
  rcd train --stage ref  --model tiny-s --data train.jsonl --out runs/ref
  rcd train --stage rcd  --model runs/ref --reference runs/ref --data train.jsonl --out runs/rcd
  rcd train --stage seqd --model runs/ref --data train.jsonl --out runs/seqd   (fair baseline)
Multi-process: accelerate launch --multi_gpu --num_processes N -m rcd train ...
(DDP; FSDP/DeepSpeed as configured with `accelerate config`); on CPU this runs gloo DDP.
"""

from __future__ import annotations

import argparse
import json

from accelerate import PartialState

from ..config import add_dataclass_arguments, dataclass_from_args
from ..train import TrainConfig, train

HELP = "train a stage (ref, seqd, rcd) on a JSONL dataset"


def register(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_dataclass_arguments(parser, TrainConfig)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    summary = train(dataclass_from_args(TrainConfig, args))
    if PartialState().is_main_process:
        print(json.dumps({k: v for k, v in summary.items() if k not in ("config", "residual")}, indent=2))
    return 0
