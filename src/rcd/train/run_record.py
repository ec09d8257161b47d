"""What makes a training run: its options and inputs, as recorded in OUT/options.json.

A rerun into the same `--out` continues the run only when this record is the same (see
`rcd.rundir`); operational options that do not change the weights (progress bar, how often
checkpoints are written and how many are kept, resume / overwrite) are left out of it.
"""

from __future__ import annotations

from dataclasses import asdict

from ..models.tiny import TINY_PRESETS
from ..rundir import fingerprint
from .config import TrainConfig
from .stages import ResidualTrainingConfig

INPUTS = ("model", "reference", "tokenizer", "data", "eval_data")
OPERATIONAL = ("out", "progress", "save_every", "keep_checkpoints", "resume", "overwrite", "cache_dir")
# what a training run leaves in OUT besides the model files listed in its summary
WORK = ("checkpoints", "metrics.jsonl", "train_summary.json", "reference_cache.pt", ".final.tmp")


def train_record(config: TrainConfig, residual: ResidualTrainingConfig | None) -> tuple[dict, dict]:
    """(options, inputs) of a run; raises FileNotFoundError for an input path that does not exist.

    A data set named on the Hub (not a local file) is recorded by its name and split options.
    """
    options = {k: v for k, v in asdict(config).items() if k not in INPUTS + OPERATIONAL}
    options["residual"] = asdict(residual or ResidualTrainingConfig()) if config.stage == "rcd" else None
    inputs = {
        "model": {"preset": config.model}
        if config.model in TINY_PRESETS
        else fingerprint(config.model, what="--model"),
        "reference": fingerprint(config.reference, what="--reference"),
        "tokenizer": fingerprint(config.tokenizer, what="--tokenizer")
        if config.tokenizer not in (None, "char")
        else None,
        "data": fingerprint(config.data, what="--data"),
        "eval_data": fingerprint(config.eval_data, what="--eval-data"),
    }
    return options, inputs
