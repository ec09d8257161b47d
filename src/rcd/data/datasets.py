"""Training data from anything `datasets` reads, with field mapping, a tokenisation cache and streaming.

`--data` may be
- a `.jsonl` file: read by `rcd.data.jsonl` (errors name the file and line);
- a `.json` / `.parquet` / `.arrow` / `.csv` file, or a folder of such files: `load_dataset`;
- a folder written by `Dataset.save_to_disk` / `DatasetDict.save_to_disk`: `load_from_disk`;
- anything else: a Hub dataset name for `load_dataset` (needs the network).
Rows become prompt/response pairs through a field mapping, e.g. OpenMathInstruct-2
(`--prompt-field problem --response-field generated_solution`) or OpenR1-Math
(`--messages-field messages`, a chat whose last turn is the assistant's answer; or
`--prompt-field problem --response-field solution`).

Tokenised examples are cached on disk, keyed by the data's content (file bytes, or the
dataset's fingerprint), the tokenizer (vocabulary, special tokens, chat template), the field
mapping and the length rules; a second run of the same data skips tokenisation. With
`streaming`, rows are read, shuffled in a buffer and tokenised on the fly, for data that
does not fit in memory (length grouping and caching then do not apply).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from .jsonl import DataError, iter_jsonl
from .sft import SftExample, SftStats, tokenize_rows

FILE_BUILDERS = {".json": "json", ".parquet": "parquet", ".arrow": "arrow", ".csv": "csv"}
CACHE_VERSION = 1


@dataclass(frozen=True)
class DataOptions:
    """How rows become examples (the fields of `TrainConfig` that say so)."""

    max_prompt_length: int
    max_response_length: int
    overflow: str = "drop"
    prompt_field: str = "prompt"
    response_field: str = "response"
    messages_field: str = "messages"
    split: str = "train"

    def canonical(self, row: dict[str, Any], where: str) -> dict[str, Any]:
        """The row under the names `prompt_response_texts` reads (prompt/response or messages)."""
        if (self.prompt_field, self.response_field, self.messages_field) == (
            "prompt",
            "response",
            "messages",
        ):
            return row  # already those names; `prompt_response_texts` reports what is missing
        if self.messages_field in row and row[self.messages_field] is not None:
            return {"messages": row[self.messages_field]}
        if self.prompt_field in row and self.response_field in row:
            return {"prompt": row[self.prompt_field], "response": row[self.response_field]}
        raise DataError(
            f"{where}: no field {self.messages_field!r}, nor both {self.prompt_field!r} and {self.response_field!r} "
            f"(fields: {sorted(row)}); map yours with --prompt-field/--response-field or --messages-field"
        )


def is_jsonl(source: str) -> bool:
    return Path(source).is_file() and Path(source).suffix == ".jsonl"


def open_dataset(source: str, split: str, streaming: bool = False):
    """A `datasets.Dataset` (or `IterableDataset` when streaming) of one split of `source`."""
    import datasets

    path = Path(source)
    if path.is_dir() and any(
        (path / f).exists() for f in ("dataset_info.json", "state.json", "dataset_dict.json")
    ):
        data = datasets.load_from_disk(str(path))
        if isinstance(data, datasets.DatasetDict):
            if split not in data:
                raise DataError(f"{source}: no split {split!r} (splits: {sorted(data)}); pass --data-split")
            data = data[split]
        return data.to_iterable_dataset() if streaming else data
    if path.is_file():
        builder = FILE_BUILDERS.get(path.suffix)
        if builder is None:
            raise DataError(
                f"{source}: unknown data file type {path.suffix!r} (jsonl, {', '.join(FILE_BUILDERS)})"
            )
        return datasets.load_dataset(builder, data_files=str(path), split="train", streaming=streaming)
    if not path.exists() and (
        path.is_absolute() or source.startswith(".") or path.suffix in (*FILE_BUILDERS, ".jsonl")
    ):
        raise FileNotFoundError(f"--data {source!r}: no such file or folder")
    try:
        return datasets.load_dataset(source, split=split, streaming=streaming)
    except (FileNotFoundError, ValueError, ConnectionError) as err:
        raise DataError(
            f"--data {source!r}: datasets could not load it ({type(err).__name__}: {err})"
        ) from err


def iter_rows(source: str, options: DataOptions, dataset=None) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, canonical row) of every row, JSONL through `rcd.data.jsonl`, the rest through `datasets`."""
    if dataset is None and is_jsonl(source):
        for number, row in iter_jsonl(source):
            where = f"{source}:{number}"
            yield where, options.canonical(row, where)
        return
    for i, row in enumerate(dataset if dataset is not None else open_dataset(source, options.split)):
        where = f"{source}[{options.split}][{i}]"
        yield where, options.canonical(row, where)


def load_examples(
    source: str,
    tokenizer: PreTrainedTokenizerBase,
    options: DataOptions,
    cache_dir: str | Path | None = None,
) -> tuple[list[SftExample], SftStats]:
    """All examples of `source`, from the tokenisation cache when it holds them."""
    dataset = None if is_jsonl(source) else open_dataset(source, options.split)
    path = None
    if cache_dir is not None:
        identity = _file_digest(source) if dataset is None else dataset._fingerprint
        path = Path(cache_dir) / f"{_cache_key(identity, tokenizer, options)}.npz"
        if path.exists():
            return _read_cache(path)
    stats = SftStats()
    rows = iter_rows(source, options, dataset)
    examples = list(
        tokenize_rows(
            rows, tokenizer, options.max_prompt_length, options.max_response_length, options.overflow, stats
        )
    )
    stats.kept = len(examples)
    if not examples:
        raise DataError(f"{source}: no usable examples ({stats.describe()})")
    if path is not None:
        _write_cache(path, examples, stats)
    return examples, stats


class StreamingExamples(torch.utils.data.IterableDataset):
    """Examples tokenised on the fly from a streamed dataset, shuffled in a buffer, per epoch."""

    def __init__(
        self,
        source: str,
        tokenizer: PreTrainedTokenizerBase,
        options: DataOptions,
        seed: int,
        buffer_size: int = 10_000,
    ):
        self.source, self.tokenizer, self.options = source, tokenizer, options
        self.stream = open_dataset(source, options.split, streaming=True)
        self.stream = self.stream.shuffle(seed=seed, buffer_size=buffer_size)
        self.stats = SftStats()

    def set_epoch(self, epoch: int) -> None:
        self.stream.set_epoch(epoch)

    def __iter__(self) -> Iterator[SftExample]:
        o = self.options
        rows = iter_rows(self.source, o, self.stream)
        yield from tokenize_rows(
            rows, self.tokenizer, o.max_prompt_length, o.max_response_length, o.overflow, self.stats
        )


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rcd" / "tokenized"


def tokenizer_digest(tokenizer: PreTrainedTokenizerBase) -> str:
    """What decides the token ids: class, vocabulary, special tokens, chat template."""
    parts = [
        type(tokenizer).__name__,
        sorted(tokenizer.get_vocab().items()),
        tokenizer.all_special_tokens,
        getattr(tokenizer, "chat_template", None),
    ]
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        parts.append(backend.to_str())  # normaliser, pre-tokeniser and merges too
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


def _cache_key(identity: str, tokenizer: PreTrainedTokenizerBase, options: DataOptions) -> str:
    parts = [CACHE_VERSION, identity, tokenizer_digest(tokenizer), asdict(options)]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def _file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_cache(path: Path, examples: list[SftExample], stats: SftStats) -> None:
    """Flat token arrays plus offsets; written to a temporary name, then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        "index": np.array([e.index for e in examples], dtype=np.int64),
        "stats": np.array([stats.kept, stats.dropped, stats.truncated], dtype=np.int64),
    }
    for name in ("prompt_ids", "response_ids"):
        seqs = [getattr(e, name) for e in examples]
        arrays[name] = np.fromiter((t for s in seqs for t in s), dtype=np.int64)
        arrays[name + "_offsets"] = np.cumsum([0] + [len(s) for s in seqs], dtype=np.int64)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _read_cache(path: Path) -> tuple[list[SftExample], SftStats]:
    with np.load(path) as z:

        def split(name):
            flat, offsets = z[name].tolist(), z[name + "_offsets"].tolist()
            return [tuple(flat[a:b]) for a, b in zip(offsets[:-1], offsets[1:])]

        prompts, responses, index = split("prompt_ids"), split("response_ids"), z["index"].tolist()
        kept, dropped, truncated = z["stats"].tolist()
    examples = [SftExample(i, p, r) for i, p, r in zip(index, prompts, responses)]
    return examples, SftStats(kept, dropped, truncated)
