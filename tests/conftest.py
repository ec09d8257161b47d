import importlib
import json
import os

import pytest
import torch

import rcd
from rcd.train import TrainConfig, train

VOCAB = 48
MASK = VOCAB - 1

# under pytest-xdist each worker gets its share of the cores (torch would take them all in
# every worker, and the workers would fight over them). The commands a test runs as
# subprocesses (the README's and usage's blocks, `rcd serve`) inherit the share through
# OMP_NUM_THREADS: with torch's default of every core, a subprocess's threads spin-wait on
# cores the other worker holds, and the README's training ran several times slower.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    WORKER_THREADS = max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    torch.set_num_threads(WORKER_THREADS)
    os.environ.setdefault("OMP_NUM_THREADS", str(WORKER_THREADS))
    os.environ.setdefault("MKL_NUM_THREADS", str(WORKER_THREADS))


def make_model(attention: str = "bidirectional", seed: int = 0, **kw):
    """A tiny fp64 model with peaky random logits, so thresholds commit several tokens.

    fp64 keeps rounding noise far below decision margins: soft-token recursions (alpha=1
    above all) amplify last-bit differences between equivalent computations.
    """
    block = kw.pop("block_length", 4 if attention == "block-causal" else None)
    return rcd.tiny_model(
        vocab_size=kw.pop("vocab_size", VOCAB),
        seed=seed,
        attention=attention,
        block_length=block,
        hidden_size=32,
        num_hidden_layers=kw.pop("num_hidden_layers", 2),
        num_attention_heads=4,
        initializer_range=0.3,
        **kw,
    ).double()


@pytest.fixture(scope="session")
def bidirectional():
    return make_model("bidirectional", seed=0)


@pytest.fixture(scope="session")
def block_causal():
    return make_model("block-causal", seed=1)


@pytest.fixture(scope="session")
def models(bidirectional, block_causal):
    return {"bidirectional": bidirectional, "block-causal": block_causal}


def random_prompts(n: int, length: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(4, MASK, (n, length), generator=g)


def require_extra(module: str, extra: str):
    """Import an optional extra's module; skip without it, except in CI (env CI set), where
    the dev extra is installed and a missing module must fail the run instead of hiding tests."""
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module, reason=f"optional extra: pip install 'rcd[{extra}]'")


def slow_except(cases, fast):
    """Parametrize cases (values, or tuples of values for several names): those in `fast` run
    in every tier, the rest are marked slow (`make test-fast` keeps a representative corner
    of a large matrix; `make test` runs it all)."""
    marks = {False: pytest.mark.slow, True: ()}
    return [
        pytest.param(*(case if isinstance(case, tuple) else (case,)), marks=marks[case in fast])
        for case in cases
    ]


def pytest_collection_modifyitems(config, items):
    """Files holding a `long` test (minutes end to end) run first, then those holding a slow
    one, then the rest; each file's tests stay together and in their order.

    Under xdist (`make test`: one worker per core, a file's tests on one worker, files handed
    out in this order with --no-loadscope-reorder) the longest runs start at once and the
    short files fill the other workers around them, instead of a minutes-long file starting
    last and running alone.
    """
    rank = {}
    for item in items:
        file = item.nodeid.split("::")[0]
        if item.get_closest_marker("long"):
            if not item.get_closest_marker("slow"):
                raise pytest.UsageError(f"{item.nodeid}: a long test is slow too (mark it slow)")
            rank[file] = 0
        elif item.get_closest_marker("slow"):
            rank[file] = min(rank.get(file, 1), 1)
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], 2))


def one_stage2_step(checkpoint, tmp_path, **options) -> dict:
    """One step of stage rcd on a remote-code checkpoint, itself as the frozen reference, over
    eight tiny examples: the presets' check that training runs on their model."""
    data = tmp_path / "train.jsonl"
    data.write_text(
        "".join(json.dumps({"prompt": f"{a}+{a}=", "response": str(2 * a)}) + "\n" for a in range(8))
    )
    return train(
        TrainConfig.of(
            stage="rcd",
            model=str(checkpoint),
            reference=str(checkpoint),
            data=str(data),
            out=str(tmp_path / "out"),
            trust_remote_code=True,
            batch_size=4,
            max_prompt_length=16,
            max_response_length=16,
            max_steps=1,
            progress=False,
            save_every=0,
            **options,
        )
    )
