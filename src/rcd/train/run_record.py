"""What makes a training run: its options and inputs, as recorded in OUT/options.json.

A rerun into the same `--out` continues the run only when this record is the same (see
`rcd.rundir`); operational options that do not change the weights (progress bar, how often
checkpoints are written and how many are kept, resume / overwrite) are left out of it.
"""

from __future__ import annotations

from dataclasses import asdict

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
    saved = config.saved()  # flat, as runs made before the option groups recorded it
    options = {k: v for k, v in saved.items() if k not in INPUTS + OPERATIONAL}
    options["residual"] = asdict(residual or ResidualTrainingConfig()) if config.stage == "rcd" else None
    models = config.models
    inputs = {
        "model": {"preset": models.model} if models.is_preset else fingerprint(models.model, what="--model"),
        "reference": fingerprint(models.reference, what="--reference"),
        "tokenizer": fingerprint(models.tokenizer, what="--tokenizer")
        if models.tokenizer not in (None, "char")
        else None,
        "data": fingerprint(config.dataset.data, what="--data"),
        "eval_data": fingerprint(config.dataset.eval_data, what="--eval-data"),
    }
    return options, inputs
