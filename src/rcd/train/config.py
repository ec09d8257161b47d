"""Configuration of a training run (`rcd train` flags are generated from these fields).

`TrainConfig` is composed of groups (models, data, optimiser, runtime, LoRA; the residual of
stage rcd), each a frozen dataclass that checks its own options when it is built;
`TrainConfig` checks the options that span groups. The flags keep their plain names
(`--lr`, not `--optim-lr`): a group is a `"flat"` field (see `rcd.config`), which is also
how a run saves its options (`flat_dict`), so records of runs made before the groups read back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..config import check_choices, dataclass_from_dict, flat_dict
from ..data.sft import OVERFLOW_RULES
from ..models.attention import ATTENTION_MODES
from ..models.loading import DTYPES
from ..models.tiny import TINY_PRESETS
from .stages import SOURCES, STAGES, ResidualTrainingConfig

SCHEDULES = ("constant", "constant_with_warmup", "cosine", "linear")
TRACKERS = ("none", "tensorboard", "wandb")
PRECISIONS = ("no", "bf16", "fp16")
# learning rates of the paper's recipe: a tiny preset trained from scratch, a saved model fine-tuned
SCRATCH_LR, FINE_TUNE_LR = 1e-3, 1e-5


@dataclass(frozen=True)
class ModelConfig:
    """The trained model, its frozen reference (stage rcd) and how they are built and held."""

    model: str = field(
        default="tiny-s",
        metadata={
            "help": "model directory or Hub id to fine-tune, or a tiny preset (tiny-xs/-s/-m/-l/-xl) built from scratch"
        },
    )
    reference: str | None = field(
        default=None, metadata={"help": "frozen reference model directory (stage rcd)"}
    )
    tokenizer: str | None = field(
        default=None,
        metadata={"help": "tiny presets: tokenizer directory (default: rcd's character tokenizer)"},
    )
    attention: str | None = field(
        default=None,
        metadata={
            "help": "attention mode (default: the model's own; presets: bidirectional)",
            "choices": ATTENTION_MODES,
        },
    )
    block_length: int | None = field(
        default=None,
        metadata={
            "help": "block size of a block-causal model and of its block-diffusion objective "
            "(default: the model's own; a block-causal tiny preset needs it)"
        },
    )
    dtype: str | None = field(
        default=None,
        metadata={
            "help": "weights dtype of the trained model (bfloat16: pure bf16 training, half the memory of "
            "fp32 weights + --mixed-precision; default: as saved, presets fp32)",
            "choices": tuple(DTYPES),
        },
    )
    reference_dtype: str | None = field(
        default=None,
        metadata={
            "help": "stage rcd: weights dtype of the frozen reference (default: --dtype)",
            "choices": tuple(DTYPES),
        },
    )
    mixed_precision: str = field(
        default="no",
        metadata={"help": "Accelerate mixed precision (autocast over fp32 weights)", "choices": PRECISIONS},
    )
    gradient_checkpointing: bool = field(
        default=False,
        metadata={"help": "recompute each layer's activations in backward (the model's own checkpointing)"},
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "allow the model's own code from its directory (LLaDA, Dream, SDAR)"}
    )

    def __post_init__(self) -> None:
        check_choices(self)
        if self.block_length is not None and self.block_length < 1:
            raise ValueError(f"--block-length must be >= 1, not {self.block_length}")
        if self.model in TINY_PRESETS and self.attention == "block-causal" and self.block_length is None:
            raise ValueError(
                "--attention block-causal builds a block-causal tiny model: give its --block-length"
            )
        if self.dtype not in (None, "float32", "float64") and self.mixed_precision != "no":
            raise ValueError(
                f"--dtype {self.dtype} trains low-precision weights; --mixed-precision {self.mixed_precision} wants "
                "fp32 weights: pass one of the two"
            )

    @property
    def is_preset(self) -> bool:
        """A tiny preset built from scratch (not a saved model)."""
        return self.model in TINY_PRESETS


@dataclass(frozen=True)
class DataConfig:
    """What is trained on and how its rows become padded examples."""

    data: str = field(
        default="",
        metadata={
            "help": "training data: a JSONL file (prompt+response or chat messages per line), a json/parquet/"
            "arrow/csv file or folder, a saved dataset folder, or a Hub dataset name (see rcd.data.datasets)",
            "required": True,
        },
    )
    eval_data: str | None = field(
        default=None, metadata={"help": "held-out data for the eval loss (as --data)"}
    )
    data_split: str = field(
        default="train", metadata={"help": "split of --data (saved DatasetDicts, Hub datasets)"}
    )
    eval_split: str = field(default="train", metadata={"help": "split of --eval-data (local files: train)"})
    prompt_field: str = field(
        default="prompt", metadata={"help": "prompt column (OpenMathInstruct-2: problem)"}
    )
    response_field: str = field(
        default="response", metadata={"help": "response column (OpenMathInstruct-2: generated_solution)"}
    )
    messages_field: str = field(
        default="messages", metadata={"help": "chat column, used when a row has it (OpenR1-Math: messages)"}
    )
    group_by_length: bool = field(
        default=False,
        metadata={"help": "batch examples of similar length (less padding), reshuffled per epoch"},
    )
    streaming: bool = field(
        default=False,
        metadata={
            "help": "read --data as a stream, tokenised on the fly (data larger than memory; needs --max-steps)"
        },
    )
    cache_dir: str | None = field(
        default=None,
        metadata={"help": "tokenisation cache folder (default: ~/.cache/rcd/tokenized; 'none': no cache)"},
    )
    max_prompt_length: int = field(default=256, metadata={"help": "longest prompt in tokens"})
    max_response_length: int = field(
        default=256, metadata={"help": "longest response in tokens (EOS included)"}
    )
    response_padding: str = field(
        default="batch",
        metadata={
            "help": "EOS padding of responses: to the batch's longest (LLaDA SFT), or to "
            "--max-response-length ('max': train at the length you decode with)",
            "choices": ("batch", "max"),
        },
    )
    overflow: str = field(
        default="drop",
        metadata={"help": "over-long examples: drop or truncate (counted)", "choices": OVERFLOW_RULES},
    )

    def __post_init__(self) -> None:
        check_choices(self)
        if not self.data:
            raise ValueError("a training run needs --data (a file, folder or Hub dataset name)")
        if min(self.max_prompt_length, self.max_response_length) < 1:
            raise ValueError("--max-prompt-length and --max-response-length must be >= 1")
        if not (self.prompt_field and self.response_field and self.messages_field):
            raise ValueError(
                "--prompt-field, --response-field and --messages-field must name a column (not empty)"
            )


@dataclass(frozen=True)
class OptimConfig:
    """AdamW, its schedule, and how many examples make how many steps."""

    epochs: int = field(default=1, metadata={"help": "passes over the data (unless --max-steps)"})
    max_steps: int | None = field(
        default=None, metadata={"help": "stop after this many optimizer steps (instead of --epochs)"}
    )
    batch_size: int = field(default=16, metadata={"help": "examples per micro-batch and process"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    lr: float | None = field(
        default=None,
        metadata={
            "help": f"peak learning rate of AdamW (default: {SCRATCH_LR:g} for a tiny preset trained from "
            f"scratch, {FINE_TUNE_LR:g} to fine-tune a model, as the paper did)"
        },
    )
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    warmup_steps: int = field(default=0, metadata={"help": "linear warmup steps"})
    warmup_ratio: float = field(
        default=0.0,
        metadata={"help": "linear warmup over this share of the optimizer steps (instead of --warmup-steps)"},
    )
    schedule: str = field(
        default="cosine",
        metadata={
            "help": "learning-rate schedule (constant has no warmup; constant_with_warmup has)",
            "choices": SCHEDULES,
        },
    )
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping (0 = off)"})

    def __post_init__(self) -> None:
        check_choices(self)
        if min(self.batch_size, self.grad_accum, self.epochs) < 1:
            raise ValueError("--batch-size, --grad-accum and --epochs must be >= 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"--max-steps must be >= 1 (or left out for --epochs), not {self.max_steps}")
        if self.warmup_steps < 0:
            raise ValueError(f"--warmup-steps must be >= 0, not {self.warmup_steps}")
        if not 0.0 <= self.warmup_ratio < 1.0 or (self.warmup_ratio and self.warmup_steps):
            raise ValueError(
                "--warmup-ratio must lie in [0, 1), and be given instead of --warmup-steps, not with it"
            )
        # nan or inf would train nan weights without an error
        lr = 1.0 if self.lr is None else self.lr
        finite = all(map(math.isfinite, (lr, self.weight_decay, self.max_grad_norm)))
        if not (finite and lr > 0 and self.weight_decay >= 0 and self.max_grad_norm >= 0):
            raise ValueError("--lr must be > 0, --weight-decay and --max-grad-norm >= 0 (all finite)")


@dataclass(frozen=True)
class RuntimeConfig:
    """Where the run writes, how often it logs, evaluates and saves, and what it shows."""

    out: str = field(
        default="",
        metadata={"help": "output directory (final model, checkpoints, metrics.jsonl)", "required": True},
    )
    log_every: int = field(
        default=10,
        metadata={"help": "log metrics every N optimizer steps (and at each checkpoint and the last step)"},
    )
    eval_every: int = field(
        default=0, metadata={"help": "eval loss every N steps, and at the end (0: at the end only)"}
    )
    save_every: int = field(
        default=500,
        metadata={"help": "checkpoint every N steps, so that rerunning the command resumes (0: never)"},
    )
    keep_checkpoints: int = field(default=2, metadata={"help": "checkpoints kept on disk"})
    resume: bool = field(
        default=True,
        metadata={
            "help": "continue the run of the same options in --out from its last checkpoint "
            "(--no-resume: refuse to touch it)"
        },
    )
    overwrite: bool = field(
        default=False,
        metadata={"help": "discard the run --out holds (its checkpoints, metrics, model) and start again"},
    )
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})
    report_to: str = field(
        default="none",
        metadata={
            "help": "also log metrics to this Accelerate tracker (metrics.jsonl is always written)",
            "choices": TRACKERS,
        },
    )
    run_name: str | None = field(
        default=None, metadata={"help": "tracker project/run name (default: --out's name)"}
    )

    def __post_init__(self) -> None:
        check_choices(self)
        if not self.out:
            raise ValueError("a training run needs --out (its output directory)")
        if min(self.save_every, self.log_every - 1, self.eval_every, self.keep_checkpoints) < 0:
            raise ValueError(
                "--save-every, --eval-every and --keep-checkpoints must be >= 0, --log-every >= 1"
            )
        if self.report_to != "none":
            from accelerate.utils import is_tensorboard_available, is_wandb_available

            available = {"tensorboard": is_tensorboard_available, "wandb": is_wandb_available}[self.report_to]
            if not available():
                raise ValueError(
                    f"--report-to {self.report_to} needs the package: pip install {self.report_to}"
                )


@dataclass(frozen=True)
class LoraConfig:
    """LoRA adapters (peft) trained instead of all weights (flags --lora-*)."""

    rank: int = field(
        default=0,
        metadata={"help": "train LoRA adapters of this rank (peft) instead of all weights (0: off)"},
    )
    alpha: float = field(default=16.0, metadata={"help": "LoRA scaling alpha"})
    targets: str = field(
        default="q_proj,k_proj,v_proj,o_proj",
        metadata={"help": "LoRA target modules, comma-separated module names"},
    )

    def __post_init__(self) -> None:
        if self.rank < 0 or not (math.isfinite(self.alpha) and self.alpha > 0):
            raise ValueError(
                f"--lora-rank must be >= 0 and --lora-alpha finite and > 0, not {self.rank}, {self.alpha}"
            )
        if self.rank and not self.target_modules:
            raise ValueError("--lora-targets must name at least one module (e.g. q_proj,v_proj)")

    @property
    def target_modules(self) -> list[str]:
        return [t.strip() for t in self.targets.split(",") if t.strip()]


def _group(cls: type, help_text: str, **metadata: Any) -> Any:
    return field(default_factory=cls, metadata={"help": help_text, "flat": True, **metadata})


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """One training stage: the stage and its objective, and the groups of options it is built from.

    `TrainConfig.of(lr=..., data=..., ...)` builds one from flat option names (as the flags and a
    run's saved options spell them)."""

    stage: str = field(
        default="ref",
        metadata={
            "help": "ref / seqd: plain objective; rcd: residual-aware, needs --reference",
            "choices": STAGES,
        },
    )
    models: ModelConfig = _group(ModelConfig, "model")
    dataset: DataConfig = field(metadata={"help": "data", "flat": True})
    optim: OptimConfig = _group(OptimConfig, "optimiser")
    runtime: RuntimeConfig = field(metadata={"help": "run: output, logging, checkpoints", "flat": True})
    lora: LoraConfig = _group(LoraConfig, "LoRA", prefix="lora-")
    residual: ResidualTrainingConfig | None = field(
        default=None,
        metadata={"help": "stage rcd: residual inputs (--res-*; refused by other stages)", "prefix": "res-"},
    )
    seed: int = field(default=0, metadata={"help": "seed of model init, data order and noise"})
    eps: float = field(default=1e-3, metadata={"help": "smallest masking level t"})
    cache_reference: bool = field(
        default=False,
        metadata={
            "help": "stage rcd: cache the reference's top-k on epoch 1, reuse later (noise then repeats)"
        },
    )
    cache_top_k: int = field(
        default=64, metadata={"help": "probabilities kept per position by --cache-reference"}
    )

    def __post_init__(self) -> None:
        """The checks that span groups, and the two defaults that depend on other options."""
        check_choices(self)
        rcd = self.stage == "rcd"
        if rcd != (self.models.reference is not None):
            raise ValueError("stage rcd needs a reference model (--reference), and only stage rcd takes one")
        if not rcd and self.residual is not None:
            raise ValueError(f"residual options (--res-*) apply to stage rcd only, not to stage {self.stage}")
        if self.models.reference_dtype is not None and not rcd:
            raise ValueError("--reference-dtype applies to stage rcd only; drop it")
        if not 0 <= self.seed < 2**32:  # numpy's seeds (Accelerate's set_seed seeds numpy too)
            raise ValueError(f"--seed must lie in [0, 2**32), not {self.seed}")
        if not 0 < self.eps < 1:
            raise ValueError(f"--eps must lie in (0, 1), not {self.eps}")
        if self.dataset.streaming and (
            self.optim.max_steps is None or self.dataset.group_by_length or self.cache_reference
        ):
            raise ValueError(
                "--streaming needs --max-steps (a stream has no length), and takes no "
                "--group-by-length or --cache-reference"
            )
        if self.lora.rank and self.models.is_preset:
            raise ValueError(
                "LoRA adapts a saved model: pass a model directory or Hub id as --model (a tiny preset is built "
                "from scratch: train all its weights)"
            )
        if rcd and self.residual is None:  # frozen: the defaults are set once, here
            object.__setattr__(self, "residual", ResidualTrainingConfig())
        if self.optim.lr is None:
            lr = SCRATCH_LR if self.models.is_preset else FINE_TUNE_LR
            object.__setattr__(self, "optim", replace(self.optim, lr=lr))
        if self.cache_top_k < 1:
            raise ValueError(f"--cache-top-k must be >= 1, not {self.cache_top_k}")
        if self.cache_reference:
            if not rcd:
                raise ValueError("--cache-reference applies to stage rcd only; drop it")
            if self.residual.residual.rule != "rcd":
                raise ValueError(
                    "--cache-reference keeps rule rcd's alpha: not with another --res-rule; drop --cache-reference"
                )
            if not SOURCES[self.residual.source].cacheable:
                raise ValueError(
                    "--cache-reference caches the reference at the batch's masks: not with a --res-source that "
                    "the target makes (self, selfcond)"
                )

    @classmethod
    def of(cls, **options: Any) -> TrainConfig:
        """A config from flat option names (`data=`, `lr=`, `lora_rank=`, ...); an unknown one is refused."""
        return cls.from_saved(options)

    @classmethod
    def from_saved(cls, saved: Mapping[str, Any]) -> TrainConfig:
        """A config from its saved form (`saved()`, or the flat options a run saved before the groups)."""
        return dataclass_from_dict(cls, saved, strict=True)

    def saved(self) -> dict[str, Any]:
        """Every option under its flag's name, the residual nested: what a run records of its config."""
        return flat_dict(self)
