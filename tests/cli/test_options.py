"""Options declared once: one `--res-*` vocabulary, nested configs, refusals before any model loads."""

import argparse
import dataclasses

import pytest

from rcd.cli import main
from rcd.config import dataclass_flags, dataclass_from_args, dataclass_from_dict
from rcd.demo import DemoConfig
from rcd.residual import ResidualConfig


def test_training_residual_options_reach_the_stage_config(tmp_path, capsys):
    from rcd.train import TrainConfig

    config = TrainConfig.of(stage="rcd", reference="ref", data="d", out="o")
    assert config.residual.residual == ResidualConfig()  # stage rcd: defaults, T_res 1 as in the paper
    code = main(
        [
            "train",
            "--stage",
            "ref",
            "--data",
            str(tmp_path / "none.jsonl"),
            "--out",
            str(tmp_path / "o"),
            "--res-temperature",
            "0.9",
        ]
    )
    assert code == 2 and "apply to stage rcd only" in capsys.readouterr().err  # one-line usage error


def test_residual_flags_without_rcd_are_refused(tmp_path, capsys):
    code = main(
        [
            "eval",
            "--model",
            str(tmp_path / "missing"),
            "--out",
            str(tmp_path / "o"),
            "--res-temperature",
            "0.9",
        ]
    )
    assert code == 2 and "add --rcd" in capsys.readouterr().err


def test_demo_options_are_the_configs_it_holds():
    from rcd.cli import demo

    parser = argparse.ArgumentParser()
    demo.register(parser)
    with pytest.raises(SystemExit):  # the residual source's choices come with it
        parser.parse_args(["--res-source", "nosiy"])
    args = parser.parse_args(["--res-temperature", "0.9", "--sweep-thresholds", "0.8,0.9"])
    config = dataclass_from_args(DemoConfig, args)
    assert (
        config.residual.residual.temperature == 0.9 and config.residual.source == "self"
    )  # demo default kept
    assert config.sweep.thresholds == (0.8, 0.9) and config.sweep.tokens_per_step == (1, 2, 4, 8)
    assert (
        dataclass_from_dict(DemoConfig, dataclasses.asdict(config)) == config
    )  # as read back from report.json


def test_the_flags_of_a_config_read_back_into_it():
    from rcd.cli import demo

    config = DemoConfig(
        quick=True,
        block_length=8,
        sweep=dataclasses.replace(DemoConfig().sweep, thresholds=(0.7,)),
        residual=dataclasses.replace(
            DemoConfig().residual, residual=ResidualConfig(alpha="fixed", temperature=0.9)
        ),
    )
    flags = dataclass_flags(config)
    assert flags[:3] == ["--quick", "--block-length", "8"] and "--sweep-thresholds" in flags
    parser = argparse.ArgumentParser()
    demo.register(parser)
    assert dataclass_from_args(DemoConfig, parser.parse_args(flags)) == config
    inner_default = dataclasses.replace(DemoConfig().residual, residual=ResidualConfig(), dropout=0.1)
    config = DemoConfig(residual=inner_default)  # a nested config at its class default, the demo's differs
    assert dataclass_from_args(DemoConfig, parser.parse_args(dataclass_flags(config))) == config
    assert dataclass_flags(DemoConfig()) == []  # defaults need no flag


def test_a_config_file_stands_for_flags_and_the_command_line_overrides_it(tmp_path, monkeypatch, capsys):
    from rcd.cli import train as train_command

    built = []
    monkeypatch.setattr(train_command, "train", lambda config: built.append(config) or {})
    run = tmp_path / "run.yaml"
    run.write_text(
        "stage: rcd\nmodel: tiny-xs\nreference: ref\ndata: d.jsonl\nout: o\nmax-steps: 5\n"
        "res-dropout: 0.3\nres_source: self\nprogress: false\nblock_length: null\n"
    )
    assert main(["train", "--config", str(run), "--max-steps", "7"]) == 0
    assert (
        main(
            [
                "train",
                "--stage",
                "rcd",
                "--model",
                "tiny-xs",
                "--reference",
                "ref",
                "--data",
                "d.jsonl",
                "--out",
                "o",
                "--max-steps",
                "7",
                "--res-dropout",
                "0.3",
                "--res-source",
                "self",
                "--no-progress",
            ]
        )
        == 0
    )
    assert built[0] == built[1]
    assert (built[0].optim.max_steps, built[0].residual.dropout, built[0].runtime.progress) == (7, 0.3, False)
    bad = tmp_path / "bad.yaml"
    for text, phrase in (
        ("stage: rcd\nbogus: 1\n", "'bogus' is not an option of this command"),
        ("- stage\n", "expected a mapping of options"),
        ("stage: [rcd\n", "not YAML or JSON"),
    ):
        bad.write_text(text)
        assert main(["train", "--config", str(bad)]) == 2 and phrase in capsys.readouterr().err
    assert main(["--config", str(run)]) == 2 and "--config follows the command" in capsys.readouterr().err
    assert len(built) == 2


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--device", "gpu"], "is not a torch device"),
        (["--model-block-length", "0"], "block_length must be >= 1"),
        (["--mask-token-id", "-1"], "mask_token_id must be >= 0"),
    ],
)
def test_load_options_are_refused_before_any_model_loads(tmp_path, capsys, flags, message):
    code = main(["generate", "--model", str(tmp_path / "missing"), "--prompt", "a", *flags])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "missing" not in err  # the option, not the absent model


def test_load_config_checks_what_the_flags_choices_check_for_the_cli():
    from rcd.models.loading import LoadConfig

    for options in ({"dtype": "fp8"}, {"preset": "llama"}, {"attention": "causal"}):
        with pytest.raises(ValueError, match="choose one of"):
            LoadConfig(**options)
