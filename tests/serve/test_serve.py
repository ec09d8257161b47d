"""`rcd serve` end to end: a real uvicorn server in a subprocess, driven over HTTP and by the
official openai client. Answers must equal rcd's own decoding token for token."""

from __future__ import annotations

import concurrent.futures
import json

import pytest
import requests
import torch

from conftest import require_extra
from rcd.decode import DecodeConfig
from rcd.eval.decoder import Decoder
from rcd.models.loading import LoadConfig
from rcd.residual import ResidualConfig
from serving import Server, save_tiny

require_extra("fastapi", "serve")
openai = require_extra("openai", "dev")

DECODING = ["--gen-length", "16", "--block-length", "8", "--steps", "8"]
SERVER_DECODE = DecodeConfig(gen_length=16, block_length=8, steps=8)
SERVER_RESIDUAL = ResidualConfig(init="reference")
PROMPTS = ["1+2=", "hello, world", "(3*4)-5=", "a", "the quick brown fox: ", "x" * 30]
TIMEOUT = 60


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    return {
        "root": root,
        "rcd": save_tiny(root / "rcd", seed=0, chat=True),
        "seqd": save_tiny(root / "seqd", seed=1),
        "ref": save_tiny(root / "ref", seed=2),
    }


@pytest.fixture(scope="session")
def server(tiny_dirs):
    """RCD (warm start from the reference) on `rcd`, plain SeqD on the baseline `seqd`."""
    args = [
        "--model",
        str(tiny_dirs["rcd"]),
        "--baseline",
        str(tiny_dirs["seqd"]),
        "--reference",
        str(tiny_dirs["ref"]),
        "--rcd",
        "--res-init",
        "reference",
        *DECODING,
        "--batch-wait-ms",
        "50",
    ]
    running = Server(args, tiny_dirs["root"] / "server.log")
    yield running
    assert running.stop() == 0


@pytest.fixture(autouse=True)
def one_thread():
    """The expected answers decode in this process: one thread beside the server is far faster
    on a small machine (the fp64 models make the thread count irrelevant to the tokens)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def decoders(tiny_dirs):
    """What `rcd generate` decodes with the server's flags: RCD on rcd, SeqD on rcd and seqd."""
    load = LoadConfig()
    return {
        "rcd": Decoder.load(
            str(tiny_dirs["rcd"]), load, SERVER_DECODE, SERVER_RESIDUAL, str(tiny_dirs["ref"])
        ),
        "rcd-seqd": Decoder.load(str(tiny_dirs["rcd"]), load, SERVER_DECODE),
        "seqd": Decoder.load(str(tiny_dirs["seqd"]), load, SERVER_DECODE),
    }


def post(server, path, body, **kw):
    return requests.post(server.url + path, json=body, timeout=TIMEOUT, **kw)


def client(server, **kw):
    return openai.OpenAI(
        base_url=server.url + "/v1", api_key=kw.pop("api_key", "unused"), timeout=TIMEOUT, max_retries=0, **kw
    )


def completion(server, model, prompt, **fields):
    response = post(server, "/v1/completions", {"model": model, "prompt": prompt, **fields})
    assert response.status_code == 200, response.text
    return response.json()


def test_models_info_and_health(server):
    assert requests.get(server.url + "/health", timeout=10).json()["status"] == "ok"
    assert [m.id for m in client(server).models.list().data] == ["rcd", "seqd"]
    info = requests.get(server.url + "/v1/rcd/info", timeout=10).json()
    assert info["models"] == [
        {"id": "rcd", "residual": True, "role": "rcd"},
        {"id": "seqd", "residual": False, "role": "baseline"},
    ]
    assert info["defaults"]["gen_length"] == 16 and info["defaults"]["steps"] == 8
    assert info["defaults"]["rcd"] is True and info["defaults"]["res_init"] == "reference"


@pytest.mark.parametrize(
    "model, extension, decoder",
    [("rcd", None, "rcd"), ("rcd", {"rcd": False}, "rcd-seqd"), ("seqd", None, "seqd")],
)
def test_greedy_answers_equal_rcd_generate_token_for_token(server, decoders, model, extension, decoder):
    """RCD with the server's flags, SeqD on the same model, and the baseline (plain SeqD)."""
    expected_decoder = decoders[decoder]
    stops = expected_decoder.stops
    for prompt in PROMPTS:
        texts, out = expected_decoder.complete([prompt])
        ids = out.generated[0].tolist()
        kept = next((k for k, t in enumerate(ids) if t in stops), len(ids))
        answer = completion(server, model, prompt, **({"rcd": extension} if extension else {}))
        assert answer["choices"][0]["text"] == texts[0]
        usage = answer["usage"]
        assert usage["completion_tokens"] == kept  # the same tokens, up to the first stop id
        assert (usage["nfe"], usage["reference_nfe"]) == (out.nfe, out.reference_nfe)
        assert usage["tokens_per_step"] == pytest.approx(out.tokens_per_step)
        assert usage["prompt_tokens"] == len(prompt) and usage["total_tokens"] == len(prompt) + kept


def test_rcd_object_sets_decoding_options(server, decoders):
    """The same options as `rcd generate --threshold 0.3 --res-temperature 0.8 --gen-length 24`."""
    decoder = decoders["rcd"]
    options = {"threshold": 0.3, "steps": None, "res_temperature": 0.8}
    wanted = Decoder(
        decoder.model,
        decoder.tokenizer,
        DecodeConfig(gen_length=24, block_length=8, threshold=0.3),
        ResidualConfig(init="reference", temperature=0.8),
        decoder.reference,
    )
    _, out = wanted.complete([PROMPTS[0]])
    answer = completion(
        server, "rcd", PROMPTS[0], max_tokens=20, rcd=options
    )  # 20 tokens: 3 blocks, cut at 20
    ids = out.generated[0, :20].tolist()
    ids = ids[: next((k for k, t in enumerate(ids) if t in wanted.stops), len(ids))]
    assert answer["choices"][0]["text"] == wanted.tokenizer.decode(ids, skip_special_tokens=True)
    assert answer["usage"]["completion_tokens"] == len(ids) and answer["usage"]["nfe"] == out.nfe


def test_openai_client_completions_chat_and_streams(server, decoders):
    api = client(server)
    plain = api.completions.create(model="rcd", prompt=PROMPTS[1], max_tokens=16)
    assert plain.choices[0].text == decoders["rcd"].complete([PROMPTS[1]])[0][0]
    assert plain.usage.prompt_tokens == len(PROMPTS[1])
    text = plain.choices[0].text
    cases = [
        {"max_tokens": 16},
        {"max_tokens": 5},
        {"max_tokens": 11},
        {"stop": [text[3:5]]},
        {"stop": [text[9:12], "zzz"], "max_tokens": 16},
    ]
    for fields in cases:
        whole = api.completions.create(model="rcd", prompt=PROMPTS[1], **fields)
        chunks = list(api.completions.create(model="rcd", prompt=PROMPTS[1], stream=True, **fields))
        assert "".join(c.choices[0].text for c in chunks) == whole.choices[0].text, fields
        assert chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason
    assert (
        api.completions.create(model="rcd", prompt=PROMPTS[1], stop=[text[3:5]]).choices[0].text == text[:3]
    )

    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "2+2?"}]
    chat = api.chat.completions.create(model="rcd", messages=messages)
    prompt = decoders["rcd"].tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )
    assert chat.choices[0].message.content == decoders["rcd"].complete([prompt])[0][0]
    stream = api.chat.completions.create(
        model="rcd", messages=messages, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        == chat.choices[0].message.content
    )
    assert chunks[-1].usage.completion_tokens == chat.usage.completion_tokens
    with pytest.raises(openai.BadRequestError, match="no chat template"):
        api.chat.completions.create(model="seqd", messages=messages)


def test_n_and_seeded_sampling(server):
    api = client(server)
    greedy = api.completions.create(model="rcd", prompt=PROMPTS[0], n=3)
    assert [c.index for c in greedy.choices] == [0, 1, 2]
    assert len({c.text for c in greedy.choices}) == 1  # greedy: n identical rows
    assert (
        greedy.usage.completion_tokens
        == 3 * api.completions.create(model="rcd", prompt=PROMPTS[0]).usage.completion_tokens
    )

    def sample(seed):
        answer = api.completions.create(model="rcd", prompt=PROMPTS[0], n=3, temperature=1.0, seed=seed)
        return [c.text for c in answer.choices]

    first = sample(7)
    assert sample(7) == first  # a seed reproduces the answer
    assert sample(8) != first and len(set(first)) > 1  # other seeds, other rows: other samples
    both = api.completions.create(model="rcd", prompt=[PROMPTS[0], PROMPTS[2]], n=2)
    assert [c.text for c in both.choices][::2] == [
        completion(server, "rcd", p)["choices"][0]["text"] for p in (PROMPTS[0], PROMPTS[2])
    ]


def test_sixteen_concurrent_clients_each_get_their_answer_alone(server, decoders):
    prompts = [f"{i}+{i * 7 % 13}=" + "y" * (i % 5) for i in range(16)]
    expected = [decoders["seqd"].complete([p])[0][0] for p in prompts]  # each decoded alone
    rows, batches = server.metric("rcd_batch_rows_sum"), server.metric("rcd_batch_rows_count")
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda p: completion(server, "seqd", p), prompts))
    assert [a["choices"][0]["text"] for a in answers] == expected  # none lost, none mixed up
    assert server.metric("rcd_batch_rows_sum") - rows == 16
    assert server.metric("rcd_batch_rows_count") - batches < 16  # they were batched


def test_denoise_step_stream(server, decoders):
    """The playground's stream: every step, its canvas growing to the final text."""
    response = post(
        server, "/v1/rcd/denoise", {"model": "rcd", "prompt": PROMPTS[0], "max_tokens": 16}, stream=True
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    lines = [line for line in response.iter_lines(decode_unicode=True) if line]
    assert lines[-1] == "data: [DONE]"
    events = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    start, steps, done = events[0], events[1:-1], events[-1]
    assert start == {
        "type": "start",
        "model": "rcd",
        "residual": True,
        "gen_length": 16,
        "block_length": 8,
        "prompt": PROMPTS[0],
    }
    texts, out = decoders["rcd"].complete([PROMPTS[0]])
    assert len(steps) == out.nfe  # one event per denoising pass (the warm start is the reference's)
    assert [s["nfe"] for s in steps] == list(range(1, len(steps) + 1))
    final = steps[-1]
    assert None not in final["canvas"] and sorted(set(final["order"])) == list(range(len(steps)))
    tok = decoders["rcd"].tokenizer
    assert final["canvas"] == [tok.decode([t]) for t in out.generated[0].tolist()]
    for step in steps:
        assert all(step["canvas"][p] is not None for p in step["committed"])
        masked = [p for p, c in enumerate(step["canvas"]) if c is None and p // 8 == step["block"]]
        assert all(0 <= step["confidence"][p] <= 1 and 0 <= step["alpha"][p] <= 1 for p in masked)
    assert done["type"] == "done" and done["text"] == texts[0] and done["usage"]["nfe"] == out.nfe


BAD = [
    ("malformed JSON", b'{"model": "rcd", "prompt": ', 400, "malformed JSON"),
    ("unknown model", {"model": "gpt-4", "prompt": "1"}, 404, "'gpt-4' is not served"),
    ("a model path", {"model": "/tmp", "prompt": "1"}, 404, "is not served"),
    (
        "remote code",
        {"model": "rcd", "prompt": "1", "rcd": {"trust_remote_code": True}},
        400,
        "unknown field 'rcd.trust_remote_code'",
    ),
    (
        "unknown option",
        {"model": "rcd", "prompt": "1", "rcd": {"stepz": 4}},
        400,
        "unknown field 'rcd.stepz'",
    ),
    ("unknown field", {"model": "rcd", "prompt": "1", "best_of": 2}, 400, "unknown field 'best_of'"),
    ("missing prompt", {"model": "rcd"}, 400, "missing field 'prompt'"),
    ("wrong type", {"model": "rcd", "prompt": "1", "max_tokens": "8"}, 400, "max_tokens"),
    (
        "threshold range",
        {"model": "rcd", "prompt": "1", "rcd": {"threshold": 1.5, "steps": None}},
        400,
        "threshold must lie in [0, 1]",
    ),
    (
        "entropy threshold",
        {"model": "rcd", "prompt": "1", "rcd": {"threshold": 0.5, "confidence": "entropy"}},
        400,
        "no [0, 1] scale for a threshold",
    ),
    (
        "res range",
        {"model": "rcd", "prompt": "1", "rcd": {"res_temperature": 0.0}},
        400,
        "must be a finite number > 0",
    ),
    (
        "res alpha",
        {"model": "rcd", "prompt": "1", "rcd": {"res_alpha": "magic"}},
        400,
        "alpha must be one of",
    ),
    (
        "block length",
        {"model": "rcd", "prompt": "1", "rcd": {"block_length": 5}},
        400,
        "multiple of block_length",
    ),
    ("temperature", {"model": "rcd", "prompt": "1", "temperature": -1}, 400, "temperature"),
    ("max_tokens 0", {"model": "rcd", "prompt": "1", "max_tokens": 0}, 400, "max_tokens"),
    ("max_tokens beyond context", {"model": "rcd", "prompt": "1", "max_tokens": 5000}, 400, "context"),
    ("prompt too long", {"model": "rcd", "prompt": "z" * 1015}, 400, "exceed the model's context"),
    (
        "unrepresentable text",
        {"model": "rcd", "prompt": "caf\u00e9"},
        400,
        "not in the tokenizer's vocabulary",
    ),
    ("residual on the baseline", {"model": "seqd", "prompt": "1", "rcd": {"rcd": True}}, 400, "plain SeqD"),
    (
        "res without rcd",
        {"model": "rcd", "prompt": "1", "rcd": {"rcd": False, "res_top_k": 2}},
        400,
        "drop them",
    ),
    ("too many rows", {"model": "rcd", "prompt": "1", "n": 17}, 400, "at most 16"),
    ("top_p", {"model": "rcd", "prompt": "1", "top_p": 0.5}, 400, "top_p"),
    ("echo", {"model": "rcd", "prompt": "1", "echo": True}, 400, "echo"),
    ("token prompt", {"model": "rcd", "prompt": [1, 2, 3]}, 400, "prompt"),
    ("body too large", {"model": "rcd", "prompt": "1" * 1_100_000}, 413, "request body over"),
]


@pytest.mark.parametrize("body, status, message", [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_requests_get_an_error_object_and_the_server_keeps_serving(server, body, status, message):
    kw = (
        {"data": body, "headers": {"content-type": "application/json"}}
        if isinstance(body, bytes)
        else {"json": body}
    )
    response = requests.post(server.url + "/v1/completions", timeout=TIMEOUT, **kw)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and message in error["message"]
    assert "Traceback" not in response.text
    assert requests.get(server.url + "/health", timeout=10).status_code == 200


def test_other_errors_are_error_objects_too(server):
    assert requests.get(server.url + "/v1/nowhere", timeout=10).json()["error"]["type"] == "not_found_error"
    assert requests.get(server.url + "/v1/completions", timeout=10).status_code == 405
    messages = {"model": "rcd", "messages": [{"role": "robot", "content": "hi"}]}
    assert post(server, "/v1/chat/completions", messages).json()["error"]["param"] == "messages.0.role"
    bad_denoise = post(server, "/v1/rcd/denoise", {"model": "rcd", "prompt": "1", "rcd": {"steps": 3}})
    assert (
        bad_denoise.status_code == 400
        and "multiple of the number of blocks" in bad_denoise.json()["error"]["message"]
    )


@pytest.mark.parametrize("route", ["/v1/completions", "/v1/rcd/denoise"])
def test_a_client_that_disconnects_mid_stream_frees_its_slot(server, route):
    passes = server.metric("rcd_forward_passes_total", 'model="seqd",kind="model"')
    aborted = server.metric("rcd_aborted_batches_total")
    long = {"model": "seqd", "prompt": "1", "rcd": {"gen_length": 512, "steps": 512}}
    if route == "/v1/completions":
        long["stream"] = True
    with post(server, route, long, stream=True) as response:
        # the playground's stream starts before its batch does: wait for a step, so it is decoding
        first = next(line for line in response.iter_lines() if line and b'"type":"start"' not in line)
        assert first.startswith(b"data: ")
    for _ in range(300):  # the batch stops at its next step once its only request is gone
        if server.metric("rcd_aborted_batches_total") > aborted:
            break
        requests.get(server.url + "/health", timeout=10)
    assert server.metric("rcd_aborted_batches_total") == aborted + 1
    assert server.metric("rcd_forward_passes_total", 'model="seqd",kind="model"') - passes < 512
    assert server.metric("rcd_requests_decoding") == 0
    assert completion(server, "seqd", "1")["choices"]  # and it serves on


def test_metrics_are_prometheus_text(server):
    text = requests.get(server.url + "/metrics", timeout=10).text
    for name in (
        "rcd_requests_total",
        "rcd_request_seconds_bucket",
        "rcd_queue_depth",
        "rcd_batch_rows_bucket",
        "rcd_prompt_tokens_total",
        "rcd_completion_tokens_total",
        "rcd_forward_passes_total",
    ):
        assert name in text, name
    assert server.metric("rcd_requests_total", 'route="/v1/completions",status="200"') > 0


def fuzz_strategies():
    from hypothesis import strategies as st

    junk = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-3, 3),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=5),
        st.lists(st.integers(0, 3), max_size=2),
    )
    small = st.one_of(st.integers(-2, 40), junk)
    rcd_options = st.fixed_dictionaries(
        {},
        optional={
            "gen_length": st.one_of(st.sampled_from([8, 16, 24, 32, 0, -8]), junk),
            "block_length": st.one_of(st.sampled_from([4, 8, 16, 3]), junk),
            "steps": st.one_of(st.sampled_from([None, 2, 4, 8, 16, 3]), junk),
            "threshold": st.one_of(st.floats(-0.5, 1.5), junk),
            "order": st.one_of(st.sampled_from(["confidence", "random", "left-to-right", "x"]), junk),
            "temperature": st.one_of(st.floats(-1, 2), junk),
            "stop_at_eos": junk,
            "cache": st.one_of(st.sampled_from(["exact", "none", "prefix", "dual"]), junk),
            "rcd": junk,
            "res_alpha": st.one_of(st.sampled_from(["entropy", "fixed", "one", "magic"]), junk),
            "res_temperature": st.one_of(st.floats(-1, 2), junk),
            "res_init": st.one_of(st.sampled_from(["zero", "reference", "dirichlet", "self"]), junk),
            "res_top_k": small,
            "res_feedback": st.one_of(st.sampled_from(["self", "reference"]), junk),
            "bogus": junk,
        },
    )
    prompt = st.one_of(
        st.text(alphabet="0123456789+=abc xyz\u00e9\n", max_size=20),
        junk,
        st.lists(st.text(alphabet="abc12", max_size=6), max_size=3),
    )
    common = {
        "max_tokens": small,
        "temperature": st.one_of(st.floats(-1, 2), junk),
        "seed": small,
        "stop": st.one_of(st.text(max_size=3), st.lists(st.text(max_size=3), max_size=5), junk),
        "n": st.one_of(st.integers(-1, 4), junk),
        "stream": st.one_of(st.booleans(), junk),
        "top_p": junk,
        "rcd": st.one_of(rcd_options, junk),
        "extra": junk,
    }
    model = st.sampled_from(["rcd", "seqd", "nope"])
    messages = st.one_of(
        st.lists(
            st.fixed_dictionaries(
                {
                    "role": st.sampled_from(["user", "system", "bot"]),
                    "content": st.one_of(st.text(max_size=10), junk),
                }
            ),
            max_size=3,
        ),
        junk,
    )
    return {
        "/v1/completions": st.fixed_dictionaries({"model": model}, optional={"prompt": prompt, **common}),
        "/v1/chat/completions": st.fixed_dictionaries(
            {"model": model}, optional={"messages": messages, **common}
        ),
        "/v1/rcd/denoise": st.fixed_dictionaries(
            {"model": model},
            optional={
                "prompt": prompt,
                "max_tokens": small,
                "seed": small,
                "rcd": st.one_of(rcd_options, junk),
            },
        ),
    }


@pytest.mark.slow
@pytest.mark.parametrize("route", ["/v1/completions", "/v1/chat/completions", "/v1/rcd/denoise"])
def test_fuzzed_bodies_never_get_a_server_error(server, route):
    """Bodies built from the request schema's fields, values valid and not: 200 or a 4xx error object."""
    require_extra("hypothesis", "dev")
    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=50, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(fuzz_strategies()[route])
    def check(body):
        response = requests.post(server.url + route, json=body, timeout=TIMEOUT)
        assert response.status_code < 500, (body, response.text)
        if response.status_code >= 400:
            assert set(response.json()["error"]) == {"message", "type", "param", "code"}
        elif body.get("stream") is True or route.endswith("denoise"):
            assert response.text.rstrip().endswith("data: [DONE]") and '"error"' not in response.text, body

    check()
    assert requests.get(server.url + "/health", timeout=10).status_code == 200


LM_EVAL_TASK = """\
task: rcd_served
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{prompt}}}}"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["<eos>"]
  max_gen_toks: 16
metric_list:
  - metric: exact_match
"""


@pytest.mark.slow
def test_lm_eval_local_completions_predicts_what_rcd_eval_does(server, tiny_dirs, monkeypatch):
    """lm-eval's OpenAI-API model against the server = `rcd eval` with the server's flags, prompt
    for prompt (lm-eval gets rcd eval's own prompts; no tokenizer from the hub)."""
    require_extra("lm_eval", "eval")
    import lm_eval
    from lm_eval.tasks import TaskManager

    from rcd.cli import main

    root = tiny_dirs["root"] / "lm-eval"
    root.mkdir()
    problems = root / "problems.jsonl"
    problems.write_text(
        "".join(
            json.dumps({"question": f"{a} + {a} = ?", "answer": f"#### {2 * a}"}) + "\n" for a in range(4)
        )
    )
    out = root / "rcd-eval"
    assert (
        main(
            [
                "eval",
                "--model",
                str(tiny_dirs["rcd"]),
                "--reference",
                str(tiny_dirs["ref"]),
                "--rcd",
                "--res-init",
                "reference",
                *DECODING,
                "--task",
                "gsm8k",
                "--data",
                str(problems),
                "--shots",
                "0",
                "--out",
                str(out),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    data = root / "prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": r["prompt"], "answer": r["gold"]}) + "\n" for r in rows))
    (root / "task.yaml").write_text(LM_EVAL_TASK.format(data=data))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    args = (
        f"model=rcd,base_url={server.url}/v1/completions,tokenizer_backend=None,tokenized_requests=False,"
        "num_concurrent=2,max_retries=1,timeout=60"
    )
    results = lm_eval.simple_evaluate(
        model="local-completions",
        model_args=args,
        tasks=["rcd_served"],
        task_manager=TaskManager(include_path=str(root), include_defaults=False),
        log_samples=True,
        batch_size=2,
    )
    samples = sorted(results["samples"]["rcd_served"], key=lambda s: s["doc_id"])
    assert [s["arguments"][0][0] for s in samples] == [r["prompt"] for r in rows]
    assert [s["resps"][0][0] for s in samples] == [r["completion"] for r in rows]
