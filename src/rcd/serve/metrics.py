"""The server's Prometheus metrics (`GET /metrics`), on a registry of its own per app."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.requests = Counter(
            "rcd_requests",
            "HTTP requests answered, by route and status",
            ["route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "rcd_request_seconds",
            "time from request to the end of its answer (streams included), by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.queue_depth = Gauge("rcd_queue_depth", "requests waiting for a batch", registry=registry)
        self.in_flight = Gauge(
            "rcd_requests_decoding", "requests in the batch being decoded", registry=registry
        )
        self.batch_size = Histogram(
            "rcd_batch_rows", "rows (prompts x n) per decoded batch", buckets=BATCH_BUCKETS, registry=registry
        )
        self.batch_seconds = Histogram(
            "rcd_batch_seconds", "decoding time per batch", buckets=LATENCY_BUCKETS, registry=registry
        )
        self.prompt_tokens = Counter(
            "rcd_prompt_tokens", "prompt tokens of answered requests", ["model"], registry=registry
        )
        self.completion_tokens = Counter(
            "rcd_completion_tokens", "completion tokens of answered requests", ["model"], registry=registry
        )
        self.forward_passes = Counter(
            "rcd_forward_passes",
            "forward passes of the decoding loop, by model and "
            "kind (model: the decoded model; reference: its warm-start reference)",
            ["model", "kind"],
            registry=registry,
        )
        self.cancelled = Counter(
            "rcd_cancelled_requests", "requests whose client went away before the answer", registry=registry
        )
        self.aborted_batches = Counter(
            "rcd_aborted_batches", "batches stopped because every request left", registry=registry
        )
        self.rejected = Counter(
            "rcd_rejected_requests", "requests refused because the queue was full", registry=registry
        )
