"""Flag groups shared by the commands that decode: model loading, decoding, residual options."""

from __future__ import annotations

import argparse

from ..config import RES_PREFIX, add_dataclass_arguments, dataclass_from_args, given_dataclass
from ..decode import DecodeConfig
from ..errors import UsageError
from ..models.loading import LoadConfig
from ..residual import ResidualConfig


def add_decode_arguments(parser: argparse.ArgumentParser, *, skip: tuple[str, ...] = ()) -> None:
    add_dataclass_arguments(parser.add_argument_group("decoding"), DecodeConfig, skip=skip)
    group = parser.add_argument_group("residual context (RCD)")
    group.add_argument(
        "--rcd", action="store_true", help="decode with residual context (default: plain SeqD)"
    )
    group.add_argument(
        "--reference", default=None, help="reference model directory (for --res-init reference)"
    )
    add_dataclass_arguments(group, ResidualConfig, prefix=RES_PREFIX, tracked=True)


def decode_config(args: argparse.Namespace) -> DecodeConfig:
    return dataclass_from_args(DecodeConfig, args)


def residual_config(args: argparse.Namespace) -> ResidualConfig | None:
    """The --res-* options under --rcd; refused without it (SeqD would ignore them)."""
    given = given_dataclass(ResidualConfig, args, prefix=RES_PREFIX)
    if not args.rcd:
        if given is not None:
            raise UsageError("--res-* options set the residual of RCD decoding: add --rcd, or drop them")
        return None
    return given or ResidualConfig()


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model plus the loading options (preset, trust-remote-code, dtype, device, overrides)."""
    group = parser.add_argument_group("model")
    group.add_argument("--model", required=True, help="checkpoint directory or hub id")
    add_dataclass_arguments(group, LoadConfig, skip=("block_length",))
    group.add_argument(
        "--model-block-length",
        type=int,
        default=None,
        help=LoadConfig.__dataclass_fields__["block_length"].metadata["help"],
    )


def load_config(args: argparse.Namespace) -> LoadConfig:
    return dataclass_from_args(LoadConfig, args, block_length=args.model_block_length)
