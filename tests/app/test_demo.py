"""`rcd demo --quick` end to end (structure, not numbers), and `rcd sweep` on its models."""

import json

import pytest

from rcd.cli import main
from rcd.eval.sweep import accuracy_stderr

pytestmark = [pytest.mark.slow, pytest.mark.long]  # the quick demo: three training stages and sweeps


POINT_KEYS = {"setting": str, "tokens_per_step": float, "accuracy": float, "n": int}


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    return out


def check_curves(curves, names):
    assert set(names) <= set(curves)
    for name in names:
        assert curves[name], name
        for point in curves[name]:
            for key, kind in POINT_KEYS.items():
                assert isinstance(point[key], kind), (name, key)
            assert 0.0 <= point["accuracy"] <= 1.0 and point["tokens_per_step"] > 0


def is_png(path):
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_quick_demo_writes_the_report(demo_dir):
    report = json.loads((demo_dir / "report.json").read_text())
    assert isinstance(report["task"], str)
    check_curves(report["curves"], ["seqd", "rcd"])
    for point in report["curves"]["seqd"] + report["curves"]["rcd"]:
        assert point["stderr"] == pytest.approx(accuracy_stderr(point["accuracy"], point["n"]))
    assert set(report["curves"]) == {"seqd", "rcd"}  # RCD warm-started only (the cold start: `rcd sweep`)
    settings = [p["setting"] for p in report["curves"]["seqd"]]
    assert any(s.startswith("steps=") for s in settings) and any(s.startswith("tau=") for s in settings)
    for stage in ("ref", "seqd", "rcd"):
        figures = report["training"][stage]
        assert figures["steps"] > 0 and figures["train_seconds"] > 0 and figures["final_loss"] > 0
    assert report["training"]["seqd"]["steps"] == report["training"]["rcd"]["steps"]  # same budget
    assert report["total_seconds"] > 0
    assert is_png(demo_dir / "pareto.png") and is_png(demo_dir / "trace.png")
    assert report["playground"].startswith(
        f"rcd serve --model {demo_dir / 'rcd'} --reference {demo_dir / 'ref'}"
    )
    table = (demo_dir / "report.md").read_text()
    assert "| setting |" in table and "seqd" in table and "rcd" in table
    assert "±" in table and "standard error" in table


def test_demo_reuses_finished_stages(demo_dir, capsys):
    before = json.loads((demo_dir / "report.json").read_text())["training"]
    assert main(["demo", "--quick", "--out", str(demo_dir)]) == 0
    after = json.loads((demo_dir / "report.json").read_text())["training"]
    assert after == before  # nothing retrained


def test_demo_refuses_other_options_in_its_out(demo_dir, capsys):
    """Changed residual options never resume the old stage: the demo refuses, and changes nothing."""
    files = {p: p.read_bytes() for p in demo_dir.rglob("*") if p.is_file()}
    assert main(["demo", "--quick", "--out", str(demo_dir), "--res-dropout", "0"]) == 2
    err = capsys.readouterr().err
    assert "holds a run with other options (options.residual.dropout: 0.3 -> 0.0)" in err
    assert {p: p.read_bytes() for p in demo_dir.rglob("*") if p.is_file()} == files


def test_sweep_command_on_demo_models(demo_dir, tmp_path):
    report = json.loads((demo_dir / "report.json").read_text())
    args = [
        "sweep",
        "--model",
        str(demo_dir / "rcd"),
        "--reference",
        str(demo_dir / "ref"),
        "--baseline",
        str(demo_dir / "seqd"),
        "--data",
        str(demo_dir / "data" / "test.jsonl"),
        "--task",
        report["task"],
        "--out",
        str(tmp_path),
        "--gen-length",
        str(report["decoding"]["gen_length"]),
        "--tokens-per-step",
        "1,4",
        "--thresholds",
        "0.9",
        "--limit",
        "40",
    ]
    assert main(args) == 0
    sweep = json.loads((tmp_path / "report.json").read_text())
    check_curves(sweep["curves"], ["seqd", "rcd", "rcd-cold", "no-residual"])
    assert all(p["n"] == 40 for p in sweep["curves"]["rcd"])
    assert is_png(tmp_path / "pareto.png")


def test_demo_accuracy_benchmark_on_demo_models(demo_dir, tmp_path):
    from experiments.demo_accuracy import main as demo_accuracy

    assert demo_accuracy(["--demo", str(demo_dir), "--out", str(tmp_path), "--quick"]) == 0
    result = json.loads((tmp_path / "demo-accuracy-cpu-quick.json").read_text())
    curves = result["curves"]
    assert {"seqd", "rcd", "rcd top8", "seqd prefix", "seqd dual", "rcd prefix", "rcd dual"} <= set(curves)
    check_curves(curves, list(curves))
    assert all(p["token_agreement_with_exact"] == 1.0 for p in curves["seqd"] + curves["rcd"])
    assert all(len(points) == 2 and points[0]["n"] == 100 for points in curves.values())
    assert is_png(tmp_path / "demo-accuracy-cpu-quick.png")


def test_calibration_benchmark_on_demo_models(demo_dir, tmp_path):
    from experiments.calibration import main as calibration

    assert calibration(["--demo", str(demo_dir), "--out", str(tmp_path), "--limit", "20"]) == 0
    result = json.loads((tmp_path / "demo-calibration.json").read_text())
    for name in ("seqd", "rcd", "rcd-cold"):
        method = result["methods"][name]
        assert sum(b["tokens"] for b in method["bins"]) == method["tokens"] > 0
        assert all(0.0 <= b["accuracy"] <= 1.0 for b in method["bins"])
