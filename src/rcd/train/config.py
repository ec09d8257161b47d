"""Configuration of a training run (`rcd train` flags are generated from these fields)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from ..data.sft import OVERFLOW_RULES
from ..models.attention import ATTENTION_MODES
from ..models.loading import DTYPES
from ..models.tiny import TINY_PRESETS
from .stages import SOURCES, STAGES, ResidualTrainingConfig

SCHEDULES = ("constant", "constant_with_warmup", "cosine", "linear")
TRACKERS = ("none", "tensorboard", "wandb")
PRECISIONS = ("no", "bf16", "fp16")


@dataclass
class TrainConfig:
    stage: str = field(
        default="ref",
        metadata={
            "help": "ref / seqd: plain objective; rcd: residual-aware, needs --reference",
            "choices": STAGES,
        },
    )
    model: str = field(
        default="tiny-s",
        metadata={
            "help": "model directory to fine-tune, or a tiny preset (tiny-xs/-s/-m/-l/-xl) built from scratch"
        },
    )
    data: str = field(
        default="",
        metadata={
            "help": "training data: a JSONL file (prompt+response or chat messages per line), a json/parquet/"
            "arrow/csv file or folder, a saved dataset folder, or a Hub dataset name (see rcd.data.datasets)",
            "required": True,
        },
    )
    out: str = field(
        default="",
        metadata={"help": "output directory (final model, checkpoints, metrics.jsonl)", "required": True},
    )
    reference: str | None = field(
        default=None, metadata={"help": "frozen reference model directory (stage rcd)"}
    )
    residual: ResidualTrainingConfig | None = field(
        default=None,
        metadata={"help": "stage rcd: residual inputs (--res-*; refused by other stages)", "prefix": "res-"},
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
        default=None, metadata={"help": "block size of block-causal models (block-diffusion objective)"}
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
    epochs: int = field(default=1, metadata={"help": "passes over the data"})
    max_steps: int | None = field(default=None, metadata={"help": "stop after this many optimizer steps"})
    batch_size: int = field(default=16, metadata={"help": "examples per micro-batch and process"})
    grad_accum: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    lr: float | None = field(
        default=None,
        metadata={
            "help": "peak learning rate of AdamW (default: 1e-3 for a tiny preset trained from scratch, "
            "1e-5 to fine-tune a model, as the paper did)"
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
    mixed_precision: str = field(
        default="no", metadata={"help": "Accelerate mixed precision", "choices": PRECISIONS}
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
            "help": "weights dtype of the frozen reference (default: --dtype)",
            "choices": tuple(DTYPES),
        },
    )
    gradient_checkpointing: bool = field(
        default=False,
        metadata={"help": "recompute each layer's activations in backward (the model's own checkpointing)"},
    )
    seed: int = field(default=0, metadata={"help": "seed of model init, data order and noise"})
    eps: float = field(default=1e-3, metadata={"help": "smallest masking level t"})
    log_every: int = field(default=10, metadata={"help": "log metrics every N optimizer steps"})
    eval_every: int = field(default=0, metadata={"help": "eval loss every N steps (0: at the end only)"})
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
    cache_reference: bool = field(
        default=False,
        metadata={
            "help": "stage rcd: cache the reference's top-k on epoch 1, reuse later (noise then repeats)"
        },
    )
    cache_top_k: int = field(
        default=64, metadata={"help": "probabilities kept per position by --cache-reference"}
    )
    lora_rank: int = field(
        default=0, metadata={"help": "train LoRA adapters of this rank (peft) instead of all weights"}
    )
    lora_alpha: float = field(default=16.0, metadata={"help": "LoRA scaling alpha"})
    lora_targets: str = field(default="q_proj,k_proj,v_proj,o_proj", metadata={"help": "LoRA target modules"})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "allow the model's own code from its directory (LLaDA, Dream, SDAR)"}
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
        if not self.data or not self.out:
            raise ValueError("a training run needs data and out")
        for f in fields(self):  # choices are the flags' (argparse's); a config built in code is checked here
            choices, value = f.metadata.get("choices"), getattr(self, f.name)
            if choices and value is not None and value not in choices:
                raise ValueError(f"{f.name} must be one of {tuple(choices)}, not {value!r}")
        if (self.stage == "rcd") != (self.reference is not None):
            raise ValueError("stage rcd needs a reference model, and only stage rcd takes one")
        if self.stage != "rcd" and self.residual is not None:
            raise ValueError(f"residual options (--res-*) apply to stage rcd only, not to stage {self.stage}")
        if self.stage == "rcd" and self.residual is None:
            self.residual = ResidualTrainingConfig()
        if (
            min(
                self.batch_size,
                self.grad_accum,
                self.epochs,
                self.max_prompt_length,
                self.max_response_length,
            )
            < 1
        ):
            raise ValueError("batch_size, grad_accum, epochs and the max lengths must be >= 1")
        if not (self.prompt_field and self.response_field and self.messages_field):
            raise ValueError(
                "--prompt-field, --response-field and --messages-field must name a column (not empty)"
            )
        if self.block_length is not None and self.block_length < 1:
            raise ValueError(f"--block-length must be >= 1, not {self.block_length}")
        if not 0 <= self.seed < 2**32:  # numpy's seeds (Accelerate's set_seed seeds numpy too)
            raise ValueError(f"--seed must lie in [0, 2**32), not {self.seed}")
        if self.model in TINY_PRESETS and self.attention == "block-causal" and self.block_length is None:
            raise ValueError(
                "--attention block-causal builds a block-causal tiny model: give its --block-length"
            )
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"--max-steps must be >= 1 (or left out for --epochs), not {self.max_steps}")
        if (
            min(
                self.save_every, self.log_every - 1, self.eval_every, self.keep_checkpoints, self.warmup_steps
            )
            < 0
        ):
            raise ValueError(
                "--save-every, --eval-every, --keep-checkpoints and --warmup-steps must be >= 0, "
                "--log-every >= 1"
            )
        if not 0.0 <= self.warmup_ratio < 1.0 or (self.warmup_ratio and self.warmup_steps):
            raise ValueError(
                "--warmup-ratio must lie in [0, 1), and be given instead of --warmup-steps, not with it"
            )
        if self.lr is None:
            self.lr = 1e-3 if self.model in TINY_PRESETS else 1e-5
        # nan or inf would train nan weights without an error
        finite = all(map(math.isfinite, (self.lr, self.weight_decay, self.max_grad_norm)))
        positive = self.lr > 0 and self.weight_decay >= 0 and self.max_grad_norm >= 0
        if not (finite and positive and 0 < self.eps < 1):
            raise ValueError(
                "--lr must be > 0, --weight-decay and --max-grad-norm >= 0 (all finite), --eps in (0, 1)"
            )
        if self.response_padding not in ("batch", "max"):
            raise ValueError(f"response_padding must be 'batch' or 'max', not {self.response_padding!r}")
        for name in ("dtype", "reference_dtype"):
            if getattr(self, name) not in (None, *DTYPES):
                raise ValueError(f"{name} must be one of {tuple(DTYPES)}, not {getattr(self, name)!r}")
        if self.dtype not in (None, "float32", "float64") and self.mixed_precision != "no":
            raise ValueError(
                f"--dtype {self.dtype} trains low-precision weights; --mixed-precision {self.mixed_precision} wants "
                "fp32 weights: pass one of the two"
            )
        if self.reference_dtype is not None and self.stage != "rcd":
            raise ValueError("reference_dtype applies to stage rcd only")
        if self.streaming and (self.max_steps is None or self.group_by_length or self.cache_reference):
            raise ValueError(
                "--streaming needs --max-steps (a stream has no length), and takes no "
                "--group-by-length or --cache-reference"
            )
        if self.lora_rank and self.model in TINY_PRESETS:
            raise ValueError(
                "LoRA adapts a saved model: pass a model directory or Hub id as --model (a tiny preset is built "
                "from scratch: train all its weights)"
            )
        if self.report_to not in TRACKERS:
            raise ValueError(f"report_to must be one of {TRACKERS}, not {self.report_to!r}")
        if self.report_to != "none":
            from accelerate.utils import is_tensorboard_available, is_wandb_available

            available = {"tensorboard": is_tensorboard_available, "wandb": is_wandb_available}[self.report_to]
            if not available():
                raise ValueError(
                    f"--report-to {self.report_to} needs the package: pip install {self.report_to}"
                )
        if self.cache_reference and self.stage != "rcd":
            raise ValueError("cache_reference applies to stage rcd only")
        if self.cache_reference and self.residual.residual.rule != "rcd":
            raise ValueError(
                "--cache-reference keeps rule rcd's alpha: not with another --res-rule; drop --cache-reference"
            )
        if self.cache_reference and not SOURCES[self.residual.source].cacheable:
            raise ValueError(
                "--cache-reference caches the reference at the batch's masks: not with a --res-source that the target makes (self, selfcond)"
            )
