"""Reading an uploaded fleet file into per-unit histories, a chunk of lines at a time.

The columns are the model's (`FleetLayout.of(card)`): its unit and cycle columns and its
input features. Parquet files (told by their magic bytes) hold them as columns; text files come
in two formats, told apart by their first line:
- CSV with a header naming the unit, the cycle and the model's features in any order (extra
  columns are ignored; names match ignoring case), as spreadsheets write it too: a byte-order
  mark, `,` `;` or tab separators, decimal commas where the separator is not a comma, quoted
  fields, CRLF line ends. Unit ids are kept as they are: integers, or text ("ESN-100017");
- C-MAPSS text, for models trained on C-MAPSS: 26 whitespace-separated numbers per line
  (unit, cycle, 3 settings, 21 sensors), as in NASA's `train_FD00x.txt` / `test_FD00x.txt`.
Either may be gzipped (detected by its magic bytes, not its name). Values are parsed into
float32 arrays chunk by chunk, so memory stays near the size of the numbers themselves
(4 bytes per value) rather than of the text or of Python lists.

A row the model cannot take (an empty or non-numeric value, a cycle repeated) refuses its
unit, not the file: the other units are scored and the refused one is listed with its reason
(`Fleet.refused`, the answer's `skipped`). A problem that names no unit refuses the file.
"""

import csv
import gzip
import io
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

from service.core.window_input import describe_features, not_finite

# C-MAPSS's input features (the 3 settings, then sensors 1-21): a model trained on them also
# reads the 26-column text files
FEATURES = ["setting_1", "setting_2", "setting_3", *(f"s_{i}" for i in range(1, 22))]
COLUMNS = ["unit", "cycle", *FEATURES]  # 26
MAX_UNIT_ID = 200  # characters of a unit id sent as text
# Lines parsed per numpy call. numpy's parser holds the interpreter while it reads a chunk, so
# the chunk bounds how long the event loop can wait on a scoring thread: 20 simultaneous
# uploads of test_FD001 gave /health/live a worst probe of 44-86 ms with 10 000 lines and 27-49 ms
# with 2 000 (python -m bench.abuse --only "20 concurrent", three runs each), with the same
# reading speed (52 MB of FD004 rows in 1.5-1.6 s either way).
CHUNK_LINES = 2_000


class FleetFileError(ValueError):
    """The file cannot be read as a fleet; the message says where and why."""


class FleetTooLarge(FleetFileError):
    """The file passes a size limit; the message names the limit and its setting (413)."""


@dataclass(frozen=True)
class UploadLimits:
    """Limits checked while the file streams in, before its cost is paid (None: no limit)."""

    max_rows: int | None = None  # lines with readings (RUL_MAX_UPLOAD_ROWS)
    max_bytes: int | None = None  # text after decompression (RUL_MAX_UPLOAD_DECOMPRESSED_BYTES)
    max_ratio: float | None = None  # gzip: decompressed / compressed bytes (RUL_MAX_DECOMPRESSION_RATIO)
    max_units: int | None = None  # distinct units (RUL_MAX_UPLOAD_UNITS)
    max_line: int = 64 * 1024  # characters in one line: a C-MAPSS line has about 200


class _Counted(io.RawIOBase):
    """A gzip stream that counts what it decompresses and stops at the limits."""

    def __init__(self, compressed: BinaryIO, limits: UploadLimits):
        self.compressed, self.limits = compressed, limits
        self.stream = gzip.GzipFile(fileobj=compressed, mode="rb")
        self.total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        data = self.stream.read(len(buffer))
        buffer[: len(data)] = data
        self.total += len(data)
        limits = self.limits
        if limits.max_bytes is not None and self.total > limits.max_bytes:
            raise FleetTooLarge(f"the file decompresses to more than {limits.max_bytes} bytes; the limit is "
                                f"{limits.max_bytes} (RUL_MAX_UPLOAD_DECOMPRESSED_BYTES)")  # fmt: skip
        ratio = self.total / max(self.compressed.tell(), 1)
        if limits.max_ratio is not None and self.total > 1024 * 1024 and ratio > limits.max_ratio:
            raise FleetTooLarge(f"the file decompresses {ratio:.0f} times its size; the limit is "
                                f"{limits.max_ratio:g} (RUL_MAX_DECOMPRESSION_RATIO)")  # fmt: skip
        return len(data)


def _text_lines(raw: BinaryIO, limits: UploadLimits) -> Iterator[str]:
    head = raw.read(2)
    raw.seek(0)
    stream: BinaryIO = raw
    if head == b"\x1f\x8b":
        stream = io.BufferedReader(_Counted(raw, limits), 1024 * 1024)  # type: ignore[type-var]
    text = io.TextIOWrapper(stream, encoding="utf-8", errors="strict", newline="")
    try:
        number = 0
        while line := text.readline(limits.max_line + 1):
            number += 1
            if len(line) > limits.max_line:
                raise FleetTooLarge(f"line {number} is longer than {limits.max_line} characters: "
                                    "not a fleet file")  # fmt: skip
            yield line
    except (EOFError, OSError, zlib.error) as exc:
        raise FleetFileError(
            f"the gzip stream is truncated or corrupt ({exc}); upload the whole file"
        ) from exc
    except UnicodeDecodeError as exc:
        raise FleetFileError(
            f"the file is not text (byte {exc.start} of a chunk is not UTF-8): upload C-MAPSS text or CSV"
        ) from exc


@dataclass(frozen=True)
class FleetLayout:
    """The columns of a model's fleet files: its unit and cycle columns, then its features."""

    unit: str = "unit"
    cycle: str = "cycle"
    features: tuple[str, ...] = tuple(FEATURES)

    @classmethod
    def of(cls, card: Any) -> "FleetLayout":
        """The layout of a model card: its data set's unit and cycle columns (C-MAPSS's "unit"
        and "cycle" for cards without a data set) and its input features."""
        dataset = getattr(card, "dataset", None) or {}
        return cls(dataset.get("unit", "unit"), dataset.get("cycle", "cycle"), tuple(card.input_features))

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.unit, self.cycle, *self.features)

    @property
    def reads_cmapss_text(self) -> bool:
        """A model trained on C-MAPSS's 24 features also reads its 26-column text files."""
        return list(self.features) == FEATURES

    def describe(self) -> str:
        return f"{self.unit}, {self.cycle}, {describe_features(self.features)}"


class Fleet(dict[Any, tuple[np.ndarray, np.ndarray]]):
    """{unit id: (cycle numbers (T,), readings (T, F) float32)}, sorted by unit and cycle; and
    `refused`: the units left out, each {"unit", "cycles" (rows read), "reason"}."""

    def __init__(self, units: dict[Any, tuple[np.ndarray, np.ndarray]], refused: list[dict[str, Any]]):
        super().__init__(units)
        self.refused = refused


@dataclass
class _Chunk:
    """One chunk's rows: unit ids as text, cycles and readings; refused units and why."""

    units: list[str]
    cycles: np.ndarray  # (n,) float64
    values: np.ndarray  # (n, F) float64
    lines: list[int]
    refused: dict[str, str] = field(default_factory=dict)
    rows_per_unit: dict[str, int] = field(default_factory=dict)  # every row read, kept or not


def _parse_number(text: str, decimal_comma: bool) -> tuple[float, str | None]:
    """A cell's number, or what is wrong with it ("is empty", "holds 'x', not a number")."""
    text = text.strip().strip('"')
    if not text:
        return 0.0, "is empty"
    try:
        return float(text.replace(",", ".") if decimal_comma else text), None
    except ValueError:
        return 0.0, f"holds {text[:40]!r}, not a number"


def _reading_problem(text: str, decimal_comma: bool) -> tuple[float, str | None]:
    """A reading, or what is wrong with it: also a value that is not a finite float32."""
    value, problem = _parse_number(text, decimal_comma)
    if problem:
        return value, problem
    with np.errstate(over="ignore"):
        as_read = float(np.float32(value))  # what the model would read
    if not np.isfinite(as_read):
        sent = value if np.isfinite(value) else None
        return value, f"is {not_finite(as_read, sent)}; every value must be a finite number"
    return value, None


def _parse_rows(
    rows: Sequence[Sequence[str]],
    lines: list[int],
    order: list[int],
    names: Sequence[str],
    decimal_comma: bool,
) -> _Chunk:
    """Fields of each row (already split) -> a chunk; `order`: the field of the unit, the cycle,
    then each feature; a row with a bad value refuses its unit."""
    width = max(order) + 1
    units, cycles, values, kept = [], [], [], []
    refused: dict[str, str] = {}
    counts: dict[str, int] = {}
    for fields, line in zip(rows, lines, strict=True):
        unit = fields[order[0]].strip().strip('"') if len(fields) > order[0] else ""
        if not unit:
            raise FleetFileError(f"line {line} has no {names[0]}: every row needs its unit")
        if len(unit) > MAX_UNIT_ID:
            raise FleetFileError(f"line {line}: the {names[0]} is longer than {MAX_UNIT_ID} characters")
        counts[unit] = counts.get(unit, 0) + 1
        if unit in refused:
            continue
        if len(fields) < width:
            refused[unit] = f"line {line} has {len(fields)} columns; expected at least {width}, as the header"
            continue
        cycle, problem = _parse_number(fields[order[1]], decimal_comma)
        if problem:
            refused[unit] = f"line {line}, column {names[1]} {problem}"
            continue
        if not np.isfinite(cycle) or cycle != np.round(cycle) or not 0 <= cycle <= LIMITS["cycle"]:
            refused[unit] = (f"line {line}: the {names[1]} number is {cycle:g}; it must be a whole number "
                             f"from 0 to {LIMITS['cycle']}")  # fmt: skip
            continue
        numbers = []
        for k, j in enumerate(order[2:], start=2):
            number, problem = _reading_problem(fields[j], decimal_comma)
            if problem:
                refused[unit] = f"line {line}, column {names[k]} {problem}"
                break
            numbers.append(number)
        else:
            units.append(unit)
            cycles.append(cycle)
            values.append(numbers)
            kept.append(line)
    table = np.asarray(values, dtype=np.float64).reshape(len(values), len(order) - 2)
    chunk = _Chunk(units, np.asarray(cycles, dtype=np.float64), table, kept, refused, counts)
    return _without(chunk, set(refused))


def _without(chunk: _Chunk, refused: set[str]) -> _Chunk:
    """The chunk without the rows of refused units (a unit's earlier rows in this chunk too)."""
    if not refused or not any(u in refused for u in chunk.units):
        return chunk
    keep = [i for i, u in enumerate(chunk.units) if u not in refused]
    return _Chunk([chunk.units[i] for i in keep], chunk.cycles[keep], chunk.values[keep],
                  [chunk.lines[i] for i in keep], chunk.refused, chunk.rows_per_unit)  # fmt: skip


def _parse_text_chunk(chunk: list[tuple[int, str]]) -> _Chunk:
    """C-MAPSS text lines -> a chunk. numpy's C parser reads it; only when that fails are the
    lines walked in Python to say which one is wrong."""
    try:
        table = np.loadtxt(io.StringIO("".join(line for _, line in chunk)), ndmin=2)
        with np.errstate(over="ignore"):  # a number beyond float32 is refused, by the walk below
            finite = bool(np.isfinite(table.astype(np.float32)).all())
        if table.shape[1] == len(COLUMNS) and finite:
            whole = (
                (table[:, 0] == np.round(table[:, 0])) & (table[:, 0] >= 0) & (table[:, 0] <= LIMITS["unit"])
            )
            if whole.all():
                cycles_ok = (table[:, 1] == np.round(table[:, 1])) & (table[:, 1] >= 0)
                if (cycles_ok & (table[:, 1] <= LIMITS["cycle"])).all():
                    units = [str(int(u)) for u in table[:, 0]]
                    counts: dict[str, int] = {}
                    for u in units:
                        counts[u] = counts.get(u, 0) + 1
                    return _Chunk(units, table[:, 1], table[:, 2:], [n for n, _ in chunk], {}, counts)
    except (ValueError, IndexError):
        pass
    rows = [line.split() for _, line in chunk]
    for (number, _), fields in zip(chunk, rows, strict=True):
        if len(fields) != len(COLUMNS):
            raise FleetFileError(f"line {number} has {len(fields)} columns; expected {len(COLUMNS)}: "
                                 "unit, cycle, setting_1..3, s_1..s_21")  # fmt: skip
        unit, problem = _parse_number(fields[0], False)
        if problem or unit != round(unit) or not 0 <= unit <= LIMITS["unit"]:
            shown = f"{unit:g}" if not problem else repr(fields[0][:40])
            raise FleetFileError(f"line {number}: the unit number is {shown}; it must be a whole "
                                 f"number from 0 to {LIMITS['unit']}")  # fmt: skip
        fields[0] = str(int(unit))
    return _parse_rows(rows, [n for n, _ in chunk], list(range(len(COLUMNS))), COLUMNS, False)


@dataclass(frozen=True)
class _CsvFormat:
    separator: str
    order: list[int]  # the fields of the unit, the cycle, then each feature

    @property
    def decimal_comma(self) -> bool:
        return self.separator != ","  # "1,5" is 1.5 only where the comma separates nothing


def _csv_format(header: str, layout: FleetLayout) -> _CsvFormat:
    header = header.lstrip("\ufeff")  # a byte-order mark, as spreadsheets write it
    separator = max((",", ";", "\t"), key=header.count)
    names = [h.strip().strip('"').strip().lower() for h in next(csv.reader([header], delimiter=separator))]
    missing = [c for c in layout.columns if c.lower() not in names]
    if missing:
        more = " ..." if len(missing) > 8 else ""
        raise FleetFileError(f"the CSV header lacks {', '.join(missing[:8])}{more}; this model needs "
                             f"{layout.describe()} (any order; other columns are ignored)")  # fmt: skip
    return _CsvFormat(separator, [names.index(c.lower()) for c in layout.columns])


def _parse_csv_chunk(chunk: list[tuple[int, str]], form: _CsvFormat, layout: FleetLayout) -> _Chunk:
    rows = list(csv.reader((line for _, line in chunk), delimiter=form.separator))
    return _parse_rows(rows, [n for n, _ in chunk], form.order, layout.columns, form.decimal_comma)


# Unit numbers fit an int32; cycle numbers are kept exactly in float32 up to 2**24.
LIMITS = {"unit": 2**31 - 1, "cycle": 2**24}


def _is_header(line: str, layout: FleetLayout) -> bool:
    text = line.lower()
    return any(name.lower() in text for name in (layout.unit, layout.cycle, *layout.features[:3]))


def read_fleet(
    raw: BinaryIO,
    chunk_lines: int = CHUNK_LINES,
    limits: UploadLimits | None = None,
    layout: FleetLayout | None = None,
) -> Fleet:
    """The fleet in a file, in the columns of `layout` (default: C-MAPSS's). Raises
    FleetFileError naming the line and problem where no unit can be blamed, FleetTooLarge past
    a limit; a unit with a bad row is left out and listed in `Fleet.refused`."""
    limits, layout = limits or UploadLimits(), layout or FleetLayout()
    head = raw.read(4)
    raw.seek(0)
    if head == PARQUET_MAGIC:
        return read_parquet_fleet(raw, limits, layout)
    numbered = ((n, line) for n, line in enumerate(_text_lines(raw, limits), start=1) if line.strip())
    first = next(numbered, None)
    if first is None:
        text = "C-MAPSS text or a CSV with a header" if layout.reads_cmapss_text else "a CSV with a header"
        raise FleetFileError(f"the file is empty: upload {text} ({layout.describe()})")
    form: _CsvFormat | None = None
    pending: list[tuple[int, str]] = [first]
    if any(sep in first[1] for sep in ",;\t") or not layout.reads_cmapss_text:
        if not _is_header(first[1], layout):
            raise FleetFileError(f"the CSV file has no header; its first line must name the columns: "
                                 f"{layout.describe()}")  # fmt: skip
        form, pending = _csv_format(first[1], layout), []

    chunks: list[_Chunk] = []
    refused: dict[str, str] = {}
    counts: dict[str, int] = {}  # rows read per unit
    rows_read = 0

    def flush(lines: list[tuple[int, str]]) -> None:
        nonlocal rows_read
        rows_read += len(lines)
        if limits.max_rows is not None and rows_read > limits.max_rows:
            raise FleetTooLarge(f"the file has more than {limits.max_rows} rows of readings; the limit is "
                                f"{limits.max_rows} (RUL_MAX_UPLOAD_ROWS): split the fleet")  # fmt: skip
        chunk = _parse_csv_chunk(lines, form, layout) if form else _parse_text_chunk(lines)
        for unit, reason in chunk.refused.items():
            refused.setdefault(unit, reason)
        for unit, n in chunk.rows_per_unit.items():
            counts[unit] = counts.get(unit, 0) + n
        chunks.append(_without(chunk, set(refused)))
        if limits.max_units is not None and len(counts) > limits.max_units:
            raise FleetTooLarge(f"the file has more than {limits.max_units} units; the limit is "
                                f"{limits.max_units} (RUL_MAX_UPLOAD_UNITS): split the fleet")  # fmt: skip

    for item in numbered:
        pending.append(item)
        if len(pending) >= chunk_lines:
            flush(pending)
            pending = []
    if pending:
        flush(pending)
    if not chunks:
        raise FleetFileError("the file holds a header but no readings")
    return _by_unit(chunks, refused, counts, layout)


PARQUET_MAGIC = b"PAR1"  # the first (and last) 4 bytes of a Parquet file


def read_parquet_fleet(raw: BinaryIO, limits: UploadLimits, layout: FleetLayout) -> Fleet:
    """A Parquet fleet file: the same columns as a CSV's (names ignoring case; others ignored),
    the same refusals unit by unit ("row N" for a CSV's "line N"), within the same limits."""
    import pyarrow as pa  # a service dependency; imported here, where only Parquet needs it
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(raw)
    except (pa.ArrowException, OSError) as exc:
        raise FleetFileError(f"the Parquet file cannot be read ({exc}); upload the whole file") from None
    by_lower = {name.lower(): name for name in schema.names}
    missing = [c for c in layout.columns if c.lower() not in by_lower]
    if missing:
        raise FleetFileError(f"the Parquet file lacks {', '.join(missing[:8])}; this model needs "
                             f"{layout.describe()} (any order; other columns are ignored)")  # fmt: skip
    raw.seek(0)
    metadata = pq.read_metadata(raw)
    if limits.max_rows is not None and metadata.num_rows > limits.max_rows:
        raise FleetTooLarge(f"the file has {metadata.num_rows} rows of readings; the limit is "
                            f"{limits.max_rows} (RUL_MAX_UPLOAD_ROWS): split the fleet")  # fmt: skip
    raw.seek(0)
    table = pq.read_table(raw, columns=[by_lower[c.lower()] for c in layout.columns])
    units = ["" if u is None else str(u).strip() for u in table.column(0).to_pylist()]
    if "" in units:
        raise FleetFileError(f"row {units.index('') + 1} has no {layout.unit}: every row needs its unit")
    numbers = []
    for j in range(1, table.num_columns):
        try:
            numbers.append(table.column(j).cast(pa.float64()).to_numpy(zero_copy_only=False))
        except (pa.ArrowException, ValueError):
            raise FleetFileError(f"the Parquet column {layout.columns[j]} does not hold numbers "
                                 f"({table.column(j).type})") from None  # fmt: skip
    values = np.stack(numbers, axis=1).reshape(len(units), table.num_columns - 1)  # cycle, features
    with np.errstate(over="ignore", invalid="ignore"):
        bad = ~np.isfinite(values.astype(np.float32))
        cycles = values[:, 0]
        bad[:, 0] |= (cycles != np.round(cycles)) | (cycles < 0) | (cycles > LIMITS["cycle"])
    refused: dict[str, str] = {}
    for row in np.flatnonzero(bad.any(axis=1)).tolist():
        j = int(np.argmax(bad[row]))
        value = values[row, j]
        what = "is empty" if np.isnan(value) else f"is {value:g}"
        rule = "a whole number from 0 to " + str(LIMITS["cycle"]) if j == 0 else "a finite number"
        refused.setdefault(
            units[row], f"row {row + 1}, column {layout.columns[j + 1]} {what}; it must be {rule}"
        )
    counts: dict[str, int] = {}
    for unit in units:
        counts[unit] = counts.get(unit, 0) + 1
    if limits.max_units is not None and len(counts) > limits.max_units:
        raise FleetTooLarge(f"the file has more than {limits.max_units} units; the limit is "
                            f"{limits.max_units} (RUL_MAX_UPLOAD_UNITS): split the fleet")  # fmt: skip
    chunk = _Chunk(units, cycles, values[:, 1:], list(range(1, len(units) + 1)), refused, counts)
    return _by_unit([_without(chunk, set(refused))], refused, counts, layout)


def _unit_ids(texts: list[str]) -> list[Any]:
    """Unit ids as sent: integers where every id of the file is one written plainly ("17", not
    "017"), else the text."""
    try:
        numbers = [int(t) for t in texts]
    except ValueError:
        return texts
    return numbers if all(str(n) == t for n, t in zip(numbers, texts, strict=True)) else texts


def _by_unit(
    chunks: list[_Chunk], refused: dict[str, str], counts: dict[str, int], layout: FleetLayout
) -> Fleet:
    """The chunks' rows -> {unit: (cycles (T,), readings (T, F))}, sorted by unit and cycle:
    one sort of the whole fleet, and each unit's arrays are views of two arrays. (Built unit by
    unit, 20 000 units made 120 000 small arrays, whose allocation held the interpreter lock
    long enough to stall the event loop: bench/README.md, "Abuse, second round".) A unit with
    the same cycle twice is refused."""
    kept = [_without(c, set(refused)) for c in chunks]
    texts = [u for c in kept for u in c.units]
    ids = dict(zip(counts, _unit_ids(list(counts)), strict=True))  # text -> the id answered
    ranked_texts = sorted({*texts}, key=lambda t: ids[t])
    rank = {t: i for i, t in enumerate(ranked_texts)}
    unit_rank = np.fromiter((rank[t] for t in texts), dtype=np.int64, count=len(texts))
    cycles = np.concatenate([c.cycles for c in kept]).astype(np.int64)
    values = np.concatenate([c.values for c in kept]).astype(np.float32)
    lines = np.asarray([n for c in kept for n in c.lines], dtype=np.int64)
    order = np.lexsort((cycles, unit_rank))
    ranked, cycles, readings, lines = unit_rank[order], cycles[order], values[order], lines[order]
    for i in np.flatnonzero((np.diff(ranked) == 0) & (np.diff(cycles) == 0)).tolist():
        text = ranked_texts[int(ranked[i])]
        refused.setdefault(text, f"{UNIT} has the same cycle number twice ({layout.cycle} {cycles[i]}, line "
                                 f"{lines[i + 1]}); each cycle must appear once")  # fmt: skip
    starts = np.r_[0, np.flatnonzero(np.diff(ranked)) + 1] if len(ranked) else np.zeros(0, np.int64)
    ends = np.r_[starts[1:], len(ranked)] if len(ranked) else starts
    units = {}
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        text = ranked_texts[int(ranked[start])]
        if text not in refused:
            units[ids[text]] = (cycles[start:end], readings[start:end])
    listed = [{"unit": ids[t], "cycles": counts[t], "reason": _reason(refused[t], ids[t])}
              for t in sorted(refused, key=lambda t: ids[t])]  # fmt: skip
    if not units:  # nothing to score: the file is refused, for its first unit's reason
        first = sorted(refused, key=lambda t: ids[t])[0]
        reason, unit = refused[first], ids[first]
        if UNIT in reason:
            reason = reason.replace(UNIT, f"unit {unit}")
        others = f" (unit {unit}; and {len(refused) - 1} other unit(s) refused)" if len(refused) > 1 else ""
        raise FleetFileError(reason + others)
    return Fleet(units, listed)


UNIT = "\0unit\0"  # where a refusal's reason names its unit, once the unit's id is known


def _reason(reason: str, unit: Any) -> str:
    """A refused unit's reason as the answer words it: "unit 7: line 12, column s_3 is empty"."""
    return reason.replace(UNIT, f"unit {unit}") if UNIT in reason else f"unit {unit}: {reason}"
