"""A request's decoding options: the server's defaults with the request's `rcd` object over them.

The `rcd` object's keys are the flags of `rcd generate` without their dashes, `-` read as `_`
(`gen_length`, `steps`, `threshold`, ..., `rcd` for `--rcd`, `res_temperature` for
`--res-temperature`, ...): the fields of `DecodeConfig` and of `ResidualConfig` (prefixed
`res_`). The values are validated by building those same dataclasses, so a bad value gets
the message the command line gives.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from ..config import RES_PREFIX
from ..decode import DecodeConfig
from ..residual import ResidualConfig

SWITCH = "rcd"  # the --rcd flag: decode with residual context
RES = RES_PREFIX.replace("-", "_")


def extension_fields() -> dict[str, tuple[Any, Any]]:
    """{key: (type, default)} of the `rcd` object, from the two dataclasses' fields."""
    fields: dict[str, tuple[Any, Any]] = {SWITCH: (bool, None)}
    for cls, prefix in ((DecodeConfig, ""), (ResidualConfig, RES)):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            fields[prefix + f.name] = (hints[f.name], None)
    return fields


@dataclass(frozen=True)
class Options:
    """What one request decodes with, and where its text is cut."""

    decode: DecodeConfig
    residual: ResidualConfig | None
    max_tokens: int  # the text is cut at this many tokens (<= decode.gen_length)


def resolve(
    default_decode: DecodeConfig,
    default_residual: ResidualConfig | None,
    given: dict[str, Any],
    *,
    max_tokens: int | None,
    temperature: float | None,
    baseline: bool,
) -> Options:
    """The request's options (ValueError, naming the key, for a bad one).

    given: the keys the request's `rcd` object sets. max_tokens (when given) sets gen_length,
    rounded up to whole blocks, unless `gen_length` is given too; a fixed schedule then keeps
    the server's steps per block. temperature: OpenAI's top-level field (same as the key).
    """
    decode_keys = {k: v for k, v in given.items() if k != SWITCH and not k.startswith(RES)}
    residual_keys = {k[len(RES) :]: v for k, v in given.items() if k.startswith(RES)}
    if temperature is not None:
        if "temperature" in decode_keys and decode_keys["temperature"] != temperature:
            raise ValueError(
                f"temperature {temperature} and rcd.temperature {decode_keys['temperature']} differ: give one"
            )
        decode_keys["temperature"] = temperature
    block_length = decode_keys.get("block_length", default_decode.block_length)
    if max_tokens is not None and "gen_length" in decode_keys and max_tokens > decode_keys["gen_length"]:
        raise ValueError(f"max_tokens {max_tokens} exceeds rcd.gen_length {decode_keys['gen_length']}")
    if (
        max_tokens is not None
        and "gen_length" not in decode_keys
        and isinstance(block_length, int)
        and block_length > 0
    ):
        decode_keys["gen_length"] = -(-max_tokens // block_length) * block_length
    if ("gen_length" in decode_keys or "block_length" in decode_keys) and not {"steps", "threshold"} & set(
        given
    ):
        decode_keys.update(_steps_per_block_kept(default_decode, decode_keys))
    try:
        decode = dataclasses.replace(default_decode, **decode_keys)
    except TypeError as err:  # a value of the wrong kind reaching a comparison
        raise ValueError(f"rcd: {err}") from err

    on = given.get(SWITCH)
    if baseline:
        if on or residual_keys:
            raise ValueError(
                "the baseline model is decoded as plain SeqD: drop rcd.rcd and the rcd.res_* options"
            )
        residual = None
    elif on is False:
        if residual_keys:
            raise ValueError(
                "rcd.res_* options set the residual of RCD decoding: drop them, or set rcd.rcd true"
            )
        residual = None
    elif on is None and default_residual is None:
        if residual_keys:
            raise ValueError(
                'rcd.res_* options set the residual of RCD decoding: add "rcd": true, or drop them'
            )
        residual = None
    else:
        residual = dataclasses.replace(default_residual or ResidualConfig(), **residual_keys)
    gen_length = decode.gen_length
    return Options(decode, residual, gen_length if max_tokens is None else min(max_tokens, gen_length))


def _steps_per_block_kept(default: DecodeConfig, keys: dict[str, Any]) -> dict[str, Any]:
    """steps for a new gen_length / block_length that keep the server's steps per block (and so
    its tokens per step); none where the server decodes one token per step or by threshold."""
    if default.steps is None or default.threshold is not None:
        return {}
    gen_length, block_length = (
        keys.get("gen_length", default.gen_length),
        keys.get("block_length", default.block_length),
    )
    if not (isinstance(gen_length, int) and isinstance(block_length, int) and block_length > 0):
        return {}
    per_block = default.steps // default.n_blocks
    tokens_per_step = default.block_length / per_block
    return {"steps": max(1, round(block_length / tokens_per_step)) * max(1, gen_length // block_length)}


def needs_own_batch(options: Options) -> bool:
    """Options that draw random numbers (sampling, a random commit order, a Dirichlet init):
    the loop takes one generator per batch, so such a request decodes alone, its result then
    set by its seed only."""
    decode, residual = options.decode, options.residual
    return (
        decode.temperature > 0
        or decode.order == "random"
        or (residual is not None and residual.init == "dirichlet")
    )
