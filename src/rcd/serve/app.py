"""The FastAPI app: OpenAI-compatible routes, the playground's step stream, health and metrics.

Routes turn a request into a `Job` (all checks here, before it is queued), hand it to the
`Scheduler` and shape its rows into OpenAI's objects; nothing here decodes or loads.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..decode import DecodeConfig
from ..residual import ResidualConfig
from .backend import LocalBackend, ServedModel
from .config import ServeConfig
from .errors import ApiError, error_body, install
from .metrics import Metrics
from .middleware import Arrivals, Guard, Measure
from .options import RES, SWITCH, needs_own_batch, resolve
from .scheduler import Job, QueueFull, RowResult, Scheduler, Ticket
from .schema import ChatRequest, CompletionRequest, DenoiseRequest, Sampling
from .text import Cutter, Finished

log = logging.getLogger("rcd.serve")
STATIC = Path(str(resources.files("rcd.serve") / "static"))
ROUTES = frozenset(
    {
        "/",
        "/health",
        "/metrics",
        "/v1/models",
        "/v1/completions",
        "/v1/chat/completions",
        "/v1/rcd/denoise",
        "/v1/rcd/info",
    }
)
SSE = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def create_app(backend: LocalBackend, config: ServeConfig | None = None):
    """The ASGI app serving `backend`'s models (already loaded) with `config`'s limits."""
    config = config or ServeConfig()
    metrics = Metrics()
    scheduler = Scheduler(
        backend,
        metrics,
        max_batch_size=config.max_batch_size,
        max_queue=config.max_queue,
        batch_wait=config.batch_wait_ms / 1000,
    )
    ready = asyncio.Event()
    created = int(time.time())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        scheduler.start()
        ready.set()
        yield
        ready.clear()
        await asyncio.to_thread(scheduler.stop)  # uvicorn has let the open requests finish

    app = FastAPI(
        title="rcd serve",
        version="1",
        lifespan=lifespan,
        description="OpenAI-compatible serving of RCD / SeqD diffusion LMs (see docs/serving.md)",
    )
    install(app)
    api = _Api(backend, scheduler, metrics)

    @app.get("/health")
    async def health():
        if not ready.is_set():
            return JSONResponse(error_body(503, "not ready"), status_code=503)
        return {"status": "ok", "models": list(backend.models)}

    @app.get("/metrics")
    async def prometheus():
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def models():
        data = [
            {"id": name, "object": "model", "created": created, "owned_by": "rcd"} for name in backend.models
        ]
        return {"object": "list", "data": data}

    @app.get("/v1/rcd/info")
    async def info():
        served = list(backend.models.values())
        rcd = served[0].decoder
        return {
            "models": [
                {"id": m.name, "residual": m.decoder.residual is not None, "role": m.role} for m in served
            ],
            "defaults": {**_flags(rcd.decode, rcd.residual), "max_tokens": rcd.decode.gen_length},
        }

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request):
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        return await api.answer(body, prompts, "text_completion", request)

    @app.post("/v1/chat/completions")
    async def chat(body: ChatRequest, request: Request):
        model = api.model(body.model)
        if model.tokenizer.chat_template is None:
            raise ApiError(
                400,
                f"model {model.name!r} has no chat template (its tokenizer defines none): "
                "use /v1/completions with a plain prompt",
                "messages",
                "no_chat_template",
            )
        messages = [m.model_dump() for m in body.messages]
        try:
            prompt = model.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except Exception as err:  # the template's own refusal (e.g. roles out of order)
            raise ApiError(400, f"the chat template refused these messages: {err}", "messages") from err
        return await api.answer(body, [prompt], "chat.completion", request)

    @app.post("/v1/rcd/denoise")
    async def denoise(body: DenoiseRequest, request: Request):
        model = api.model(body.model)
        try:
            job = api.job(model, body, [body.prompt], seed=body.seed)
            ticket = api.submit(job, "all")
        finally:
            scheduler.checked(request.scope)
        return StreamingResponse(
            api.steps(model, job, ticket, body.prompt), media_type="text/event-stream", headers=SSE
        )

    @app.get("/", include_in_schema=False)
    async def playground():
        page = STATIC / "index.html"
        if not page.is_file():
            raise ApiError(404, "the playground page is not installed with this copy of rcd")
        return FileResponse(page)

    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return Measure(Arrivals(Guard(app, config.api_key, config.max_body_bytes), scheduler), metrics, ROUTES)


class _Api:
    """Request -> Job -> answer, shared by the routes."""

    def __init__(self, backend: LocalBackend, scheduler: Scheduler, metrics: Metrics):
        self.backend, self.scheduler, self.metrics = backend, scheduler, metrics
        self.pieces: dict[tuple[str, int], str | None] = {}

    def model(self, name: str) -> ServedModel:
        if name not in self.backend.models:
            raise ApiError(
                404,
                f"model {name!r} is not served here; served: {sorted(self.backend.models)}",
                "model",
                "model_not_found",
            )
        return self.backend.models[name]

    def job(
        self,
        model: ServedModel,
        body,
        prompts: list[str],
        *,
        seed: int | None,
        n: int = 1,
        temperature: float | None = None,
    ) -> Job:
        """Every check of a request, before it may join a batch (ApiError 400 naming the cause)."""
        given = {k: getattr(body.rcd, k) for k in body.rcd.model_fields_set} if body.rcd is not None else {}
        decoder = model.decoder
        try:
            options = resolve(
                decoder.decode,
                decoder.residual,
                given,
                max_tokens=body.max_tokens,
                temperature=temperature,
                baseline=model.role == "baseline",
            )
        except ValueError as err:
            raise ApiError(400, str(err), "rcd", "invalid_value") from err
        lengths = []
        for i, prompt in enumerate(prompts):
            try:
                lengths.append(
                    len(
                        self.backend.encode(
                            model.name, prompt, "prompt" if len(prompts) == 1 else f"prompt {i}"
                        )
                    )
                )
            except ValueError as err:
                raise ApiError(400, str(err), "prompt", "unrepresentable_text") from err
        try:
            self.backend.check(model.name, options.decode, options.residual, max(lengths))
        except ValueError as err:
            param = "max_tokens" if "context" in str(err) else "rcd"
            raise ApiError(400, str(err), param, "invalid_value") from err
        own = needs_own_batch(options)
        key = object() if own else (model.name, options.decode, options.residual)
        rows = [p for p in prompts for _ in range(n)]
        return Job(model.name, rows, options, seed if own else None, key, sum(lengths))

    def submit(self, job: Job, steps: str | None = None) -> Ticket:
        try:
            return self.scheduler.submit(job, steps)
        except QueueFull as err:
            self.metrics.rejected.inc()
            raise ApiError(429, "the server's queue is full: retry shortly", None, "queue_full") from err
        except ValueError as err:
            raise ApiError(400, str(err), "n", "invalid_value") from err

    async def answer(self, body: Sampling, prompts: list[str], kind: str, request: Request):
        model = self.model(body.model)
        try:
            job = self.job(model, body, prompts, seed=body.seed, n=body.n, temperature=body.temperature)
            ticket = self.submit(job, "blocks" if body.stream else None)
        finally:
            self.scheduler.checked(request.scope)
        cutter = Cutter(model.tokenizer, frozenset(model.decoder.stops), body.stops(), job.options.max_tokens)
        prompt_tokens = job.prompt_tokens
        head = {
            "id": f"{'chatcmpl' if kind == 'chat.completion' else 'cmpl'}-{uuid.uuid4().hex}",
            "created": int(time.time()),
            "model": model.name,
        }
        if body.stream:
            include_usage = body.stream_options is not None and body.stream_options.include_usage
            chunks = self.chunks(ticket, cutter, kind, head, prompt_tokens, include_usage)
            return StreamingResponse(chunks, media_type="text/event-stream", headers=SSE)
        rows = await self.wait(ticket, request)
        finished = [cutter.finish(r.ids) for r in rows]
        self.count(model.name, prompt_tokens, finished)
        return {
            **head,
            "object": kind,
            "choices": [_choice(kind, i, f) for i, f in enumerate(finished)],
            "usage": _usage(prompt_tokens, finished, rows),
        }

    async def wait(self, ticket: Ticket, request: Request) -> list[RowResult]:
        """The rows of a non-streamed request; a client that goes away meanwhile frees its slot."""
        result = asyncio.ensure_future(ticket.result())
        try:
            while not result.done():
                await asyncio.wait({result}, timeout=0.5)
                if not result.done() and await request.is_disconnected():
                    raise ApiError(499, "client went away")
            return result.result()
        except RuntimeError as err:
            raise ApiError(500, str(err)) from err
        finally:
            if not result.done():
                result.cancel()
                self.scheduler.cancel(ticket)

    def count(self, model: str, prompt_tokens: int, finished: list[Finished]) -> None:
        self.metrics.prompt_tokens.labels(model).inc(prompt_tokens)
        self.metrics.completion_tokens.labels(model).inc(sum(f.tokens for f in finished))

    async def chunks(
        self, ticket: Ticket, cutter: Cutter, kind: str, head: dict, prompt_tokens: int, include_usage: bool
    ) -> AsyncIterator[str]:
        """OpenAI's stream: each row's text as its blocks complete, then finish reasons, [DONE]."""
        chunk_kind = "chat.completion.chunk" if kind == "chat.completion" else "text_completion"
        rows = len(ticket.job.prompts)
        sent = [""] * rows

        def chunk(index: int, text: str | None, reason: str | None = None, first: bool = False) -> str:
            if kind == "chat.completion":
                delta = (
                    {"role": "assistant", "content": text or ""}
                    if first
                    else ({"content": text} if text else {})
                )
                choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": reason}
            else:
                choice = {"index": index, "text": text or "", "logprobs": None, "finish_reason": reason}
            return _event({**head, "object": chunk_kind, "choices": [choice]})

        with self.released_early(ticket):
            if kind == "chat.completion":
                for i in range(rows):
                    yield chunk(i, "", first=True)
            while not ticket.finished:
                event, value, step = await ticket.next_event()
                if event == "step":
                    text = cutter.finish(_prefix(step.canvas), complete=False).text
                    if text.startswith(sent[value]) and len(text) > len(sent[value]):
                        yield chunk(value, text[len(sent[value]) :])
                        sent[value] = text
                elif event == "done":
                    finished = [cutter.finish(r.ids) for r in value]
                    for i, f in enumerate(finished):
                        if not f.text.startswith(sent[i]):  # cannot happen with a prefix-stable decoder
                            log.warning(
                                "stream of row %d sent text that the final text does not start with", i
                            )
                        rest = f.text[len(sent[i]) :]
                        if rest:
                            yield chunk(i, rest)
                        yield chunk(i, None, f.reason)
                    self.count(ticket.job.model, prompt_tokens, finished)
                    if include_usage:
                        yield _event(
                            {
                                **head,
                                "object": chunk_kind,
                                "choices": [],
                                "usage": _usage(prompt_tokens, finished, value),
                            }
                        )
                else:
                    yield _event(error_body(500, value))
            yield "data: [DONE]\n\n"

    async def steps(self, model: ServedModel, job: Job, ticket: Ticket, prompt: str) -> AsyncIterator[str]:
        """The playground's stream: start, every denoising step (canvas, commits, confidence,
        alpha), done with the text and usage, [DONE]."""
        decode = job.options.decode
        cutter = Cutter(model.tokenizer, frozenset(model.decoder.stops), (), job.options.max_tokens)
        with self.released_early(ticket):
            yield _event(
                {
                    "type": "start",
                    "model": model.name,
                    "residual": job.options.residual is not None,
                    "gen_length": decode.gen_length,
                    "block_length": decode.block_length,
                    "prompt": prompt,
                }
            )
            while not ticket.finished:
                event, value, step = await ticket.next_event()
                if event == "step":
                    yield _event(
                        {
                            "type": "step",
                            "block": step.block,
                            "step": step.step,
                            "nfe": step.nfe,
                            "canvas": [self.piece(model, t) for t in step.canvas],
                            "committed": step.committed,
                            "order": step.order,
                            "confidence": step.confidence,
                            "alpha": step.alpha,
                        }
                    )
                elif event == "done":
                    finished = [cutter.finish(r.ids) for r in value]
                    self.count(model.name, job.prompt_tokens, finished)
                    yield _event(
                        {
                            "type": "done",
                            "text": finished[0].text,
                            "usage": _usage(job.prompt_tokens, finished, value),
                        }
                    )
                else:
                    yield _event({"type": "error", **error_body(500, value)})
            yield "data: [DONE]\n\n"

    @contextlib.contextmanager
    def released_early(self, ticket: Ticket) -> Iterator[None]:
        """A stream that stops before its ticket's last event (the client went away, the
        response was closed) frees the ticket's slot in the queue or its batch."""
        try:
            yield
        finally:
            if not ticket.finished:
                self.scheduler.cancel(ticket)

    def piece(self, model: ServedModel, token: int) -> str | None:
        """A canvas cell: the token's own text (special tokens shown), None while masked."""
        if token < 0:
            return None
        key = (model.name, token)
        if key not in self.pieces:
            self.pieces[key] = model.tokenizer.decode([token], skip_special_tokens=False)
        return self.pieces[key]


def _prefix(canvas: list[int]) -> list[int]:
    """The committed ids before the first masked position."""
    end = next((k for k, t in enumerate(canvas) if t < 0), len(canvas))
    return canvas[:end]


def _event(payload: dict) -> str:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"


def _choice(kind: str, index: int, finished: Finished) -> dict:
    if kind == "chat.completion":
        return {
            "index": index,
            "message": {"role": "assistant", "content": finished.text},
            "logprobs": None,
            "finish_reason": finished.reason,
        }
    return {"index": index, "text": finished.text, "logprobs": None, "finish_reason": finished.reason}


def _usage(prompt_tokens: int, finished: list[Finished], rows: list[RowResult]) -> dict:
    """OpenAI's counts and rcd's: forward passes summed over the request's rows, and decoded
    tokens per pass (as `GenerationOutput.tokens_per_step`)."""
    completion = sum(f.tokens for f in finished)
    passes = sum(r.forward_passes + r.reference_passes for r in rows)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
        "nfe": sum(r.forward_passes for r in rows),
        "reference_nfe": sum(r.reference_passes for r in rows),
        "tokens_per_step": sum(r.decoded_tokens for r in rows) / passes if passes else 0.0,
    }


def _flags(decode: DecodeConfig, residual: ResidualConfig | None) -> dict:
    """The server's defaults as the `rcd` object spells them."""
    values = {**dataclasses.asdict(decode), SWITCH: residual is not None}
    for name, value in dataclasses.asdict(residual or ResidualConfig()).items():
        values[RES + name] = value
    return values
