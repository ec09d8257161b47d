"""The server's own options (address, auth, batching, limits): every field is an `rcd serve` flag."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ServeConfig:
    host: str = field(default="127.0.0.1", metadata={"help": "address to bind (0.0.0.0: every interface)"})
    port: int = field(default=8000, metadata={"help": "TCP port"})
    api_key: str | None = field(
        default=None,
        metadata={"help": "require `Authorization: Bearer KEY` on every /v1 route (or set RCD_API_KEY)"},
    )
    max_batch_size: int = field(default=16, metadata={"help": "rows (prompts x n) decoded together at most"})
    max_queue: int = field(
        default=256, metadata={"help": "requests waiting for a batch at most; more are answered 429 at once"}
    )
    batch_wait_ms: float = field(
        default=10.0,
        metadata={
            "help": "a batch waits this long after the latest request for more with the same options "
            "(at most 10 times as long in all)"
        },
    )
    max_body_bytes: int = field(
        default=1_000_000, metadata={"help": "largest request body accepted (413 above)"}
    )

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port must lie in [1, 65535], got {self.port}")
        if self.max_batch_size < 1 or self.max_queue < 1:
            raise ValueError("max_batch_size and max_queue must be >= 1")
        if not 0 <= self.batch_wait_ms <= 10_000:
            raise ValueError(f"batch_wait_ms must lie in [0, 10000], got {self.batch_wait_ms}")
        if self.max_body_bytes < 1024:
            raise ValueError(f"max_body_bytes must be >= 1024, got {self.max_body_bytes}")
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("api_key is empty: give a key, or leave the option out")
