"""lm-evaluation-harness runs the "rcd" model type on a local generate-until task, offline."""

import json

import pytest

import rcd
from conftest import require_extra

require_extra("lm_eval", "eval")

from rcd.cli import main  # noqa: E402

TASK = """\
task: rcd_tiny_sums
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{question}}}}="
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["\\n"]
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""

CHOICE_TASK = """\
task: rcd_tiny_choice
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}="
doc_to_choice: ["1", "2"]
doc_to_target: 0
metric_list:
  - metric: acc
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("harness")
    data = root / "sums.jsonl"
    data.write_text(
        "".join(json.dumps({"question": f"{a}+1", "answer": str(a + 1)}) + "\n" for a in range(3))
    )
    tasks = root / "tasks"
    tasks.mkdir()
    (tasks / "sums.yaml").write_text(TASK.format(data=data))
    (tasks / "choice.yaml").write_text(CHOICE_TASK.format(data=data))
    model = root / "model"
    tok = rcd.char_tokenizer()
    rcd.tiny_model(len(tok), mask_token_id=tok.mask_token_id, eos_token_id=tok.eos_token_id).save_pretrained(
        model
    )
    tok.save_pretrained(model)
    return root, tasks, model


MODEL_ARGS = (
    "pretrained={model},gen_length=8,block_length=4,threshold=0.5,residual=entropy,res_temperature=0.9"
)


@pytest.mark.slow
def test_lm_eval_runs_a_local_generate_until_task(setup, monkeypatch):
    root, tasks, model = setup
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    out = root / "results"
    main(
        [
            "lm-eval",
            "--model",
            "rcd",
            "--model_args",
            MODEL_ARGS.format(model=model),
            "--tasks",
            "rcd_tiny_sums",
            "--include_path",
            str(tasks),
            "--output_path",
            str(out),
            "--log_samples",
            "--batch_size",
            "2",
            "--device",
            "cpu",
        ]
    )
    results = json.loads(next(out.rglob("results_*.json")).read_text())
    samples = [
        json.loads(line) for line in next(out.rglob("samples_rcd_tiny_sums_*.jsonl")).read_text().splitlines()
    ]
    assert len(samples) == 3 and results["config"]["model"] == "rcd"
    # the responses are rcd's own RCD decoding of each context, cut at the task's "\n"
    loaded, tok = rcd.load(model)
    for sample in samples:
        ids, mask = rcd.encode_prompts(tok, [sample["arguments"]["gen_args_0"]["arg_0"]])
        out = rcd.generate(
            loaded,
            ids,
            attention_mask=mask,
            gen_length=8,
            block_length=4,
            threshold=0.5,
            residual=rcd.ResidualConfig(temperature=0.9),
            eos_token_id=tok.eos_token_id,
        )
        expected = rcd.decode_completions(tok, out.generated, [tok.eos_token_id])[0].split("\n")[0]
        assert sample["resps"][0][0] == expected
    matches = [s["resps"][0][0] == s["target"] for s in samples]
    assert results["results"]["rcd_tiny_sums"]["exact_match,none"] == pytest.approx(sum(matches) / 3)


def test_lm_eval_model_reads_rcd_options(setup):
    from rcd.eval.harness import RcdLM

    _, _, model = setup
    lm = RcdLM(
        pretrained=str(model),
        gen_length=8,
        block_length=4,
        steps=8,
        residual="entropy",
        res_temperature="0.92",
        stop_at_eos="true",
        batch_size="2",
    )
    assert lm.decoder.residual == rcd.ResidualConfig(alpha="entropy", temperature=0.92)
    assert (lm.decoder.decode.steps, lm.decoder.decode.stop_at_eos, lm.batch_size) == (8, True, 2)
    assert RcdLM(pretrained=str(model), residual="none").decoder.residual is None
    with pytest.raises(ValueError, match="bad rcd model_args"):
        RcdLM(pretrained=str(model), no_such_option=1)


def test_registering_rcd_keeps_lm_evals_own_model_types():
    """lm-eval fills its model registry with its own types only while it is empty: "rcd"
    registered first hid them ("local-completions", "hf") from `rcd lm-eval` and from any
    later lm-eval run in the process."""
    from lm_eval.api.registry import get_model

    from rcd.eval.harness import RcdLM

    assert get_model("rcd") is RcdLM
    assert get_model("local-completions").__name__ == "LocalCompletionsAPI"


@pytest.mark.slow
def test_multiple_choice_task_scores_with_the_monte_carlo_bound(setup, monkeypatch):
    """Through lm-eval's Python API, with only the local tasks indexed (faster)."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    import rcd.eval.harness  # noqa: F401  (registers "rcd")
    from rcd.eval.likelihood import LikelihoodConfig, mc_loglikelihood

    root, tasks, model = setup
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    out = lm_eval.simple_evaluate(
        model="rcd",
        model_args=f"pretrained={model},gen_length=8,block_length=4,mc_num=8,mc_batch_size=4,seed=3",
        tasks=["rcd_tiny_choice"],
        task_manager=TaskManager(include_path=str(tasks), include_defaults=False),
        log_samples=True,
        device="cpu",
    )
    samples = out["samples"]["rcd_tiny_choice"]
    assert len(samples) == 3 and 0 <= out["results"]["rcd_tiny_choice"]["acc,none"] <= 1
    loaded, tok = rcd.load(model)
    dm = rcd.DiffusionModel.wrap(loaded)
    for sample in samples:
        for (context, continuation), resp in zip(sample["arguments"], sample["resps"]):
            expected, _ = mc_loglikelihood(
                dm,
                tok.encode(context, add_special_tokens=False),
                tok.encode(continuation, add_special_tokens=False),
                LikelihoodConfig(mc_num=8, mc_batch_size=4, seed=3),
            )
            assert float(resp[0][0]) == pytest.approx(expected)


def test_perplexity_tasks_are_refused_clearly(setup):
    from rcd.eval.harness import RcdLM

    _, _, model = setup
    with pytest.raises(NotImplementedError, match="loglikelihood_rolling"):
        RcdLM(pretrained=str(model)).loglikelihood_rolling([])


@pytest.mark.slow
def test_data_parallel_lm_eval_under_accelerate_launch(setup, tmp_path):
    """Two gloo processes share the requests; every sample's score is the single-process one."""
    import os
    import subprocess
    import sys

    from rcd.eval.likelihood import LikelihoodConfig, mc_loglikelihood

    root, tasks, model = setup
    launch = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        "29543",
    ]
    args = f"pretrained={model},mc_num=8,mc_batch_size=4,seed=3,gen_length=8,block_length=4"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(
        [
            *launch,
            "-m",
            "rcd",
            "lm-eval",
            "--model",
            "rcd",
            "--model_args",
            args,
            "--tasks",
            "rcd_tiny_choice",
            "--include_path",
            str(tasks),
            "--output_path",
            str(tmp_path),
            "--log_samples",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    samples = [
        json.loads(line)
        for line in next(tmp_path.rglob("samples_rcd_tiny_choice_*.jsonl")).read_text().splitlines()
    ]
    assert sorted(s["doc_id"] for s in samples) == [0, 1, 2]  # all documents, from both processes
    loaded, tok = rcd.load(model)
    dm = rcd.DiffusionModel.wrap(loaded)
    for sample in samples:
        for (context, continuation), resp in zip(
            [(a["arg_0"], a["arg_1"]) for a in sample["arguments"].values()], sample["resps"]
        ):
            expected, _ = mc_loglikelihood(
                dm,
                tok.encode(context, add_special_tokens=False),
                tok.encode(continuation, add_special_tokens=False),
                LikelihoodConfig(mc_num=8, mc_batch_size=4, seed=3),
            )
            assert float(resp[0][0]) == pytest.approx(expected)
