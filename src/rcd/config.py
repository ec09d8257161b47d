"""Options declared once: command-line flags and keyword options built from dataclass configs.

Every user option is a field of one config dataclass (help and choices in its metadata,
validation in its `__post_init__`); commands, the lm-eval model type and the benchmarks
build their flags from those fields, so defaults, help and checks exist once. A field
whose type is itself a config (e.g. `TrainConfig.residual`) contributes that config's
flags under the field's `prefix` metadata; those flags have no argparse default, so a
config knows which of its nested options were given, and a nested `X | None` field is
built only when one was (a stage it does not apply to can then refuse it).

A nested field marked `"flat": True` is a group of options (e.g. `TrainConfig.optim`): its
flags keep their plain names (`--lr`), and its saved form (`flat_dict`, read back by
`dataclass_from_dict`) lists them at the top level, as a config without groups would.

Residual options are spelled `--res-*` in every command (`RES_PREFIX`).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from .errors import UsageError

T = TypeVar("T")

RES_PREFIX = "res-"
TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _base_type(annotation: Any) -> tuple[Any, bool]:
    """(scalar, `tuple[x, ...]` or dataclass type, optional?) of an annotation such as `int | None`."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _base_type(inner[0])[0], True
    if typing.get_origin(annotation) is typing.Literal:
        return type(args[0]), False
    return annotation, False


def _parser_of(kind: Any) -> Any:
    """argparse `type=` of a field: `tuple[int, ...]` reads a comma-separated list ("1,2,4")."""
    if typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]

        def comma_list(text: str) -> tuple:
            return tuple(item(x) for x in text.split(",") if x.strip())

        comma_list.__name__ = f"{item.__name__} list"  # argparse's error: "invalid int list value: '1,a'"
        return comma_list
    return kind


def _fields(cls: type) -> list[tuple[dataclasses.Field, type, bool]]:
    hints = typing.get_type_hints(cls)
    return [(f, *_base_type(hints[f.name])) for f in dataclasses.fields(cls) if f.init]


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def _dest(prefix: str, name: str) -> str:
    return (prefix + name).replace("-", "_")


def add_dataclass_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    prefix: str = "",
    skip: tuple[str, ...] = (),
    required: tuple[str, ...] = (),
    tracked: bool = False,
    shown: Any = None,
) -> None:
    """One `--{prefix}field-name` flag per field; help comes from the field's metadata.

    required: fields this command needs given (their default does not apply to it).
    tracked: no argparse defaults, so `dataclass_from_args` sees which flags were given
    (nested configs are always tracked). shown: an instance whose values the help lists
    as defaults (a nested field's own default).
    """
    for f, kind, optional in _fields(cls):
        if f.name in skip:
            continue
        default = getattr(shown, f.name) if shown is not None else _default(f)
        if dataclasses.is_dataclass(kind):
            title = f.metadata.get("help", kind.__name__)
            group = (
                parser.add_argument_group(title) if isinstance(parser, argparse.ArgumentParser) else parser
            )
            add_dataclass_arguments(
                group,
                kind,
                prefix=prefix + f.metadata.get("prefix", ""),
                skip=f.metadata.get("skip", ()),
                tracked=True,
                shown=default,
            )
            continue
        flag = "--" + (prefix + f.name).replace("_", "-")
        help_text = f.metadata.get("help", "")
        arg_default = argparse.SUPPRESS if tracked else default
        if typing.get_origin(kind) is tuple and default is not None:
            default = ",".join(map(str, default))
        if shown is not None and default != _default(f):  # this command's own default: the field's is stale
            help_text = re.sub(r" ?\(default:[^)]*\)", "", help_text)
        if "(default:" not in help_text and default != "":  # a help that says what its default means keeps it
            help_text += f" (default: {'none' if default is None else default})"
        if kind is bool:
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=arg_default, help=help_text
            )
        else:
            parser.add_argument(
                flag,
                type=_parser_of(kind),
                default=arg_default,
                choices=f.metadata.get("choices"),
                required=f.metadata.get("required", False) or f.name in required,
                help=help_text + (" [optional]" if optional else ""),
            )


def dataclass_flags(config: Any, *, prefix: str = "", base: Any = None) -> list[str]:
    """The flags that `add_dataclass_arguments` reads back into `config` (e.g. a command line to
    print for the user): one per field that differs from what the parser would assume.

    base: the instance the parser starts from at this level (None: the fields' defaults); a
    nested config that was given starts from its own class's field default (`_given`).
    """
    argv: list[str] = []
    for f, kind, _ in _fields(type(config)):
        value = getattr(config, f.name)
        assumed = _default(f) if base is None else getattr(base, f.name)
        if value == assumed:
            continue
        if dataclasses.is_dataclass(kind):
            inner_prefix = prefix + f.metadata.get("prefix", "")
            inner = dataclass_flags(value, prefix=inner_prefix, base=_default(f))
            # at its class default, it must still be named once, or the parser keeps `assumed`
            named = (
                _flag(inner_prefix, g, k, getattr(value, g.name))
                for g, k, _ in _fields(kind)
                if getattr(value, g.name) is not None and not dataclasses.is_dataclass(k)
            )
            argv += inner or next(named)
        elif value is None:
            raise ValueError(f"{_flag(prefix, f, kind, assumed)[0]}: no flag sets it back to none")
        else:
            argv += _flag(prefix, f, kind, value)
    return argv


def _flag(prefix: str, f: dataclasses.Field, kind: Any, value: Any) -> list[str]:
    flag = "--" + (prefix + f.name).replace("_", "-")
    if kind is bool:
        return [flag if value else "--no-" + flag[2:]]
    return [flag, ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]


def dataclass_from_args(
    cls: type[T], namespace: argparse.Namespace, *, prefix: str = "", **overrides: Any
) -> T:
    """Build `cls` from the parsed flags that belong to it (those added with `prefix`)."""
    try:
        values = _given(cls, vars(namespace), prefix)
        values.update(overrides)
        return cls(**values)
    except (ValueError, TypeError) as err:  # an option check of a config's __post_init__
        raise UsageError(str(err)) from err


def given_dataclass(cls: type[T], namespace: argparse.Namespace, *, prefix: str = "") -> T | None:
    """`cls` from its flags if any was given (flags added with `tracked=True`), else None."""
    try:
        values = _given(cls, vars(namespace), prefix)
        return cls(**values) if values else None
    except (ValueError, TypeError) as err:  # an option check of a config's __post_init__
        raise UsageError(str(err)) from err


def _given(cls: type, parsed: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """{field: value} of the fields of `cls` present in `parsed`; nested configs built from theirs."""
    values: dict[str, Any] = {}
    for f, kind, _ in _fields(cls):
        if dataclasses.is_dataclass(kind):
            inner = _given(kind, parsed, prefix + f.metadata.get("prefix", ""))
            if inner:
                base = _default(f)
                values[f.name] = dataclasses.replace(base, **inner) if base is not None else kind(**inner)
        elif _dest(prefix, f.name) in parsed:
            values[f.name] = parsed[_dest(prefix, f.name)]
    return values


def dataclass_from_dict(cls: type[T], data: Mapping[str, Any], *, strict: bool = False) -> T:
    """Rebuild a config from its saved form (`flat_dict` or `dataclasses.asdict`, e.g. a report or
    a run record), nested ones included; a group saved flat or nested reads back alike.

    strict: a key that is no option of `cls` is refused (TypeError), not ignored.
    """
    values, used = _saved_values(cls, data)
    unknown = set(data) - used
    if strict and unknown:
        raise TypeError(f"{cls.__name__} has no option {', '.join(sorted(unknown))}")
    return cls(**values)


def _saved_values(cls: type, data: Mapping[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """({field: value} of `cls` from a saved form, the keys of `data` that were read)."""
    values: dict[str, Any] = {}
    used: set[str] = set()
    for f, kind, _ in _fields(cls):
        if f.metadata.get("flat") and not isinstance(data.get(f.name), Mapping):
            head, skip = _dest(f.metadata.get("prefix", ""), ""), f.metadata.get("skip", ())
            # a `skip`ped option has no flag and is not saved: a key of that name is another option's
            inner, inner_used = _saved_values(
                kind,
                {
                    k[len(head) :]: v
                    for k, v in data.items()
                    if k.startswith(head) and k[len(head) :] not in skip
                },
            )
            used |= {head + k for k in inner_used}
            base = _default(f)
            if inner or base is None:
                values[f.name] = dataclasses.replace(base, **inner) if base is not None else kind(**inner)
            continue
        if f.name not in data:
            continue
        used.add(f.name)
        value = data[f.name]
        if dataclasses.is_dataclass(kind) and isinstance(value, Mapping):
            value = dataclass_from_dict(kind, value)
        elif typing.get_origin(kind) is tuple and isinstance(value, list):
            value = tuple(value)
        values[f.name] = value
    return values, used


def flat_dict(config: Any) -> dict[str, Any]:
    """`dataclasses.asdict` with each `"flat"` group's options at the top level, under their flag
    names (its `skip`ped fields, which no flag sets, left out): the form runs and reports save."""
    saved: dict[str, Any] = {}
    for f, _, _ in _fields(type(config)):
        value = getattr(config, f.name)
        if f.metadata.get("flat"):
            head, skip = _dest(f.metadata.get("prefix", ""), ""), f.metadata.get("skip", ())
            saved.update({head + k: v for k, v in flat_dict(value).items() if k not in skip})
        else:
            saved[f.name] = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
    return saved


def check_choices(config: Any) -> None:
    """The `choices` of each field, for a config built in code (argparse checks the flags')."""
    for f in dataclasses.fields(config):
        choices, value = f.metadata.get("choices"), getattr(config, f.name)
        if choices and value is not None and value not in choices:
            flag = "--" + f.name.replace("_", "-")
            raise ValueError(f"{flag} must be one of {', '.join(map(str, choices))}, not {value!r}")


def dataclass_from_mapping(cls: type[T], options: dict[str, Any], *, prefix: str = "") -> T:
    """Build `cls` from string-or-typed options named `{prefix}field` (e.g. lm-eval model_args),
    popping the ones it uses from `options`."""
    values: dict[str, Any] = {}
    for f, kind, _ in _fields(cls):
        key = _dest(prefix, f.name)
        if key in options:
            values[f.name] = _convert(options.pop(key), kind, key)
    return cls(**values)


def _convert(value: Any, kind: Any, name: str) -> Any:
    plain = typing.get_origin(kind) or kind
    if value is None or isinstance(value, plain) and not (kind is int and isinstance(value, bool)):
        return value
    text = str(value).strip()
    if kind is bool:
        if text.lower() not in TRUE + FALSE:
            raise ValueError(f"{name}={value!r}: expected true or false")
        return text.lower() in TRUE
    if text.lower() == "none":
        return None
    try:
        return _parser_of(kind)(text)
    except ValueError as err:
        raise ValueError(f"{name}={value!r}: expected a {kind.__name__}") from err


def options_file_arguments(path: str, parser: argparse.ArgumentParser) -> list[str]:
    """The flags a YAML (or JSON) options file stands for, to be read before the command line's.

    `path` is a file, or the name of one rcd ships (`paper/llada-gsm8k`, `rcd.configs`).

    `key: value` is `--key value`, keys spelled as the command's flags (`res-dropout` or
    `res_dropout`); true/false is `--key` / `--no-key`; a list is a comma-separated value, or
    the flag repeated where the flag repeats; null keeps the default. Flags on the command
    line override the file.
    """
    import yaml

    from .configs import options_file, shipped_names

    try:
        data = yaml.safe_load(options_file(path).read_text())
    except OSError as err:
        raise UsageError(
            f"--config {path}: cannot read it ({err.strerror or err}); rcd ships {', '.join(shipped_names())}"
        ) from err
    except yaml.YAMLError as err:
        raise UsageError(f"--config {path}: not YAML or JSON ({' '.join(str(err).split())[:160]})") from err
    if not isinstance(data, dict):
        raise UsageError(
            f"--config {path}: expected a mapping of options (key: value), not {type(data).__name__}"
        )
    actions = {flag: action for action in parser._actions for flag in action.option_strings}
    argv: list[str] = []
    for key, value in data.items():
        flag = "--" + str(key).replace("_", "-")
        action = actions.get(flag)
        if action is None or flag in ("--config", "--help"):
            raise UsageError(f"--config {path}: {key!r} is not an option of this command (see --help)")
        if isinstance(value, bool):
            if value:
                argv.append(flag)
            elif "--no-" + flag[2:] in actions:
                argv.append("--no-" + flag[2:])
        elif isinstance(value, list) and isinstance(action, argparse._AppendAction):
            for item in value:
                argv += [flag, str(item)]
        elif isinstance(value, list):
            argv += [flag, ",".join(map(str, value))]
        elif value is not None:  # null: the option's default
            argv += [flag, str(value)]
    return argv


def split_config_flag(argv: list[str]) -> tuple[str | None, list[str]]:
    """(the `--config FILE` value, argv without it)."""
    for i, token in enumerate(argv):
        if token == "--config":
            if i + 1 >= len(argv):
                raise UsageError("--config needs a file: --config run.yaml")
            return argv[i + 1], argv[:i] + argv[i + 2 :]
        if token.startswith("--config="):
            return token.split("=", 1)[1], argv[:i] + argv[i + 1 :]
    return None, argv
