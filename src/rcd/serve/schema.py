"""Request bodies (pydantic): OpenAI's completion and chat fields, and rcd's extension object.

Strict types and no unknown keys: a mistyped option is refused (400) rather than ignored.
`RcdOptions` is generated from the fields of `DecodeConfig` and `ResidualConfig`
(`options.extension_fields`), so the schema never lists an option the CLI does not have.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from .options import extension_fields

STRICT = ConfigDict(extra="forbid", strict=True)

RcdOptions = create_model(
    "RcdOptions",
    __config__=STRICT,
    __doc__="rcd's decoding options for this request: the flags of `rcd generate` without dashes "
    "(gen_length, steps, threshold, rcd, res_temperature, ...); unset keys keep the server's defaults.",
    **extension_fields(),
)


class StreamOptions(BaseModel):
    model_config = STRICT
    include_usage: bool = False


Seed = Annotated[int, Field(ge=0, le=2**63 - 1)]
Stop = (
    Annotated[list[Annotated[str, Field(min_length=1)]], Field(max_length=4)]
    | Annotated[str, Field(min_length=1)]
)


class Sampling(BaseModel):
    """Fields shared by both OpenAI routes."""

    model_config = STRICT
    model: str
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0)] | None = None
    top_p: Literal[1, 1.0] | None = Field(None, description="only 1 (rcd samples from the full distribution)")
    seed: Seed | None = None
    stop: Stop | None = None
    n: Annotated[int, Field(ge=1, le=64)] = 1
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None
    rcd: RcdOptions | None = None

    def stops(self) -> tuple[str, ...]:
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())


class CompletionRequest(Sampling):
    prompt: (
        Annotated[str, Field(max_length=1_000_000)] | Annotated[list[str], Field(min_length=1, max_length=64)]
    )
    echo: Literal[False] = False
    logprobs: Literal[0] | None = None


class ChatMessage(BaseModel):
    model_config = STRICT
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(Sampling):
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    logprobs: Literal[False] | None = None


class DenoiseRequest(BaseModel):
    """The playground's step stream: one prompt, every denoising step sent as it happens."""

    model_config = STRICT
    model: str
    prompt: str
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    seed: Seed | None = None
    rcd: RcdOptions | None = None
