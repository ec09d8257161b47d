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

from ..train import ResidualTrainingConfig, TrainConfig, train
from .args import add_dataclass_arguments, dataclass_from_args

HELP = "train a stage (ref, seqd, rcd) on a JSONL dataset"
RESIDUAL_PREFIX = "residual-"


def register(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_dataclass_arguments(parser.add_argument_group("run"), TrainConfig)
    add_dataclass_arguments(
        parser.add_argument_group("stage rcd: residual inputs"), ResidualTrainingConfig, prefix=RESIDUAL_PREFIX
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = dataclass_from_args(TrainConfig, args)
    residual = dataclass_from_args(ResidualTrainingConfig, args, prefix=RESIDUAL_PREFIX)
    summary = train(config, residual)
    if PartialState().is_main_process:
        print(json.dumps({k: v for k, v in summary.items() if k not in ("config", "residual")}, indent=2))
    return 0
