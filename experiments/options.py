"""The drivers' command lines: HfArgumentParser, with the library's option groups held flat.

A driver's config holds the library's configs (`OptimConfig`, `ModelConfig`) as `"flat"` fields
(see `rcd.config`), as `rcd demo` does, instead of declaring its own `--lr`. HfArgumentParser
knows scalar and list fields only, so this parser adds each group's flags (those its `skip`
leaves) under their plain names, with the driver's default and the library's help, and builds
the group back from them. Every other field keeps HfArgumentParser's flags (`--n-test` and
`--n_test`, lists as `--seeds 0 1 2`), so the drivers' commands read as before.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import typing
from typing import Any

from transformers import HfArgumentParser

from rcd.config import dataclass_from_dict


def group(default: Any, help_text: str, *kept: str) -> Any:
    """A driver's field holding one of the library's configs, flat, at the driver's `default`:
    the options of `kept` get their flags, the others stay `default`'s."""
    skip = tuple(f.name for f in dataclasses.fields(default) if f.name not in kept)
    return dataclasses.field(default=default, metadata={"help": help_text, "flat": True, "skip": skip})


class DriverParser(HfArgumentParser):
    """HfArgumentParser for a config whose `"flat"` fields are groups of the library's options."""

    def _add_dataclass_arguments(self, dtype: Any) -> None:
        hints = typing.get_type_hints(dtype)
        for f in dataclasses.fields(dtype):
            if not f.init:
                continue
            if f.metadata.get("flat"):
                self._add_group(f, hints[f.name])
            else:
                f.type = hints[f.name]
                self._parse_dataclass_field(self, f)

    def _add_group(self, holder: dataclasses.Field, group: type) -> None:
        """The group's flags under their own names, defaulting to the holder's instance."""
        shown = holder.default if holder.default is not dataclasses.MISSING else holder.default_factory()
        section = self.add_argument_group(holder.metadata.get("help", group.__name__))
        hints = typing.get_type_hints(group)
        for f in dataclasses.fields(group):
            if f.name in holder.metadata.get("skip", ()):
                continue
            flag = copy.copy(f)
            flag.type, flag.default, flag.default_factory = (
                hints[f.name],
                getattr(shown, f.name),
                dataclasses.MISSING,
            )
            help_text = f.metadata.get("help", "")
            if flag.default != f.default:  # the driver's own default: the field's note is stale
                help_text = re.sub(r" ?\(default:[^)]*\)", "", help_text)
            flag.metadata = {**f.metadata, "help": f"{help_text} (default: {flag.default})"}
            self._parse_dataclass_field(section, flag)

    def parse_args_into_dataclasses(self, args: list[str] | None = None) -> tuple[Any, ...]:  # type: ignore[override]
        """One config per dataclass type; an unknown flag is refused as HfArgumentParser does."""
        namespace, unused = self.parse_known_args(args=args)
        if unused:
            raise ValueError(f"Some specified arguments are not used by the HfArgumentParser: {unused}")
        return tuple(dataclass_from_dict(dtype, vars(namespace)) for dtype in self.dataclass_types)
