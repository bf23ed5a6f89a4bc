"""Command-line flags generated from config dataclasses: every field `--name value`, with the
comment beside the field as its help and its default shown."""

import argparse
import dataclasses
import inspect
import re
from typing import Any, TypeVar

T = TypeVar("T")

# `    name: type = default  # what it is` in a config dataclass's source
FIELD_COMMENT = re.compile(r"^\s+(\w+): [^=]+=.*?  # (.+)$")


def field_comments(cls: type) -> dict[str, str]:
    """{field: the comment beside it}: a config's fields are documented once, in its source,
    and `--help` shows that text."""
    return {m[1]: m[2] for line in inspect.getsource(cls).splitlines() if (m := FIELD_COMMENT.match(line))}


def add_dataclass_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add `--field-name` (and `--field_name`) for each field of dataclass `cls`, typed and
    defaulted from the class, documented by the field's comment."""
    group = parser.add_argument_group(cls.__name__)
    comments = field_comments(cls)
    for field in dataclasses.fields(cls):
        flags = sorted({f"--{field.name.replace('_', '-')}", f"--{field.name}"})
        kind = field.type if isinstance(field.type, type) else type(field.default)
        help_text = f"{comments.get(field.name, '')} (default: {field.default!r})".lstrip().replace("%", "%%")
        if kind is bool:
            group.add_argument(
                *flags,
                dest=field.name,
                action=argparse.BooleanOptionalAction,
                default=field.default,
                help=help_text,
            )
        else:
            group.add_argument(
                *flags,
                dest=field.name,
                type=kind,
                default=field.default,
                metavar=kind.__name__.upper(),
                help=help_text,
            )


def dataclass_from_flags(cls: type[T], args: argparse.Namespace) -> T:
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {k: v for k, v in vars(args).items() if k in names}
    return cls(**values)
