"""Command-line flags generated from dataclass configs (one source for defaults and help)."""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, TypeVar

from ..errors import UsageError

T = TypeVar("T")


def _base_type(annotation: Any) -> tuple[type, bool]:
    """(scalar type, optional?) of an annotation such as `int | None` or `Literal[...]`."""
    if isinstance(annotation, str):
        annotation = eval(annotation, vars(typing))  # postponed annotations of simple types
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _base_type(inner[0])[0], True
    if typing.get_origin(annotation) is typing.Literal:
        return type(args[0]), False
    return annotation, False


def add_dataclass_arguments(
    parser: argparse.ArgumentParser, cls: type, *, prefix: str = "", skip: tuple[str, ...] = ()
) -> None:
    """One `--{prefix}field-name` flag per dataclass field; help comes from field metadata."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init:
            continue
        kind, optional = _base_type(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        flag = "--" + (prefix + f.name).replace("_", "-")
        help_text = f.metadata.get("help", "")
        choices = f.metadata.get("choices")
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        else:
            shown = "none" if default is None else default
            parser.add_argument(
                flag,
                type=kind,
                default=default,
                choices=choices,
                required=f.metadata.get("required", False),
                help=f"{help_text} (default: {shown})" + (" [optional]" if optional else ""),
            )


def dataclass_from_args(
    cls: type[T], namespace: argparse.Namespace, *, prefix: str = "", **overrides: Any
) -> T:
    """Build `cls` from the parsed flags that belong to it (those added with `prefix`)."""
    dest = prefix.replace("-", "_")
    parsed = vars(namespace)
    values = {f.name: parsed[dest + f.name] for f in dataclasses.fields(cls) if f.init and dest + f.name in parsed}
    values.update(overrides)
    try:
        return cls(**values)
    except (ValueError, TypeError) as err:  # an option check of the config's __post_init__
        raise UsageError(str(err)) from err
