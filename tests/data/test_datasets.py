"""Training data beyond JSONL: dataset folders, parquet, field mapping, cache, length grouping, streaming."""

import json

import datasets  # noqa: E402  (a dependency: never skipped)
import pytest
import torch
from accelerate import Accelerator, DataLoaderConfiguration
from torch.utils.data import DataLoader

import rcd
import rcd.data.datasets as rcd_datasets
from rcd.data.batching import LengthGroupedSampler
from rcd.data.datasets import DataOptions, load_examples
from rcd.data.sft import load_sft
from rcd.train import TrainConfig, Trainer

ROWS = [
    {"problem": f"{a}+{a + 1}=", "generated_solution": str(2 * a + 1) * (1 + a % 7), "expected_answer": "x"}
    for a in range(40)
]


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    jsonl = root / "plain.jsonl"
    jsonl.write_text(
        "".join(
            json.dumps({"prompt": r["problem"], "response": r["generated_solution"]}) + "\n" for r in ROWS
        )
    )
    datasets.Dataset.from_list(ROWS).save_to_disk(str(root / "openmath"))  # OpenMathInstruct-2 columns
    chats = [
        {
            "messages": [
                {"role": "user", "content": r["problem"]},
                {"role": "assistant", "content": r["generated_solution"]},
            ],
            "answer": "x",
        }
        for r in ROWS
    ]
    datasets.Dataset.from_list(chats).to_parquet(str(root / "openr1.parquet"))  # OpenR1-Math's chat column
    return {"jsonl": str(jsonl), "dir": str(root / "openmath"), "parquet": str(root / "openr1.parquet")}


def examples(source, tokenizer=None, cache=None, **fields):
    tok = tokenizer or rcd.char_tokenizer()
    return load_examples(source, tok, DataOptions(64, 64, **fields), cache)[0]


def test_dataset_folder_and_parquet_give_the_jsonl_examples(sources):
    expected = load_sft(sources["jsonl"], rcd.char_tokenizer(), max_prompt_length=64, max_response_length=64)[
        0
    ]
    folder = examples(sources["dir"], prompt_field="problem", response_field="generated_solution")
    assert folder == expected
    chats = examples(sources["parquet"])
    tok = rcd.char_tokenizer()
    first_prompt = tok("user: " + ROWS[0]["problem"] + "\nassistant: ", add_special_tokens=False)["input_ids"]
    assert chats[0].prompt_ids == tuple(first_prompt)  # rendered as role lines (no chat template)
    assert [e.response_ids for e in chats] == [e.response_ids for e in expected]


def test_missing_fields_name_the_mapping(sources):
    with pytest.raises(
        rcd.data.DataError, match=r"openmath\[train\]\[0\]: no field 'messages'.*--prompt-field"
    ):
        examples(sources["dir"], prompt_field="question")


def test_tokenisation_cached_by_content_and_tokenizer(sources, tmp_path, monkeypatch):
    first = examples(
        sources["dir"], cache=tmp_path, prompt_field="problem", response_field="generated_solution"
    )
    calls = []
    original = rcd_datasets.tokenize_rows
    monkeypatch.setattr(rcd_datasets, "tokenize_rows", lambda *a: calls.append(1) or original(*a))
    again = examples(
        sources["dir"], cache=tmp_path, prompt_field="problem", response_field="generated_solution"
    )
    assert again == first and calls == []  # read back, not tokenised
    other = rcd.char_tokenizer("0123456789+=")
    examples(
        sources["dir"],
        tokenizer=other,
        cache=tmp_path,
        prompt_field="problem",
        response_field="generated_solution",
    )
    assert calls == [1] and len(list(tmp_path.glob("*.npz"))) == 2  # another tokenizer, another entry


def padding_fraction(batches, lengths):
    return sum(len(b) * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in batches) / sum(
        len(b) * max(lengths[i] for i in b) for b in batches
    )


def test_length_grouped_batches_cover_every_example_once_deterministically():
    lengths = [int(x) for x in torch.randint(10, 2000, (1000,), generator=torch.Generator().manual_seed(0))]
    sampler = LengthGroupedSampler(lengths, batch_size=8, seed=3)
    order = list(sampler)
    assert sorted(order) == list(range(1000))  # each example exactly once per epoch
    assert list(LengthGroupedSampler(lengths, batch_size=8, seed=3)) == order  # a function of the seed
    sampler.set_epoch(1)
    assert list(sampler) != order and sorted(sampler) == list(range(1000))
    grouped = [order[i : i + 8] for i in range(0, 1000, 8)]
    shuffled = torch.randperm(1000, generator=torch.Generator().manual_seed(1)).tolist()
    random = [shuffled[i : i + 8] for i in range(0, 1000, 8)]
    assert padding_fraction(grouped, lengths) < 0.1 < 0.3 < padding_fraction(random, lengths)


def test_length_grouped_loader_resumes_mid_epoch():
    """After `skip_first_batches`, a fresh prepared loader yields what the uninterrupted one did."""

    def loader():
        acc = Accelerator(cpu=True, dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True))
        data = list(range(64))
        sampler = LengthGroupedSampler([(7 * i) % 23 for i in data], batch_size=4, seed=0)
        return acc, acc.prepare(DataLoader(data, batch_size=4, sampler=sampler))

    acc, full = loader()
    full.set_epoch(2)
    uninterrupted = [b.tolist() for b in full]
    acc, cut = loader()
    cut.set_epoch(2)
    resumed = [b.tolist() for b in acc.skip_first_batches(cut, 5)]
    assert resumed == uninterrupted[5:]


def test_trainer_on_a_dataset_folder_grouped_and_on_a_streamed_parquet(sources, tmp_path):
    common = dict(
        model="tiny-xs",
        batch_size=8,
        max_steps=2,
        log_every=1,
        progress=False,
        lr=1e-3,
        cache_dir=str(tmp_path / "cache"),
    )
    folder = Trainer(
        TrainConfig.of(
            data=sources["dir"],
            out=str(tmp_path / "a"),
            prompt_field="problem",
            response_field="generated_solution",
            group_by_length=True,
            **common,
        )
    )
    assert isinstance(folder.loader.batch_sampler.sampler, LengthGroupedSampler)
    assert folder.train()["steps"] == 2
    streamed = Trainer(
        TrainConfig.of(data=sources["parquet"], out=str(tmp_path / "b"), streaming=True, **common)
    )
    summary = streamed.train()
    assert summary["steps"] == 2 and summary["final_loss"] > 0


def test_streaming_needs_max_steps(tmp_path):
    with pytest.raises(ValueError, match="--streaming needs --max-steps"):
        TrainConfig.of(data="x.parquet", out=str(tmp_path), streaming=True)
