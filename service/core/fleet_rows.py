"""A fleet file's rows, parsed a piece at a time: unit ids as text, cycles, readings in the
model's feature order, and the units refused with why. A row the model cannot take (an empty or
non-numeric value, a value beyond float32, a cycle that is not a whole number) refuses its
unit, not the file; a problem that names no unit refuses the file (FleetFileError)."""

import csv
import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

from service.core.csv_cells import parse_number, separator
from service.core.fleet_layout import COLUMNS, LIMITS, MAX_UNIT_ID, FleetFileError, FleetLayout, UploadLimits
from service.core.window_input import not_finite


@dataclass
class Rows:
    """Some rows of a fleet file: unit ids as text, cycles and readings; refused units and why,
    and how many rows each unit had (kept or not)."""

    units: list[str]
    cycles: np.ndarray  # (n,) float64
    values: np.ndarray  # (n, F) float64
    lines: list[int]  # the line (Parquet: row) of each, for messages
    refused: dict[str, str] = field(default_factory=dict)
    rows_per_unit: Counter[str] = field(default_factory=Counter)


def _whole(values: np.ndarray, limit: int) -> np.ndarray:
    """Which values are whole numbers from 0 to `limit`."""
    return (values == np.round(values)) & (values >= 0) & (values <= limit)


def _reading(text: str, decimal_comma: bool) -> tuple[float, str | None]:
    """A reading, or what is wrong with it: also a value that is not a finite float32."""
    value, problem = parse_number(text, decimal_comma)
    if problem:
        return value, problem
    with np.errstate(over="ignore"):
        as_read = float(np.float32(value))  # what the model would read
    if not np.isfinite(as_read):
        sent = value if np.isfinite(value) else None
        return value, f"is {not_finite(as_read, sent)}; every value must be a finite number"
    return value, None


def _row_problem(fields: Sequence[str], order: list[int], names: Sequence[str], line: int,
                 decimal_comma: bool) -> tuple[float, list[float], str | None]:  # fmt: skip
    """One row's cycle and readings, or why its unit is refused."""
    if len(fields) <= max(order):
        return (
            0.0,
            [],
            f"line {line} has {len(fields)} columns; expected at least {max(order) + 1}, as the header",
        )
    cycle, problem = parse_number(fields[order[1]], decimal_comma)
    if problem:
        return 0.0, [], f"line {line}, column {names[1]} {problem}"
    if not np.isfinite(cycle) or not _whole(np.asarray(cycle), LIMITS["cycle"]):
        return 0.0, [], (f"line {line}: the {names[1]} number is {cycle:g}; it must be a whole number "
                         f"from 0 to {LIMITS['cycle']}")  # fmt: skip
    readings = []
    for k, j in enumerate(order[2:], start=2):
        value, problem = _reading(fields[j], decimal_comma)
        if problem:
            return 0.0, [], f"line {line}, column {names[k]} {problem}"
        readings.append(value)
    return cycle, readings, None


def split_rows(rows: Sequence[Sequence[str]], lines: list[int], order: list[int], names: Sequence[str],
               decimal_comma: bool) -> Rows:  # fmt: skip
    """Fields of each row (already split) -> Rows; `order`: the field of the unit, the cycle,
    then each feature. A unit's first bad row refuses it (its rows are dropped by the caller)."""
    units, cycles, values, kept = [], [], [], []
    refused: dict[str, str] = {}
    counts: Counter[str] = Counter()
    for fields, line in zip(rows, lines, strict=True):
        unit = fields[order[0]].strip().strip('"') if len(fields) > order[0] else ""
        if not unit:
            raise FleetFileError(f"line {line} has no {names[0]}: every row needs its unit")
        if len(unit) > MAX_UNIT_ID:
            raise FleetFileError(f"line {line}: the {names[0]} is longer than {MAX_UNIT_ID} characters")
        counts[unit] += 1
        if unit in refused:
            continue
        cycle, readings, problem = _row_problem(fields, order, names, line, decimal_comma)
        if problem:
            refused[unit] = problem
            continue
        units.append(unit)
        cycles.append(cycle)
        values.append(readings)
        kept.append(line)
    table = np.asarray(values, dtype=np.float64).reshape(len(values), len(order) - 2)
    return Rows(units, np.asarray(cycles, dtype=np.float64), table, kept, refused, counts)


def text_rows(chunk: list[tuple[int, str]]) -> Rows:
    """C-MAPSS text lines -> Rows. numpy's C parser reads them; only when that fails, or a
    value is out of bounds, are the lines walked in Python to say which one is wrong."""
    try:
        table = np.loadtxt(io.StringIO("".join(line for _, line in chunk)), ndmin=2)
    except (ValueError, IndexError):
        table = None
    if table is not None and table.shape[1] == len(COLUMNS):
        with np.errstate(over="ignore"):  # a number beyond float32 is refused, by the walk below
            fine = np.isfinite(table.astype(np.float32)).all()
        if fine and _whole(table[:, 0], LIMITS["unit"]).all() and _whole(table[:, 1], LIMITS["cycle"]).all():
            units = [str(int(u)) for u in table[:, 0]]
            return Rows(units, table[:, 1], table[:, 2:], [n for n, _ in chunk], {}, Counter(units))
    rows = [line.split() for _, line in chunk]
    for (number, _), fields in zip(chunk, rows, strict=True):
        if len(fields) != len(COLUMNS):
            raise FleetFileError(f"line {number} has {len(fields)} columns; expected {len(COLUMNS)}: "
                                 "unit, cycle, setting_1..3, s_1..s_21")  # fmt: skip
        unit, problem = parse_number(fields[0], False)
        if problem or unit != round(unit) or not 0 <= unit <= LIMITS["unit"]:
            shown = f"{unit:g}" if not problem else repr(fields[0][:40])
            raise FleetFileError(f"line {number}: the unit number is {shown}; it must be a whole "
                                 f"number from 0 to {LIMITS['unit']}")  # fmt: skip
        fields[0] = str(int(unit))
    return split_rows(rows, [n for n, _ in chunk], list(range(len(COLUMNS))), COLUMNS, False)


@dataclass(frozen=True)
class CsvFormat:
    separator: str
    order: list[int]  # the fields of the unit, the cycle, then each feature

    @classmethod
    def of(cls, header: str, layout: FleetLayout) -> "CsvFormat":
        """The format a header line says (a byte-order mark, as spreadsheets write it, dropped)."""
        header = header.lstrip("\ufeff")
        sep = separator(header)
        names = [h.strip().strip('"').strip().lower() for h in next(csv.reader([header], delimiter=sep))]
        missing = layout.missing_from(names)
        if missing:
            raise FleetFileError(f"the CSV header {missing}")
        return cls(sep, [names.index(c.lower()) for c in layout.columns])

    def rows(self, chunk: list[tuple[int, str]], layout: FleetLayout) -> Rows:
        fields = list(csv.reader((line for _, line in chunk), delimiter=self.separator))
        decimal_comma = self.separator != ","  # "1,5" is 1.5 only where the comma separates nothing
        return split_rows(fields, [n for n, _ in chunk], self.order, layout.columns, decimal_comma)


PARQUET_MAGIC = b"PAR1"  # the first (and last) 4 bytes of a Parquet file


def parquet_rows(raw: BinaryIO, limits: UploadLimits, layout: FleetLayout) -> Rows:
    """A Parquet fleet file's rows: the same columns as a CSV's (names ignoring case; others
    ignored), the same refusals unit by unit ("row N" for a CSV's "line N")."""
    import pyarrow as pa  # imported here, where only Parquet needs it
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(raw)
        raw.seek(0)
        metadata = pq.read_metadata(raw)
        raw.seek(0)
    except (pa.ArrowException, OSError) as exc:
        raise FleetFileError(f"the Parquet file cannot be read ({exc}); upload the whole file") from None
    missing = layout.missing_from(schema.names)
    if missing:
        raise FleetFileError(f"the Parquet file {missing}")
    limits.check_rows(metadata.num_rows)
    by_lower = {name.lower(): name for name in schema.names}
    table = pq.read_table(raw, columns=[by_lower[c.lower()] for c in layout.columns])
    units = ["" if u is None else str(u).strip() for u in table.column(0).to_pylist()]
    if "" in units:
        raise FleetFileError(f"row {units.index('') + 1} has no {layout.unit}: every row needs its unit")
    values = np.stack(
        [_numbers(table.column(j), layout.columns[j]) for j in range(1, table.num_columns)], axis=1
    )
    return Rows(units, values[:, 0], values[:, 1:], list(range(1, len(units) + 1)),
                _parquet_refusals(units, values, layout), Counter(units))  # fmt: skip


def _numbers(column: Any, name: str) -> np.ndarray:
    import pyarrow as pa

    try:
        return column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowException, ValueError):
        raise FleetFileError(f"the Parquet column {name} does not hold numbers ({column.type})") from None


def _parquet_refusals(units: list[str], values: np.ndarray, layout: FleetLayout) -> dict[str, str]:
    """values (N, 1 + F): cycle then readings; each unit's first bad row, in words."""
    with np.errstate(over="ignore", invalid="ignore"):
        bad = ~np.isfinite(values.astype(np.float32))
        bad[:, 0] |= ~_whole(values[:, 0], LIMITS["cycle"])
    refused: dict[str, str] = {}
    for row in np.flatnonzero(bad.any(axis=1)).tolist():
        j = int(np.argmax(bad[row]))
        what = "is empty" if np.isnan(values[row, j]) else f"is {values[row, j]:g}"
        rule = f"a whole number from 0 to {LIMITS['cycle']}" if j == 0 else "a finite number"
        refused.setdefault(
            units[row], f"row {row + 1}, column {layout.columns[j + 1]} {what}; it must be {rule}"
        )
    return refused
