"""The cells of a CSV as operators' tools write them: which separator a header uses, and a
cell's number (decimal commas where the comma is not the separator). Shared by the service's
fleet files (fleet_rows.py) and training's data sets (training/dataset.py)."""

from typing import Any

SEPARATORS = (",", ";", "\t")


def separator(header: str) -> str:
    """The separator of a CSV from its header line: the most frequent of , ; and tab."""
    return max(SEPARATORS, key=header.count)


def parse_number(text: str, decimal_comma: bool) -> tuple[float, str | None]:
    """A cell's number, or what is wrong with it ("is empty", "holds 'x', not a number");
    `decimal_comma`: "1,5" is 1.5 (only where the comma is not the separator)."""
    text = text.strip().strip('"')
    if not text:
        return 0.0, "is empty"
    try:
        return float(text.replace(",", ".") if decimal_comma else text), None
    except ValueError:
        return 0.0, f"holds {text[:40]!r}, not a number"


def unit_ids(texts: list[str]) -> list[Any]:
    """Unit ids as sent: integers where every id of the file is one written plainly ("17", not
    "017"), else the text."""
    try:
        numbers = [int(t) for t in texts]
    except ValueError:
        return texts
    return numbers if all(str(n) == t for n, t in zip(numbers, texts, strict=True)) else texts
