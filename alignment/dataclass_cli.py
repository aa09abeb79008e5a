"""Command-line flags generated from a config dataclass, so each option is defined once.

transformers' `HfArgumentParser` does this for its own dataclasses but cannot express what
`deepguard train` has always accepted (`--betas 0.5,2,2`, `--no-bf16`, `--out` for
`output_dir`), so this is the small equivalent. A field's `metadata` may carry:
  help     the flag's help text
  flag     the flag's name when it is not `--field-name` (`--out`, `--lr`)
  choices  the allowed values
  parse    a function from the flag's text to the field's value (instead of the field's type)
  cli      False keeps a field off the command line
A bool field that defaults to True becomes `--no-<name>`, one that defaults to False `--<name>`.
A `list[X]` field becomes a repeatable flag; given once or more, its values replace the default.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any

MISSING = dataclasses.MISSING


def _scalar_type(hint: Any) -> Any:
    """`int | None` -> int; a plain type as it is."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"only X | None unions become flags, not {hint}")
        return args[0]
    return hint


def _as_written(value: Any) -> str:
    """A default as it would be typed: (0.5, 2.0) -> 0.5,2."""
    if isinstance(value, tuple):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return str(value)


def option(default: Any, help: str, **cli: Any) -> Any:
    """A dataclass field with its default and its flag's help (plus flag, parse, choices, cli).
    A list default becomes a fresh copy for every instance."""
    metadata = {"help": help, **cli}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def cli_fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.init and f.metadata.get("cli", True)]


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """One flag per field of `cls`, its default the field's default."""
    hints = typing.get_type_hints(cls)
    for f in cli_fields(cls):
        meta = f.metadata
        if f.default is MISSING and f.default_factory is MISSING:
            raise TypeError(f"{cls.__name__}.{f.name} needs a default to become a flag")
        default = f.default if f.default is not MISSING else f.default_factory()
        help_text = meta.get("help", "")
        hint = _scalar_type(hints[f.name])
        name = f.name.replace("_", "-")
        if hint is bool:
            flag = meta.get("flag", f"--no-{name}" if default else f"--{name}")
            action = "store_false" if default else "store_true"
            parser.add_argument(flag, dest=f.name, action=action, default=default, help=help_text)
            continue
        if typing.get_origin(hint) is list:
            # Appending onto the default would keep it (and mutate it); None marks "not given".
            (item,) = typing.get_args(hint)
            shown = ", ".join(default) or "none"
            parser.add_argument(
                meta.get("flag", f"--{name}"),
                dest=f.name,
                action="append",
                type=meta.get("parse", item),
                default=None,
                help=f"{help_text} (default: {shown})",
            )
            continue
        kwargs: dict[str, Any] = {"dest": f.name, "default": default, "type": hint}
        if "parse" in meta:
            kwargs["type"] = meta["parse"]
        if "choices" in meta:
            kwargs["choices"] = meta["choices"]
        if default is not None:
            shown = _as_written(default).replace("%", "%%")
            help_text += f" (default: {shown})" if help_text else f"default: {shown}"
        parser.add_argument(meta.get("flag", f"--{name}"), help=help_text, **kwargs)


def dataclass_from_args(cls: type, args: argparse.Namespace, **overrides: Any) -> Any:
    """An instance of `cls` from parsed flags (fields off the command line keep their defaults)."""
    values = {
        f.name: getattr(args, f.name)
        for f in cli_fields(cls)
        if getattr(args, f.name) is not None or f.default_factory is MISSING
    }
    return cls(**(values | overrides))
