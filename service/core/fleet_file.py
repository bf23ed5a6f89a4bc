"""Reading an uploaded fleet file into per-unit histories, a chunk of lines at a time.

Two formats, told apart by their first line:
- C-MAPSS text: 26 whitespace-separated numbers per line (unit, cycle, 3 settings, 21
  sensors), as in NASA's `train_FD00x.txt` / `test_FD00x.txt`;
- CSV with a header: `unit,cycle,setting_1,setting_2,setting_3,s_1,...,s_21` (any column
  order; extra columns are ignored).
Either may be gzipped (detected by its magic bytes, not its name). Values are parsed into
float32 arrays chunk by chunk, so memory stays near the size of the numbers themselves
(4 bytes per value) rather than of the text or of Python lists.
"""

import gzip
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from service.core.window_input import not_finite

FEATURES = ["setting_1", "setting_2", "setting_3", *(f"s_{i}" for i in range(1, 22))]
COLUMNS = ["unit", "cycle", *FEATURES]  # 26
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


def _parse_chunk(chunk: list[tuple[int, str]], sep: str | None, order: list[int]) -> np.ndarray:
    """[(line number, line)] -> (N, 26) float64 in COLUMNS order; errors name the line.

    numpy's C parser reads the chunk; only when it fails do we walk the lines in Python to
    say which one is wrong.
    """
    try:
        table = np.loadtxt(io.StringIO("".join(line for _, line in chunk)), delimiter=sep, ndmin=2)
        if sep is not None or table.shape[1] == len(COLUMNS):
            rows = table[:, order]
            return _check_finite(rows, chunk)
    except (ValueError, IndexError):
        pass
    rows = np.empty((len(chunk), len(COLUMNS)), dtype=np.float64)
    for i, (number, line) in enumerate(chunk):
        fields = line.split(sep)
        if len(fields) <= max(order) or (sep is None and len(fields) != len(COLUMNS)):
            raise FleetFileError(
                f"line {number} has {len(fields)} columns; expected {len(COLUMNS)}: "
                "unit, cycle, setting_1..3, s_1..s_21"
            )
        for k, j in enumerate(order):
            try:
                rows[i, k] = float(fields[j])
            except ValueError:
                text = fields[j].strip()
                what = "is empty" if not text else f"holds {text[:40]!r}, not a number"
                raise FleetFileError(f"line {number}, column {COLUMNS[k]} {what}") from None
    return _check_finite(rows, chunk)


def _check_finite(rows: np.ndarray, chunk: list[tuple[int, str]]) -> np.ndarray:
    bad = np.argwhere(~np.isfinite(rows))
    if len(bad):
        row, column = (int(v) for v in bad[0])
        value = not_finite(float(rows[row, column]))
        raise FleetFileError(f"line {chunk[row][0]}, column {COLUMNS[column]} is {value}; "
                             "every value must be a finite number")  # fmt: skip
    return rows


# Unit numbers fit an int32; cycle numbers are kept exactly in float32 up to 2**24.
LIMITS = {"unit": 2**31 - 1, "cycle": 2**24}


def _check_numbers(rows: np.ndarray, chunk: list[tuple[int, str]]) -> np.ndarray:
    """Unit and cycle numbers must be whole numbers from 0 to their limit; the error names
    the first line that breaks the rule."""
    for column, name in enumerate(("unit", "cycle")):
        values = rows[:, column]
        bad = np.flatnonzero((values != np.round(values)) | (values < 0) | (values > LIMITS[name]))
        if len(bad):
            line, value = chunk[bad[0]][0], values[bad[0]]
            raise FleetFileError(f"line {line}: the {name} number is {value:g}; it must be a whole number "
                                 f"from 0 to {LIMITS[name]}")  # fmt: skip
    return rows


def _csv_order(header: str) -> list[int]:
    names = [h.strip().strip('"').lower() for h in header.split(",")]
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise FleetFileError(f"the CSV header lacks {', '.join(missing)}; it needs unit, cycle, "
                             "setting_1..setting_3, s_1..s_21")  # fmt: skip
    return [names.index(c) for c in COLUMNS]


def _is_header(line: str) -> bool:
    return any(name in line.lower() for name in ("unit", "cycle", "setting"))


def read_fleet(
    raw: BinaryIO, chunk_lines: int = CHUNK_LINES, limits: UploadLimits | None = None
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{unit id: (cycle numbers (T,), readings (T, 24) float32)}, sorted by unit and cycle.
    Raises FleetFileError naming the line and problem, FleetTooLarge past a limit."""
    limits = limits or UploadLimits()
    numbered = ((n, line) for n, line in enumerate(_text_lines(raw, limits), start=1) if line.strip())
    first = next(numbered, None)
    if first is None:
        raise FleetFileError("the file is empty: upload C-MAPSS text or a CSV with a header")
    sep: str | None = None
    order = list(range(len(COLUMNS)))
    pending: list[tuple[int, str]] = [first]
    if "," in first[1]:
        if not _is_header(first[1]):
            raise FleetFileError("the CSV file has no header; its first line must name the columns: "
                                 "unit,cycle,setting_1,setting_2,setting_3,s_1,...,s_21")  # fmt: skip
        sep, order, pending = ",", _csv_order(first[1]), []

    ids: list[np.ndarray] = []  # per chunk (n, 2) int64: unit, cycle
    values: list[np.ndarray] = []  # per chunk (n, 24) float32: the readings
    seen_units: set[int] = set()
    rows_read = 0

    def flush(chunk: list[tuple[int, str]]) -> None:
        nonlocal rows_read
        rows_read += len(chunk)
        if limits.max_rows is not None and rows_read > limits.max_rows:
            raise FleetTooLarge(f"the file has more than {limits.max_rows} rows of readings; the limit is "
                                f"{limits.max_rows} (RUL_MAX_UPLOAD_ROWS): split the fleet")  # fmt: skip
        rows = _check_numbers(_parse_chunk(chunk, sep, order), chunk)
        ids.append(rows[:, :2].astype(np.int64))
        values.append(rows[:, 2:].astype(np.float32))
        seen_units.update(np.unique(rows[:, 0]).astype(int).tolist())
        if limits.max_units is not None and len(seen_units) > limits.max_units:
            raise FleetTooLarge(f"the file has more than {limits.max_units} units; the limit is "
                                f"{limits.max_units} (RUL_MAX_UPLOAD_UNITS): split the fleet")  # fmt: skip

    for item in numbered:
        pending.append(item)
        if len(pending) >= chunk_lines:
            flush(pending)
            pending = []
    if pending:
        flush(pending)
    if not ids:
        raise FleetFileError("the file holds a header but no readings")
    return _by_unit(np.concatenate(ids), np.concatenate(values))


def _by_unit(ids: np.ndarray, values: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """ids (N, 2) unit and cycle, values (N, 24) readings -> {unit: (cycles (T,), readings (T, 24))},
    sorted by unit and cycle: one sort of the whole fleet, and each unit's arrays are views of
    two arrays. (Built unit by unit, 20 000 units made 120 000 small arrays, whose allocation
    held the interpreter lock long enough to stall the event loop: bench/README.md, "Abuse,
    second round".)"""
    order = np.lexsort((ids[:, 1], ids[:, 0]))
    units, cycles = ids[order, 0], ids[order, 1]
    repeated = np.flatnonzero((np.diff(units) == 0) & (np.diff(cycles) == 0))
    if len(repeated):
        raise FleetFileError(f"unit {units[repeated[0]]} has the same cycle number twice; "
                             "each cycle must appear once")  # fmt: skip
    readings = values[order]
    starts = np.r_[0, np.flatnonzero(np.diff(units)) + 1]
    ends = np.r_[starts[1:], len(units)]
    fleet = {}
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        fleet[int(units[start])] = (cycles[start:end], readings[start:end])
    return fleet
