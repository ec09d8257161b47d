"""The research folder: every command that reproduces a finding still parses, and the study's
tables (experiments/arms.py) hold together."""

from __future__ import annotations

import importlib
import re
import shlex
from dataclasses import replace
from pathlib import Path

import pytest

from experiments import arms
from experiments.study import is_rcd_recipe
from rcd.residual import ResidualConfig

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = (ROOT / "experiments" / "findings.md", ROOT / "experiments" / "README.md")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`([^`]+)`")
COMMAND = re.compile(r"python -m (experiments\.\w+)(.*)")
LOOP = re.compile(r"for (\w+) in (\S+)")
PLACEHOLDER = re.compile(r"\$\w+|[A-Z][A-Z_:]+")


def commands(text: str) -> list[tuple[str, list[str]]]:
    """(module, argv) of each `python -m experiments.X ...` in fenced blocks (continuation lines
    joined, comments dropped, a loop variable set to its first value) and in inline code (which
    may wrap lines). Shell separators end a command."""
    lines = []
    for block in FENCE.findall(text):
        loop = dict(LOOP.findall(block))
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0]
            lines.append(re.sub(r"\$(\w+)", lambda m, loop=loop: loop.get(m[1], m[0]), line))
    lines += [" ".join(span.split()) for span in INLINE.findall(FENCE.sub("", text))]
    found = []
    for line in lines:
        if match := COMMAND.search(line):
            args = re.split(r"[;&|]", match[2])[0]
            found.append((match[1], shlex.split(args)))
    return found


def parse(module: str, argv: list[str]) -> None:
    """Parse as the driver's main would, building its config (its checks run), without running it.
    A template (an argument that is a placeholder: `$SEED`, `SECONDS`, `TASK:SEEDS`) has its
    flags checked only."""
    parser = importlib.import_module(module).build_parser()
    if any(PLACEHOLDER.fullmatch(arg) for arg in argv):
        unknown = [a for a in argv if a.startswith("--") and a not in parser._option_string_actions]
        if unknown:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    elif hasattr(parser, "parse_args_into_dataclasses"):
        parser.parse_args_into_dataclasses(args=argv)
    else:
        parser.parse_args(argv)


def test_command_finder_joins_lines_sets_loop_variables_and_stops_at_separators():
    text = (
        "`python -m\n  experiments.calibration` and\n```bash\nfor s in 100 101; do\n"
        "  python -m experiments.study --seeds $s \\\n      --quick &  # why\ndone; wait\n```\n"
    )
    assert commands(text) == [
        ("experiments.study", ["--seeds", "100", "--quick"]),
        ("experiments.calibration", []),
    ]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_command_that_reproduces_a_finding_parses(document):
    found = commands(document.read_text())
    assert {"experiments.study", "experiments.scale"} <= {m for m, _ in found}
    failed = []
    for module, argv in found:
        try:
            parse(module, argv)
        except (SystemExit, ValueError) as error:
            failed.append(f"python -m {module} {shlex.join(argv)}: {error!r}")
    assert not failed, "\n".join(failed)


def test_a_command_that_no_longer_parses_is_caught():
    with pytest.raises(ValueError, match="not used"):  # HfArgumentParser's word for an unknown flag
        parse("experiments.study", ["--arms", "seqd", "--no-such-flag"])
    with pytest.raises(ValueError, match="unknown arms/methods"):
        parse("experiments.study", ["--arms", "rcd-renamed"])
    with pytest.raises(SystemExit):
        parse("experiments.scale", ["--budget", "SECONDS", "--no-such-flag", "1"])


def test_the_tables_refuse_unknown_names_and_duplicates():
    arms.check(arms.ARMS, arms.METHODS, arms.COMPARISONS, arms.GROUPS)
    typo = (*arms.COMPARISONS, arms.Comparison("seqd", "rcd-typo", "?"))
    with pytest.raises(ValueError, match="rcd-typo"):
        arms.check(arms.ARMS, arms.METHODS, typo, arms.GROUPS)
    with pytest.raises(ValueError, match="named twice"):
        arms.index((*arms.ARM_TABLE, arms.Arm("seqd", "seqd")), "arms")
    with pytest.raises(ValueError, match="sweep"):
        arms.MethodSpec("x", "seqd", sweep="everything")
    with pytest.raises(ValueError, match="choose among"):  # the sweep sets the commit rule itself
        arms.MethodSpec("x", "seqd", decode=(("threshold", 0.5),))
    with pytest.raises(ValueError, match="confidence_pass must be one of"):  # DecodeConfig checks the value
        arms.MethodSpec("x", "seqd", decode=(("confidence_pass", "reference"),))


def test_the_roles_come_from_the_rows_in_table_order():
    assert arms.RELIABILITY == ("seqd", "rcd", "rcd-off", "rcd-paper", "rcd-fixedalpha")
    assert arms.BARRED == ("rcd", "rcd-fixedalpha")
    assert arms.PLOTTED[:2] == ("seqd", "rcd") and len(arms.PLOTTED) == 20


def test_decodings_of_the_reference_are_not_rcd_recipes():
    """The reference is no arm: choosing recipes on the validation split must pass over it
    (the small-to-large group decodes `ref` on validation too)."""
    assert not is_rcd_recipe("ref") and not is_rcd_recipe("ref+res")
    assert is_rcd_recipe("rcd") and not is_rcd_recipe("rcd-off")


RELATIVES = ("rcd-softmask", "rcd-softmask-slerp", "rcd-selfcond-proj", "rcd-learned-alpha")


def test_each_relative_is_decoded_with_the_rule_and_start_it_was_trained_for():
    """A relative's decoding uses its arm's rule (and top-k); the two-pass rules, whose first
    training pass sees plain masks, start cold; learned alpha differs from the fixed-alpha
    recipe in its weight alone; IterSmooth, training-free, decodes the SeqD model."""
    for name in RELATIVES:
        trained, decoded = arms.ARMS[name].residual, arms.METHODS[name].residual
        assert decoded.rule == trained.residual.rule != "rcd"
        assert decoded.top_k == trained.residual.top_k
        assert (decoded.init == "zero") == (trained.source == "selfcond")
        assert is_rcd_recipe(name)
    fixed = arms.ARMS["rcd-fixedalpha"].residual
    assert arms.ARMS["rcd-learned-alpha"].residual == replace(
        fixed, residual=ResidualConfig(rule="learned-alpha")
    )
    itersmooth = arms.METHODS["seqd itersmooth"]
    assert itersmooth.arm == "seqd" and itersmooth.residual.rule == "itersmooth"
    assert not is_rcd_recipe("seqd itersmooth")
