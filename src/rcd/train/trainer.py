"""The training loop shared by all stages, on Accelerate (CPU, one GPU, DDP, FSDP).

AdamW with warmup + cosine/linear/constant schedule, gradient accumulation, clipping,
mixed precision, tqdm progress, a JSONL metrics log, atomic checkpoints and exact resume.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator, DataLoaderConfiguration, PartialState
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase, get_scheduler

from ..data.batching import LengthGroupedSampler
from ..data.datasets import DataOptions, StreamingExamples, default_cache_dir, load_examples
from ..data.jsonl import append_jsonl, cut_torn_tail, read_rows
from ..data.sft import SftCollator
from ..errors import UsageError
from ..models.adapter import DiffusionModel, check_reference, context_length
from ..models.hub import resolve_hub_name
from ..models.loading import DTYPES, check_shared_vocabulary, check_source, load
from ..models.tiny import TINY_PRESETS, tiny_model
from ..residual_rules import PARAMETERS_ATTRIBUTE, save_rule_parameters, without_rule_parameters
from ..rundir import RunDir, fingerprint, normal_mode, write_json
from ..tokenizer import char_tokenizer, tokenizer_from_pretrained
from .checkpoint import TrainerState, latest_checkpoint, load_checkpoint, save_checkpoint
from .config import LoraConfig, ModelConfig, TrainConfig
from .memory import ReferenceModule, enable_gradient_checkpointing, freeze, place_reference
from .noise import add_noise
from .reference_cache import ReferenceCache
from .run_record import WORK, train_record
from .stages import ReferenceSignal, ResidualTrainingConfig, StageModule

EVAL_EPOCH = 2**31 - 1  # noise key of the held-out set: the same noise at every evaluation
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "train_summary.json"


def build_model(config: TrainConfig) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """A tiny preset built from scratch (seeded), or a saved model to fine-tune; either way its
    config holds the block length the run trains with (`--block-length`, else the model's own)."""
    models = config.models
    if models.is_preset:
        tokenizer = load_tokenizer(models.tokenizer)
        attention = models.attention or "bidirectional"
        model = tiny_model(
            len(tokenizer),
            seed=config.seed,
            attention=attention,
            block_length=models.block_length if attention == "block-causal" else None,
            mask_token_id=tokenizer.mask_token_id,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            max_position_embeddings=max(
                1024, config.dataset.max_prompt_length + config.dataset.max_response_length
            ),
            **TINY_PRESETS[models.model],
        )
        return model.to(DTYPES[models.dtype or "float32"]).train(), tokenizer
    model, tokenizer = load(
        _saved_model(models.model),
        trust_remote_code=models.trust_remote_code,
        dtype=models.dtype,
        block_length=models.block_length,
    )
    return model.train(), tokenizer


def tokenizer_of(models: ModelConfig, model: str) -> PreTrainedTokenizerBase:
    """The tokenizer `model` (the run's model or its reference) comes with, without loading it."""
    if model in TINY_PRESETS:
        return load_tokenizer(models.tokenizer)
    return tokenizer_from_pretrained(
        check_source(_saved_model(model)), trust_remote_code=models.trust_remote_code
    )


def _saved_model(model: str) -> str:
    if not Path(model).is_dir() and "/" not in model:
        raise FileNotFoundError(
            f"--model {model!r} is neither a directory, a Hub id (owner/name) nor one of {sorted(TINY_PRESETS)}"
        )
    return model


def load_tokenizer(path: str | None) -> PreTrainedTokenizerBase:
    if path is None or path == "char":
        return char_tokenizer()
    if not Path(path).expanduser().exists():
        fingerprint(path, what="--tokenizer")  # a path that does not exist is named as such
        path = resolve_hub_name(path)
    return tokenizer_from_pretrained(path)


def load_reference(
    path: str,
    target: DiffusionModel,
    tokenizer: PreTrainedTokenizerBase,
    trust_remote_code: bool = False,
    dtype: str | None = None,
) -> torch.nn.Module:
    """The frozen reference: eval mode, no gradients, checked against the target (`check_reference`)."""
    model, ref_tokenizer = load(path, trust_remote_code=trust_remote_code, dtype=dtype)
    check_shared_vocabulary(tokenizer, ref_tokenizer, path)
    try:
        check_reference(target, DiffusionModel.wrap(model), (tokenizer, ref_tokenizer))
    except ValueError as err:
        raise ValueError(f"--reference {path}: {err}") from err
    return freeze(model)


def apply_lora(model: torch.nn.Module, lora: LoraConfig) -> torch.nn.Module:
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    adapters = PeftLoraConfig(
        r=lora.rank, lora_alpha=lora.alpha, target_modules=lora.target_modules, lora_dropout=0.0
    )
    return get_peft_model(model, adapters)


class Trainer:
    def __init__(self, config: TrainConfig, residual: ResidualTrainingConfig | None = None):
        if residual is not None:  # the older spelling of TrainConfig(residual=...)
            config = replace(config, residual=residual)
        self.config = config
        self.residual = config.residual  # None unless stage rcd
        self.out = Path(config.runtime.out)
        self.accelerator = Accelerator(
            cpu=_cpu_only(),
            mixed_precision=config.models.mixed_precision,
            log_with=None if config.runtime.report_to == "none" else config.runtime.report_to,
            project_dir=config.runtime.out,
            gradient_accumulation_steps=config.optim.grad_accum,
            dataloader_config=DataLoaderConfiguration(
                # a stream is read by every process, each keeping its share of the examples
                use_seedable_sampler=True,
                data_seed=config.seed,
                dispatch_batches=False if config.dataset.streaming else None,
            ),
        )
        set_seed(config.seed)
        if config.stage == "rcd":  # the shared vocabulary, from the tokenizers: before any model loads
            models = config.models
            check_shared_vocabulary(
                tokenizer_of(models, models.model), tokenizer_of(models, models.reference), models.reference
            )
        model, self.tokenizer = build_model(config)
        context = context_length(model)
        if (
            context is not None
            and config.dataset.max_prompt_length + config.dataset.max_response_length > context
        ):
            raise ValueError(
                f"--max-prompt-length {config.dataset.max_prompt_length} + --max-response-length "
                f"{config.dataset.max_response_length} exceed the model's context of {context} positions; lower them"
            )
        if config.models.gradient_checkpointing:
            enable_gradient_checkpointing(model)
        if config.lora.rank:
            model = apply_lora(model, config.lora)
        target = DiffusionModel.wrap(model, config.models.attention)
        self.attention = target.attention
        self.block_length = target.block_length  # resolved once, as the model was built or loaded
        if self.attention == "block-causal" and not self.block_length:
            raise ValueError("block-causal training needs --block-length")
        self.reference = None
        if config.stage == "rcd":
            reference = load_reference(
                config.models.reference,
                target,
                self.tokenizer,
                config.models.trust_remote_code,
                config.models.reference_dtype or config.models.dtype,
            )
            self.reference = place_reference(
                ReferenceModule(reference, self.block_length, self.residual), self.accelerator
            )
        self.cache = (
            ReferenceCache(config.cache_top_k, self.residual.residual) if config.cache_reference else None
        )
        collate = SftCollator(
            self.tokenizer.pad_token_id,
            self.tokenizer.eos_token_id,
            self.block_length if self.attention == "block-causal" else None,
            config.dataset.max_response_length if config.dataset.response_padding == "max" else None,
        )
        loader = self._train_loader(collate)
        eval_loader = (
            DataLoader(
                self._load(config.dataset.eval_data, config.dataset.eval_split),
                batch_size=config.optim.batch_size,
                collate_fn=collate,
            )
            if config.dataset.eval_data
            else None
        )
        module = StageModule(
            model,
            attention=self.attention,
            block_length=self.block_length,
            residual=self.residual,
        )
        optimizer = torch.optim.AdamW(
            [p for p in module.parameters() if p.requires_grad],
            lr=config.optim.lr,
            weight_decay=config.optim.weight_decay,
        )
        self.steps_per_epoch = (
            None
            if config.dataset.streaming
            else math.ceil(math.ceil(len(loader) / self.accelerator.num_processes) / config.optim.grad_accum)
        )
        self.total_steps = config.optim.max_steps or config.optim.epochs * self.steps_per_epoch
        # a prepared scheduler is stepped once per process at each optimizer step (Accelerate
        # sizes schedules in single-process batches), so ours is sized in steps x processes
        processes = self.accelerator.num_processes
        scheduler = get_scheduler(
            config.optim.schedule,
            optimizer,
            num_warmup_steps=(
                config.optim.warmup_steps or math.ceil(config.optim.warmup_ratio * self.total_steps)
            )
            * processes,
            num_training_steps=self.total_steps * processes,
        )
        prepared = self.accelerator.prepare(module, optimizer, loader, scheduler)
        self.module, self.optimizer, self.loader, self.scheduler = prepared
        self.eval_loader = self.accelerator.prepare(eval_loader) if eval_loader is not None else None
        self.state = TrainerState()
        self._logged: set[tuple[str, int]] = set()  # (kind, step) rows already in metrics.jsonl
        self._last_loss: float | None = None

    def _data_options(self, split: str) -> DataOptions:
        c = self.config
        return DataOptions(
            c.dataset.max_prompt_length,
            c.dataset.max_response_length,
            c.dataset.overflow,
            c.dataset.prompt_field,
            c.dataset.response_field,
            c.dataset.messages_field,
            split,
        )

    def _load(self, path: str, split: str):
        cache = (
            None
            if self.config.dataset.cache_dir == "none"
            else (self.config.dataset.cache_dir or default_cache_dir())
        )
        examples, stats = load_examples(path, self.tokenizer, self._data_options(split), cache)
        self.accelerator.print(f"{path}: {stats.describe()}")
        return examples

    def _train_loader(self, collate: SftCollator) -> DataLoader:
        """Shuffled, length-grouped (`--group-by-length`) or streamed batches of --data."""
        c = self.config
        if c.dataset.streaming:
            stream = StreamingExamples(
                c.dataset.data, self.tokenizer, self._data_options(c.dataset.data_split), c.seed
            )
            return DataLoader(stream, batch_size=c.optim.batch_size, collate_fn=collate)
        examples = self._load(c.dataset.data, c.dataset.data_split)
        if not c.dataset.group_by_length:
            return DataLoader(examples, batch_size=c.optim.batch_size, shuffle=True, collate_fn=collate)
        lengths = [len(e.prompt_ids) + len(e.response_ids) for e in examples]
        sampler = LengthGroupedSampler(lengths, c.optim.batch_size, c.seed)
        return DataLoader(examples, batch_size=c.optim.batch_size, sampler=sampler, collate_fn=collate)

    # ----------------------------------------------------------------- one batch
    def _noisy(self, batch: dict[str, torch.Tensor], epoch: int):
        return add_noise(
            batch,
            mask_token_id=self.tokenizer.mask_token_id,
            seed=self.config.seed,
            epoch=epoch,
            eps=self.config.eps,
            block_length=self.block_length if self.attention == "block-causal" else None,
        )

    def _signal(self, noisy, use_cache: bool) -> ReferenceSignal | None:
        if self.reference is None:
            return None
        if use_cache and self.cache is not None:
            cached = self.cache.lookup(noisy, self.accelerator.device)
            if cached is not None:
                return cached
        with self.accelerator.autocast():
            signal = self.reference.signal(noisy)
        if use_cache and self.cache is not None:
            self.cache.store(noisy, signal.logits)
        return signal

    @torch.no_grad()
    def evaluate(self) -> float | None:
        """Mean loss of the stage's own objective on the held-out set, with fixed noise."""
        if self.eval_loader is None:
            return None
        self.module.eval()
        total = torch.zeros(2, device=self.accelerator.device)
        for batch in self.eval_loader:
            noisy = self._noisy(batch, EVAL_EPOCH)
            loss = self.module(noisy, self._signal(noisy, use_cache=False))
            total += torch.stack(
                [loss * len(batch["index"]), torch.tensor(len(batch["index"]), device=loss.device)]
            )
        self.module.train()
        total = self.accelerator.reduce(total, reduction="sum")
        return float(total[0] / total[1])

    # ----------------------------------------------------------------- the loop
    def train(self) -> dict[str, Any]:
        config, acc = self.config, self.accelerator
        self.out.mkdir(parents=True, exist_ok=True)
        self._resume()
        if config.runtime.report_to != "none":
            acc.init_trackers(config.runtime.run_name or self.out.name, config=_scalars(config.saved()))
        bar = tqdm(
            total=self.total_steps,
            initial=self.state.step,
            desc=f"train {config.stage}",
            disable=not (config.runtime.progress and acc.is_local_main_process),
            dynamic_ncols=True,
        )
        window = {"loss": 0.0, "micro": 0, "tokens": 0, "seconds": 0.0}
        last_loss = self._last_loss  # a run resumed at its last step logs nothing new
        self.module.train()
        while self.state.step < self.total_steps:
            epoch = self.state.epoch
            self.loader.set_epoch(epoch)
            batches = (
                acc.skip_first_batches(self.loader, self.state.batch_in_epoch)
                if self.state.batch_in_epoch
                else self.loader
            )
            noise_epoch = 0 if self.cache is not None else epoch
            for batch in batches:
                started = time.perf_counter()
                noisy = self._noisy(batch, noise_epoch)
                with acc.accumulate(self.module):
                    loss = self.module(noisy, self._signal(noisy, use_cache=True))
                    acc.backward(loss)
                    if acc.sync_gradients and config.optim.max_grad_norm > 0:
                        acc.clip_grad_norm_(self.module.parameters(), config.optim.max_grad_norm)
                    self.optimizer.step()
                    self.scheduler.step()
                    self.optimizer.zero_grad()
                self.state.batch_in_epoch += 1
                window["loss"] += loss.detach().float().item()  # waits for the device: its time is counted
                elapsed = time.perf_counter() - started
                self.state.seconds += elapsed
                window["seconds"] += elapsed
                window["micro"] += 1
                window["tokens"] += int(batch["attention_mask"].sum())
                if not acc.sync_gradients:
                    continue
                self.state.step += 1
                bar.update(1)
                saving = config.runtime.save_every and self.state.step % config.runtime.save_every == 0
                if (
                    saving
                    or self.state.step % config.runtime.log_every == 0
                    or self.state.step == self.total_steps
                ):
                    last_loss = self._log(window, bar)  # before a checkpoint: resume restarts a window
                if config.runtime.eval_every and self.state.step % config.runtime.eval_every == 0:
                    self._log_eval()
                if saving:
                    self._save_checkpoint()
                if self.state.step >= self.total_steps:
                    break
            else:
                self.state.epoch += 1
                self.state.batch_in_epoch = 0
                if self.cache is not None and acc.is_main_process and epoch == 0:
                    self.cache.save(self.out / "reference_cache.pt")
        bar.close()
        eval_loss = self._log_eval()
        return self._finish(last_loss, eval_loss)

    def _log(self, window: dict, bar) -> float:
        acc = self.accelerator
        seconds = max(window["seconds"], 1e-9)
        stats = torch.tensor([window["loss"] / max(window["micro"], 1), window["tokens"]], device=acc.device)
        stats = acc.reduce(stats, reduction="sum")
        loss = float(stats[0]) / acc.num_processes
        tokens = int(stats[1])
        self.state.tokens += tokens
        row = {
            "step": self.state.step,
            "epoch": self.state.epoch,
            "loss": loss,
            "lr": self.scheduler.get_last_lr()[0],
            "tokens": self.state.tokens,
            "tokens_per_second": tokens / seconds,
            "train_seconds": self.state.seconds,
        }
        self._append_metrics("loss", row)
        acc.log({k: v for k, v in row.items() if k != "step"}, step=self.state.step)
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{row['lr']:.2e}", tok_s=f"{row['tokens_per_second']:.0f}")
        window.update(loss=0.0, micro=0, tokens=0, seconds=0.0)
        return loss

    def _log_eval(self) -> float | None:
        eval_loss = self.evaluate()
        if eval_loss is not None:
            self._append_metrics("eval", {"step": self.state.step, "eval_loss": eval_loss})
            self.accelerator.log({"eval_loss": eval_loss}, step=self.state.step)
        return eval_loss

    def _append_metrics(self, kind: str, row: dict) -> None:
        """Append-only log: a step logged before a kill (after the last checkpoint) is not logged twice."""
        if self.accelerator.is_main_process and (kind, row["step"]) not in self._logged:
            append_jsonl(self.out / METRICS_FILE, row)
            self._logged.add((kind, row["step"]))

    def _save_checkpoint(self) -> None:
        path = save_checkpoint(self.accelerator, self.out, self.state, self.config.runtime.keep_checkpoints)
        if self.cache is not None and self.accelerator.is_main_process:
            self.cache.save(path / "reference_cache.pt")

    def _resume(self) -> None:
        """Continue from the last complete checkpoint; `train()` has checked it is this run's."""
        metrics = self.out / METRICS_FILE
        if self.accelerator.is_main_process:
            cut_torn_tail(metrics)  # a kill mid-append: the next row starts on its own line
        self.accelerator.wait_for_everyone()
        rows = read_rows(metrics)
        path, notices = latest_checkpoint(self.out) if self.config.runtime.resume else (None, [])
        if self.accelerator.is_main_process:
            for notice in notices:
                print(f"rcd: {notice}", file=sys.stderr)
        if path is not None:
            self.state = load_checkpoint(self.accelerator, path)
            if self.cache is not None and (path / "reference_cache.pt").exists():
                self.cache.load(path / "reference_cache.pt")
            self.accelerator.print(f"resumed from {path} at step {self.state.step}")
        kept = [r for r in rows if r["step"] <= self.state.step]
        # rows after the checkpoint were logged by the killed run: those steps are trained again
        # and give the same rows, which are then not written twice
        self._logged = {("eval" if "eval_loss" in r else "loss", r["step"]) for r in rows}
        self._last_loss = next((r["loss"] for r in reversed(kept) if "loss" in r), None)

    def _save_adapter(self, model) -> None:
        """OUT/adapter: the LoRA weights and the base they adapt (absolute path or Hub id)."""
        base = Path(self.config.models.model)
        model.peft_config["default"].base_model_name_or_path = (
            str(base.resolve()) if base.is_dir() else self.config.models.model
        )
        model.save_pretrained(self.out / ADAPTER_DIR, safe_serialization=True)
        self.tokenizer.save_pretrained(self.out / ADAPTER_DIR)

    def _finish(self, last_loss: float | None, eval_loss: float | None) -> dict[str, Any]:
        acc = self.accelerator
        acc.wait_for_everyone()
        summary = {
            "stage": self.config.stage,
            "steps": self.state.step,
            "epochs_started": self.state.epoch + (self.state.batch_in_epoch > 0),
            "train_seconds": self.state.seconds,
            "tokens": self.state.tokens,
            "tokens_per_second": self.state.tokens / max(self.state.seconds, 1e-9),
            "final_loss": last_loss,
            "eval_loss": eval_loss,
            "processes": acc.num_processes,
            "device": str(acc.device),
            "config": self.config.saved(),
            "residual": asdict(self.residual) if self.residual is not None else None,
        }
        if self.cache is not None:
            summary["reference_cache"] = {"hits": self.cache.hits, "misses": self.cache.misses}
        model = acc.unwrap_model(self.module).model
        rule_module = getattr(
            model, PARAMETERS_ATTRIBUTE, None
        )  # a learned feedback rule's (kept past a merge)
        if self.config.lora.rank:
            if acc.is_main_process:
                self._save_adapter(model)
            model = model.merge_and_unload()
        if acc.is_main_process:
            summary["files"] = self._save_final(model, rule_module)
            write_json(self.out / SUMMARY_FILE, summary)  # written last: marks the run complete
        acc.wait_for_everyone()
        acc.end_training()  # flushes and closes the trackers (none: nothing to do)
        return summary

    def _save_final(self, model: torch.nn.Module, rule_module: torch.nn.Module | None = None) -> list[str]:
        """Model + tokenizer (+ a learned feedback rule's module, in its own file) into a temporary
        folder, then each whole file renamed into OUT."""
        tmp = self.out / ".final.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        with without_rule_parameters(model):
            model.save_pretrained(tmp, safe_serialization=True)
        if rule_module is not None:
            save_rule_parameters(rule_module, tmp)
        self.tokenizer.save_pretrained(tmp)
        names = sorted(f.name for f in tmp.iterdir())
        for name in names:
            normal_mode(tmp / name)
            os.replace(tmp / name, self.out / name)
        tmp.rmdir()
        return names


ADAPTER_DIR = "adapter"


def _scalars(options: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Tracker hyperparameters, flat (residual.dropout as residual_dropout); None as 'none'
    (TensorBoard takes neither None nor nested values)."""
    flat: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, dict):
            flat.update(_scalars(value, f"{prefix}{key}_"))
        else:
            flat[prefix + key] = "none" if value is None else value
    return flat


def train(config: TrainConfig, residual: ResidualTrainingConfig | None = None) -> dict[str, Any]:
    """Run one training stage; returns the summary also written to OUT/train_summary.json.

    OUT is locked while the run lasts. A run of the same options and inputs in OUT is
    continued from its last checkpoint, or, when complete, returned as it is; a run of
    other options is refused unless `config.runtime.overwrite` (see `rcd.rundir`).
    """
    if residual is not None:  # the older spelling of TrainConfig(residual=...)
        config = replace(config, residual=residual)
    options, inputs = train_record(
        config, config.residual
    )  # before any model loads: a missing path fails here
    summary_path = Path(config.runtime.out) / SUMMARY_FILE
    saved = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    run = RunDir(config.runtime.out, "train", (*WORK, *saved.get("files", [])))
    record = run.record_of(options, inputs)
    state = PartialState(cpu=_cpu_only())
    with run if state.is_main_process else contextlib.nullcontext():
        continuing = run.check(record, overwrite=config.runtime.overwrite) if state.is_main_process else None
        continuing = bool(_broadcast(continuing))
        if continuing and not config.runtime.resume:
            raise UsageError(
                f"{config.runtime.out} holds a run of these options; drop --no-resume to continue it, "
                "or pass --overwrite to start again"
            )
        if continuing and summary_path.exists():
            PartialState().print(
                f"{config.runtime.out}: this run is complete ({SUMMARY_FILE}); nothing to do"
            )
            return json.loads(summary_path.read_text())
        trainer = Trainer(config)
        if state.is_main_process:
            run.record(record)  # the run has really started: model and data loaded
        return trainer.train()


def _cpu_only() -> bool:
    """Without an accelerator, CPU mode (gloo DDP under torchrun / accelerate launch)."""
    return not (torch.cuda.is_available() or torch.backends.mps.is_available())


def _broadcast(value: Any) -> Any:
    """The main process's value on every process."""
    from accelerate.utils import broadcast_object_list

    if PartialState().num_processes == 1:
        return value
    return broadcast_object_list([value])[0]
