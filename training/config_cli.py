"""Command-line flags generated from config dataclasses: every field `--name value`."""

import argparse
import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def add_dataclass_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add `--field-name` (and `--field_name`) for each field of dataclass `cls`, typed and
    defaulted from the class."""
    group = parser.add_argument_group(cls.__name__)
    for field in dataclasses.fields(cls):
        flags = sorted({f"--{field.name.replace('_', '-')}", f"--{field.name}"})
        kind = field.type if isinstance(field.type, type) else type(field.default)
        if kind is bool:
            group.add_argument(
                *flags,
                dest=field.name,
                action=argparse.BooleanOptionalAction,
                default=field.default,
            )
        else:
            group.add_argument(
                *flags,
                dest=field.name,
                type=kind,
                default=field.default,
                metavar=kind.__name__.upper(),
            )


def dataclass_from_flags(cls: type[T], args: argparse.Namespace) -> T:
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {k: v for k, v in vars(args).items() if k in names}
    return cls(**values)
