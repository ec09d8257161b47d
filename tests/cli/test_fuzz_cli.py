"""Property-based fuzzing of every entry point (hypothesis).

Every flag of every command is drawn from the parsers `rcd.cli` builds, so a new flag is
fuzzed without a change here. Whatever the values, `rcd` never shows a traceback nor an
unexpected error; a refused command line exits 2 with exactly one line. Model construction
(and the synthetic data generation that precedes it) raise `Started` here: an error seen
before it was raised before any model loaded.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os

import pytest
import torch
import transformers
from accelerate.state import AcceleratorState
from huggingface_hub import constants
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import rcd
import rcd.demo
from conftest import VOCAB
from rcd.cli import build_parser, command_parsers, main
from rcd.config import dataclass_from_dict
from rcd.data.jsonl import DataError
from rcd.decode import DecodeConfig
from rcd.demo import DemoConfig
from rcd.eval.likelihood import LikelihoodConfig, mc_loglikelihood
from rcd.eval.runner import EvalConfig, evaluate
from rcd.eval.sweep import Method, SweepConfig, sweep
from rcd.models import hub
from rcd.models.adapter import DiffusionModel
from rcd.models.loading import LoadConfig
from rcd.residual import ResidualConfig
from rcd.train import TrainConfig, train
from test_bad_input import save_tiny, write_jsonl

FUZZED = (
    "train",
    "generate",
    "eval",
    "sweep",
    "score",
    "data",
    "demo",
    "serve",
)  # lm-eval parses its own arguments
INPUTS = (
    "model",
    "reference",
    "baseline",
    "data",
    "eval_data",
    "tokenizer",
    "predictions",
    "config",
    "target_model",
)
OUTPUTS = ("out",)
# RCD_FUZZ_SCALE=10 draws ten times as many examples (a longer hunt than the test tiers')
SCALE = int(os.environ.get("RCD_FUZZ_SCALE", "1"))


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples * SCALE,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=SCALE == 1,
    )


SETTINGS = fuzz_settings(25)


class Started(BaseException):
    """A model is being built (or a task's data generated): the options were all accepted.
    BaseException, so that no `except Exception` on the way reports it as an error."""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    save_tiny(root / "model")
    write_jsonl(
        root / "data.jsonl",
        [
            {
                "prompt": f"{a}+{a}=",
                "response": str(2 * a),
                "question": f"{a}+{a}?",
                "answer": f"#### {2 * a}",
            }
            for a in range(4)
        ],
    )
    write_jsonl(root / "preds.jsonl", [{"index": 0, "sample": 0, "completion": "#### 0"}])
    (root / "options.yaml").write_text("seed: 3\n")
    (root / "bad.yaml").write_text("[1, 2\n")
    return root


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models decode and train faster on one thread (far faster on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def bidirectional_dir(workdir):
    return rcd.load(workdir / "model")


@pytest.fixture
def sandbox(workdir, monkeypatch):
    """In the work folder; models, data generation and the Hub unreachable."""
    monkeypatch.chdir(workdir)

    def started(*args, **kwargs):
        raise Started

    monkeypatch.setattr(transformers.PreTrainedModel, "__init__", started)
    monkeypatch.setattr(rcd.demo, "make_splits", started)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(workdir / "hub-cache"))
    hub.hub_unreachable.cache_clear()
    yield workdir
    hub.hub_unreachable.cache_clear()


JUNK = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=6)
NUMBERS = st.one_of(st.integers(-3, 40), st.integers(), st.floats(allow_nan=True, allow_infinity=True))


def number_text(kind) -> st.SearchStrategy[str]:
    return st.one_of(
        NUMBERS.map(
            lambda x: str(kind(x)) if kind is int and isinstance(x, float) and math.isfinite(x) else str(x)
        ),
        JUNK,
    )


def value_of(action: argparse.Action) -> st.SearchStrategy[str]:
    """Text for one flag's value: mostly plausible (its choices, numbers, files here), some junk."""
    if action.dest in INPUTS:
        return st.sampled_from(
            [
                "model",
                "data.jsonl",
                "preds.jsonl",
                "options.yaml",
                "bad.yaml",
                "nope",
                "./nope",
                "owner/nope",
                "tiny-xs",
                "char",
                "model/nope",
                "",
            ]
        )
    if action.dest in OUTPUTS:
        return st.sampled_from(["out", "out2", "runs/x", "data.jsonl"])
    if action.choices:
        return st.one_of(st.sampled_from([str(c) for c in action.choices]), JUNK)
    kind = action.type
    name = getattr(kind, "__name__", "")
    if kind in (int, float):
        return number_text(kind)
    if name.endswith(" list"):  # comma lists of int / float
        item = int if name.startswith("int") else float
        return st.lists(number_text(item), max_size=4).map(",".join)
    return st.one_of(JUNK, st.sampled_from(["1", "0", "-1", "x", "1e9"]))


def flag_strategy(action: argparse.Action) -> st.SearchStrategy[list[str]]:
    if isinstance(action, argparse.BooleanOptionalAction):
        return st.sampled_from([[flag] for flag in action.option_strings])
    if action.nargs == 0:  # store_true and the like
        return st.just([action.option_strings[0]])
    flag = action.option_strings[-1]
    return value_of(action).map(
        lambda value: [flag, value] if not value.startswith("-") else [f"{flag}={value}"]
    )


def fuzzed_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and a.dest not in ("help", "debug")]


@st.composite
def command_lines(draw, command: str) -> list[str]:
    parser = command_parsers(build_parser())[command]
    actions = fuzzed_actions(parser)
    required = [a for a in actions if a.required]
    chosen = draw(st.lists(st.sampled_from(actions), max_size=6, unique_by=lambda a: a.dest))
    # the required flags are usually given (else every line would stop at the first missing one)
    if draw(st.booleans()) or draw(st.booleans()):
        chosen = required + [a for a in chosen if a not in required]
    argv = [command]
    for action in draw(st.permutations(chosen)):
        argv += draw(flag_strategy(action))
    return argv


def run(argv: list[str], capsys) -> tuple[int | None, str]:
    """(exit code, stderr); code None: a model (or a task's data) was about to be made."""
    capsys.readouterr()
    try:
        code = main(argv)
    except Started:
        code = None
    return code, capsys.readouterr().err


def check_outcome(argv, code, err) -> None:
    assert "Traceback" not in err, (argv, err)
    assert "rerun with --debug" not in err, (argv, err)  # an error of a kind rcd did not expect: a bug
    if code in (None, 0):
        return
    errors = [line for line in err.splitlines() if line.startswith("rcd: error: ")]
    assert len(errors) == 1, (argv, err)
    if code == 2:
        assert err.strip() == errors[0], (argv, err)  # a refused command line: that one line, nothing else
    else:
        assert code == 1, (argv, code, err)


def test_every_command_and_flag_is_fuzzed():
    """The strategies above know each command's every flag (a new flag is fuzzed as it comes; a new
    kind of value fails here until `value_of` draws it)."""
    parsers = command_parsers(build_parser())
    assert set(FUZZED) | {"lm-eval"} == set(parsers)
    for command in FUZZED:
        actions = fuzzed_actions(parsers[command])
        assert len(actions) > 2
        for action in actions:
            known = action.nargs == 0 or action.type in (None, int, float, str)
            assert known or getattr(action.type, "__name__", "").endswith(" list"), (command, action.dest)
            assert isinstance(flag_strategy(action), st.SearchStrategy)


@pytest.mark.parametrize("command", FUZZED)
def test_random_command_lines_never_crash(command, sandbox, capsys):
    @SETTINGS
    @given(argv=command_lines(command))
    def property(argv):
        code, err = run(argv, capsys)
        check_outcome(argv, code, err)

    property()


# ----------------------------------------------------------------- config dataclasses
# every config either refuses a value with a message (ValueError, UsageError among them) or
# works: decodes, trains one step, evaluates, sweeps with a tiny model


@st.composite
def field_values(draw, cls, fixed: dict | None = None, most: int = 3) -> dict:
    """Keyword values for `cls`: random values of a few of its fields (nested configs drawn
    alike), the others left at their defaults, `fixed` ones as given."""
    fixed = fixed or {}
    fields = {f.name: (f, kind, optional) for f, kind, optional in config_fields(cls) if f.name not in fixed}
    names = draw(st.lists(st.sampled_from(sorted(fields)), max_size=most, unique=True))
    values = dict(fixed)
    for name in names:
        f, kind, optional = fields[name]
        strategy = value_strategy(f, kind)
        values[name] = draw(st.one_of(st.none(), strategy) if optional else strategy)
    return values


def config_fields(cls):
    """(field, type, optional?) of each option of `cls`; a flat group's (`TrainConfig.optim`) under
    their flat names, as `cls.of` takes them."""
    import types

    from rcd.config import _dest, _fields

    options = []
    for f, kind, optional in _fields(cls):
        if not f.metadata.get("flat"):
            options.append((f, kind, optional))
            continue
        head, skip = _dest(f.metadata.get("prefix", ""), ""), f.metadata.get("skip", ())
        for g, inner_kind, inner_optional in config_fields(kind):
            if g.name in skip:
                continue
            options.append(
                (types.SimpleNamespace(name=head + g.name, metadata=g.metadata), inner_kind, inner_optional)
            )
    return options


SIZES = st.integers(-2, 12)
FLOATS = st.one_of(
    st.floats(-0.5, 1.5), st.sampled_from([0.0, 1.0, 1e-6, 1e6, math.nan, math.inf, -math.inf])
)


def value_strategy(f, kind) -> st.SearchStrategy:
    import typing

    choices = f.metadata.get("choices")
    if dataclasses.is_dataclass(kind):
        return field_values(kind).flatmap(lambda values: refusing(kind, values))
    if choices:
        return st.one_of(st.sampled_from(list(choices)), st.text(max_size=4))
    if kind is bool:
        return st.booleans()
    if kind is int:
        return SIZES
    if kind is float:
        return FLOATS
    if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        return st.lists(SIZES if item is int else FLOATS, max_size=3).map(tuple)
    return st.text(max_size=4)


def refusing(cls, values) -> st.SearchStrategy:
    """A nested config built from `values`, or the default one if it refuses them."""
    try:
        return st.just(cls(**values))
    except (TypeError, ValueError):
        return st.just(cls())


def build(cls, values):
    """The config, or None when it refuses the values with a message."""
    try:
        return dataclass_from_dict(cls, values, strict=True)  # a flat group's options by their flat names
    except (TypeError, ValueError) as err:
        assert str(err).strip(), f"{cls.__name__} refused {values} without a message"
        event(f"{cls.__name__} refused")
        return None


PROMPTS = torch.tensor([[5, 9, 12, 7], [3 + 1, 20, 21, 22]])


def needs_reference(residual) -> bool:
    return residual is not None and (residual.init == "reference" or residual.feedback == "reference")


@fuzz_settings(30)
@given(decode=field_values(DecodeConfig), residual=st.one_of(st.none(), field_values(ResidualConfig)))
def test_decode_and_residual_configs_refuse_or_decode(bidirectional, decode, residual):
    config = build(DecodeConfig, decode)
    residual_config = build(ResidualConfig, residual) if residual is not None else None
    if config is None or (residual is not None and residual_config is None):
        return
    out = rcd.generate(
        bidirectional,
        PROMPTS,
        config,
        residual=residual_config,
        eos_token_id=1,
        reference=bidirectional if needs_reference(residual_config) else None,
        generator=torch.Generator().manual_seed(0),
    )
    assert out.generated.shape == (2, config.gen_length)
    assert 0 <= int(out.generated.min()) and int(out.generated.max()) < VOCAB


@fuzz_settings(15)
@given(values=field_values(LoadConfig))
def test_load_config_refuses_or_loads_and_decodes(workdir, values):
    config = build(LoadConfig, values)
    if config is None:
        return
    try:
        model, tokenizer = rcd.load(workdir / "model", **config.kwargs())
    except ValueError as err:  # refused before the weights load: a preset or override that does not fit
        assert str(err).strip()
        return
    block = model.config.block_length or 4
    decode = DecodeConfig(gen_length=2 * block, block_length=block)
    ids, mask = rcd.encode_prompts(tokenizer, ["1+1="])
    assert (
        rcd.generate(
            model, ids.to(model.device), decode, attention_mask=mask.to(model.device)
        ).generated.shape[1]
        == 2 * block
    )


@fuzz_settings(10)
@given(values=field_values(SweepConfig))
def test_sweep_config_refuses_or_sweeps(bidirectional_dir, values):
    config = build(SweepConfig, values)
    if config is None:
        return
    model, tokenizer = bidirectional_dir
    try:
        settings_ = config.settings(DecodeConfig(gen_length=8, block_length=8))
    except ValueError as err:  # a tokens-per-step that does not divide the block (UsageError)
        assert "divide" in str(err)
        return
    curves = sweep(
        [Method("seqd", model)],
        settings_,
        [{"prompt": "1+1=", "answer": "2"}],
        tokenizer,
        progress=False,
        batch_size=config.batch_size,
    )
    assert len(curves["seqd"]) == len(settings_)


@fuzz_settings(30)
@given(values=field_values(DemoConfig))
def test_demo_config_refuses_or_gives_its_settings(values):
    """(A demo trains three models: its configs are built here, and run by tests/app/test_demo.py.)"""
    config = build(DemoConfig, values)
    if config is None:
        return
    try:
        settings_ = config.scaled().settings(16, 8)
    except ValueError as err:  # a tokens-per-step that does not divide the block: refused before training
        assert "must divide the block length" in str(err)
        return
    assert settings_ or not (config.sweep.tokens_per_step or config.sweep.thresholds)


@fuzz_settings(10)
@given(values=field_values(EvalConfig, {"task": "gsm8k", "shots": 0}), limit=st.sampled_from([1, 2]))
def test_eval_config_refuses_or_evaluates(workdir, tmp_path_factory, values, limit):
    config = build(EvalConfig, {**values, "data": str(workdir / "data.jsonl"), "limit": limit})
    if config is None:
        return
    out = tmp_path_factory.mktemp("eval")
    try:
        summary = evaluate(
            str(workdir / "model"),
            out,
            config=config,
            decode=DecodeConfig(gen_length=8, block_length=8, temperature=0.5),
        )
    except ValueError as err:  # data-dependent: no chat template
        assert str(err).strip()
        event(f"refused by evaluate: {str(err)[:50]}")
        return
    event("evaluated")
    assert summary["n"] == limit * config.n_samples or summary["n_problems_requested"] == limit


@fuzz_settings(8)
@given(
    values=field_values(
        TrainConfig,
        {
            "model": "tiny-xs",
            "tokenizer": None,
            "progress": False,
            "cache_dir": "none",
            "report_to": "none",
            "run_name": None,
            "lora_rank": 0,
            "overwrite": True,
        },
    ),
    stage=st.sampled_from(["ref", "seqd", "rcd"]),
    max_steps=st.sampled_from([None, 1, 2, 0]),
)
def test_train_config_refuses_or_trains(workdir, tmp_path_factory, values, stage, max_steps):
    out = tmp_path_factory.mktemp("train")
    fixed = {
        "stage": stage,
        "data": str(workdir / "data.jsonl"),
        "out": str(out),
        "max_steps": max_steps,
        "reference": str(workdir / "model") if stage == "rcd" else None,
        "eval_data": str(workdir / "data.jsonl") if values.get("eval_data") else None,
        "epochs": min(values.get("epochs") or 1, 2),
    }
    if stage != "rcd":
        fixed["residual"] = None
    config = build(TrainConfig, {**values, **fixed})
    if config is None:
        return
    # Accelerate keeps one mixed precision per process (a second train() with another one is refused
    # by Accelerate's own ValueError); each example stands for a fresh process, as in Accelerate's tests
    AcceleratorState._reset_state()
    try:
        summary = train(config)
    except ValueError as err:  # data-dependent only: no example within the length limits, a column it lacks
        assert "examples" in str(err) or isinstance(err, DataError), err
        event("refused by train: the data")
        return
    event("trained")
    assert summary["steps"] >= 1 and math.isfinite(summary["final_loss"])


# ----------------------------------------------------------------- what the fuzzing found (regressions)
def one_error_line(code, err) -> str:
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, (code, err)
    return err.strip()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["train", "--lr", "abc", "--data", "d", "--out", "o"],
            "argument --lr: invalid float value: 'abc' (see rcd train",
        ),
        (
            ["sweep", "--model", "m", "--data", "d", "--tokens-per-step", "1,a"],
            "argument --tokens-per-step: invalid int list value: '1,a'",
        ),  # was "invalid <lambda> value"
        (["generate", "--model", "m"], "the following arguments are required: --prompt"),
        (["nope"], "invalid choice: 'nope'"),
        (
            ["sweep", "--model", "m", "--data", "d", "--task", "Oª"],
            "argument --task: invalid choice: 'Oª'",
        ),  # was exit 1
        (
            [
                "train",
                "--data",
                "data.jsonl",
                "--out",
                "o",
                "--attention",
                "block-causal",
            ],  # was exit 1, after the data
            "--attention block-causal builds a block-causal tiny model: give its --block-length",
        ),
        (
            ["eval", "--model", "model", "--out", "data.jsonl", "--data", "data.jsonl", "--shots", "0"],
            "--out data.jsonl is a file, not a directory",
        ),  # was "[Errno 17] File exists: 'data.jsonl'"
        (
            ["train", "--data", "data.jsonl", "--out", "data.jsonl"],
            "--out data.jsonl is a file, not a directory",
        ),
        (
            ["generate", "--model", "model", "--prompt", "1", "--device", ""],
            "device '' is not a torch device",
        ),
    ],
)
def test_refused_command_lines_give_one_line(sandbox, capsys, argv, message):
    code, err = run(argv, capsys)
    assert message in one_error_line(code, err)


def test_configs_refuse_what_only_their_flags_refused():
    with pytest.raises(
        ValueError, match="attention must be one of"
    ):  # was refused by the tiny model, at training
        TrainConfig.of(data="d.jsonl", out="o", attention="bogus")
    with pytest.raises(ValueError, match="stage must be one of"):
        TrainConfig.of(data="d.jsonl", out="o", stage="bogus")
    for config in (
        TrainConfig,
        DemoConfig,
    ):  # was numpy's "Seed must be between 0 and 2**32 - 1", at training
        with pytest.raises(ValueError, match=r"seed must lie in \[0, 2\*\*32\), not -1"):
            build = TrainConfig.of if config is TrainConfig else config
            build(**({"data": "d.jsonl", "out": "o"} if config is TrainConfig else {}), seed=-1)
    for device in ("", "x", "cuda:-1"):  # was a RuntimeError of torch when the model moved
        with pytest.raises(ValueError, match="is not a torch device"):
            LoadConfig(device=device)
    with pytest.raises(ValueError, match="mask_token_id must be >= 0"):
        LoadConfig(mask_token_id=-1)
    # non-finite numbers were accepted and gave garbage tokens or nan weights without an error
    for number in (math.nan, math.inf):
        with pytest.raises(ValueError, match="temperature must be a finite number >= 0"):
            DecodeConfig(temperature=number)
        with pytest.raises(ValueError, match="residual temperature must be a finite number > 0"):
            ResidualConfig(temperature=number)
        with pytest.raises(ValueError, match="dirichlet_concentration must be a finite number > 0"):
            ResidualConfig(init="dirichlet", dirichlet_concentration=number)
        with pytest.raises(ValueError, match="cfg must be a finite number >= 0"):
            LikelihoodConfig(cfg=number)
        with pytest.raises(ValueError, match="all finite"):
            DemoConfig(optim=dataclasses.replace(DemoConfig().optim, lr=number))
        for name in ("lr", "weight_decay", "max_grad_norm"):
            with pytest.raises(ValueError, match="all finite"):
                TrainConfig.of(data="d.jsonl", out="o", **{name: number})


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_loading_onto_a_missing_gpu_is_refused_before_the_weights(workdir, monkeypatch):
    def started(*args, **kwargs):
        raise Started

    monkeypatch.setattr(transformers.PreTrainedModel, "__init__", started)
    with pytest.raises(ValueError, match="no CUDA GPU is available here"):
        rcd.load(workdir / "model", device="cuda")


def test_demo_refuses_a_sweep_its_blocks_cannot_take_before_training(tmp_path, monkeypatch):
    """Found: `rcd demo --sweep-tokens-per-step 5` trained three models, then failed at the sweep
    (the generation length now grows to fit every setting; a block length set by hand still can't)."""

    def started(*args, **kwargs):
        raise Started

    monkeypatch.setattr(rcd.demo, "train", started)
    config = DemoConfig(
        task="mul",
        out=str(tmp_path / "demo"),
        n_train=8,
        n_test=2,
        block_length=4,
        sweep=SweepConfig((5,), ()),
    )
    with pytest.raises(ValueError, match=r"tokens per step \[5\] must divide the block length"):
        rcd.demo.run_demo(config)


def test_empty_column_names_are_refused():
    """Found: --response-field '' was refused only once the data was read."""
    with pytest.raises(ValueError, match="must name a column"):
        TrainConfig.of(data="d.jsonl", out="o", response_field="")


@fuzz_settings(15)
@given(values=field_values(LikelihoodConfig))
def test_likelihood_config_refuses_or_scores(bidirectional, values):
    config = build(LikelihoodConfig, values)
    if config is None:
        return
    estimate, _ = mc_loglikelihood(DiffusionModel.wrap(bidirectional), [5, 9, 12], [7, 20], config)
    assert math.isfinite(estimate) and estimate <= 0
