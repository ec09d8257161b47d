"""ASGI layers in front of the routes: API-key check and body size limit (`Guard`), the
request metrics (`Measure`: status and latency to the end of the answer, streams included),
and `Arrivals`, which tells the scheduler a decoding request is on its way."""

from __future__ import annotations

import hmac
import json
import time

from .errors import error_body
from .metrics import Metrics


async def _send_error(send, status: int, message: str, code: str | None = None, headers=()) -> None:
    body = json.dumps(error_body(status, message, code=code)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class Guard:
    """/v1 routes need `Authorization: Bearer KEY` (constant-time check) when a key is set;
    a body over `max_body_bytes` is refused (413) before any route reads it."""

    def __init__(self, app, api_key: str | None, max_body_bytes: int):
        self.app, self.api_key, self.max_body_bytes = app, api_key, max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.api_key is not None and scope["path"].startswith("/v1") and not self._authorized(scope):
            return await _send_error(
                send,
                401,
                "missing or wrong API key: send `Authorization: Bearer KEY`",
                "invalid_api_key",
                [(b"www-authenticate", b"Bearer")],
            )
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            return await _send_error(
                send, 413, f"request body over {self.max_body_bytes} bytes", "body_too_large"
            )
        chunks, size = [], 0
        while True:  # read the whole body first: a chunked body is held to the same limit
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body_bytes:
                return await _send_error(
                    send, 413, f"request body over {self.max_body_bytes} bytes", "body_too_large"
                )
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the client's disconnect, if it goes away

        return await self.app(scope, replay, send)

    def _authorized(self, scope) -> bool:
        value = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, token = value.partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.api_key.encode())


class Measure:
    def __init__(self, app, metrics: Metrics, routes: frozenset[str]):
        self.app, self.metrics, self.routes = app, metrics, routes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        route = scope["path"] if scope["path"] in self.routes else "other"
        started, status = time.perf_counter(), [500]

        async def measured(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self.metrics.requests.labels(route, str(status[0])).inc()
                self.metrics.latency.labels(route).observe(time.perf_counter() - started)

        await self.app(scope, receive, measured)


DECODING_ROUTES = frozenset({"/v1/completions", "/v1/chat/completions", "/v1/rcd/denoise"})


class Arrivals:
    """Counts a decoding request from the moment it arrives until its route has submitted or
    refused it, so that a batch being gathered waits for requests of a burst whose bodies are
    still being read and checked (see `Scheduler.arrived`)."""

    def __init__(self, app, scheduler):
        self.app, self.scheduler = app, scheduler

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in DECODING_ROUTES:
            return await self.app(scope, receive, send)
        self.scheduler.arrived(scope)
        try:
            await self.app(scope, receive, send)
        finally:
            self.scheduler.checked(scope)  # refused before its route ran (auth, size, schema)
