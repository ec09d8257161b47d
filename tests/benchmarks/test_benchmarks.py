"""The benchmark's measuring tools (the benchmark itself: `python -m benchmarks --quick`)."""

import dataclasses
import sys

import pytest
import torch

import rcd
from benchmarks.measure import PeakMemory, StepClock
from benchmarks.topk import delta_error
from conftest import make_model, random_prompts
from rcd.eval.agreement import Variant, compare
from rcd.eval.decoder import Decoder
from rcd.eval.evalset import EvalSet


def test_step_clock_times_every_forward_pass():
    model = make_model()
    clock = StepClock(model, torch.device("cpu"))
    with clock.running():
        out = rcd.generate(model, random_prompts(1, 3), gen_length=8, block_length=4, steps=4)
    assert len(clock.intervals) == out.nfe and all(t > 0 for t in clock.intervals)


def test_peak_memory_sees_a_large_tensor():
    meter = PeakMemory(torch.device("cpu"))
    with meter.measure():
        torch.ones(64, 2**20).sum()  # 256 MiB
    if not sys.platform.startswith("linux"):
        pytest.skip("CPU peak memory is measured from /proc (Linux)")
    assert meter.bytes is not None and meter.bytes > 200 * 2**20


def test_eval_set_scores_with_a_grader():
    rows = [{"prompt": "a", "answer": "1"}, {"prompt": "b", "answer": "2"}]
    score = EvalSet(rows).score(["1", " 3 "])
    assert score["accuracy"] == 0.5 and score["n"] == 2 and 0 < score["stderr"] < 1


def test_delta_error_shrinks_with_k():
    model = make_model()
    ids = torch.cat([random_prompts(2, 4), torch.full((2, 8), model.config.mask_token_id)], 1)
    errors = delta_error(model, ids, ks=(4, 32, 100))
    assert set(errors) == {"top4", "top32"}  # k >= V is the dense residual itself
    assert errors["top32"]["max_rel_error"] < errors["top4"]["max_rel_error"]
    assert errors["top32"]["positions"] == 16


def test_agreement_rows_measure_their_variant():
    """Each row decodes with its own variant: its agreement with exact decoding is the one
    measured directly here, and differs from 1 (two layers, 2 steps per block: top-2 and the
    prefix cache both change tokens)."""
    tok = rcd.char_tokenizer()
    model = rcd.tiny_model(
        len(tok),
        mask_token_id=tok.mask_token_id,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        initializer_range=0.3,
    ).double()
    rows = [{"prompt": p, "answer": "7"} for p in ("3+4=", "12+1=", "9=", "40+2=")]
    config = rcd.DecodeConfig(gen_length=8, block_length=4, steps=4)
    residual = rcd.ResidualConfig(alpha="one")
    out = compare(
        model, tok, EvalSet(rows), config, residual, [Variant(top_k=2), Variant(cache="prefix")], batch_size=2
    )
    assert [r["variant"] for r in out] == ["exact", "top2", "prefix"]
    prompts = [r["prompt"] for r in rows]

    def decoded(decode, res):
        return Decoder(model, tok, decode, res).complete(prompts)[1].generated

    exact = decoded(config, residual)
    for row, ids in [
        (out[1], decoded(config, dataclasses.replace(residual, top_k=2))),
        (out[2], decoded(dataclasses.replace(config, cache="prefix"), residual)),
    ]:
        agreement = (ids == exact).float().mean().item()
        assert agreement < 1 and row["token_agreement_with_exact"] == pytest.approx(agreement)
        assert row["n"] == 4 and row["tokens_per_step"] == pytest.approx(2.0)  # 8 tokens in 4 passes


@pytest.mark.slow
def test_serving_benchmark_measures_load_and_overhead():
    pytest.importorskip("fastapi")
    from benchmarks import serving
    from benchmarks.report import markdown

    result = serving.run(quick=True)
    assert [r["clients"] for r in result["load"]] == [1, 4, 16]
    for row in result["load"]:
        assert row["requests_per_s"] > 0 and 0 < row["p50_s"] <= row["p99_s"]
    overhead = result["overhead_vs_offline"]
    assert overhead["served_s"] > 0 and overhead["offline_s"] > 0 and overhead["server_batches_per_wave"] >= 1
    machine = {"cpu": "x", "cpu_cores": 2, "torch_threads": 1, "torch": "t", "load_average_at_start": [0.0]}
    text = markdown(
        {
            "quick": True,
            "device": "cpu",
            "command": "c",
            "machine": machine,
            "seconds": 1.0,
            "sections": {"serving": result},
        }
    )
    assert "`rcd serve` under load" in text and "| 16 |" in text
