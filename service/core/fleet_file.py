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

import gzip
import io
import zlib
from collections import Counter
from collections.abc import Iterator
from typing import Any, BinaryIO

import numpy as np

from service.core.csv_cells import unit_ids
from service.core.fleet_layout import FleetFileError, FleetLayout, FleetTooLarge, UploadLimits
from service.core.fleet_rows import PARQUET_MAGIC, CsvFormat, Rows, parquet_rows, text_rows

# Lines parsed per numpy call. numpy's parser holds the interpreter while it reads a chunk, so
# the chunk bounds how long the event loop can wait on a scoring thread: 20 simultaneous
# uploads of test_FD001 gave /health/live a worst probe of 44-86 ms with 10 000 lines and 27-49 ms
# with 2 000 (python -m bench.abuse --only "20 concurrent", three runs each), with the same
# reading speed (52 MB of FD004 rows in 1.5-1.6 s either way).
CHUNK_LINES = 2_000
# and at most this much text: a chunk is bounded in bytes too, so that a file of very wide
# lines (21-31 k extra columns each) is parsed in as short pieces as a narrow one (counted in
# lines only, such a chunk held the loop 0.6-2.3 s and took 1.1 GB). 2 000 C-MAPSS lines are
# ~260 kB: a narrow file's chunks are unchanged.
CHUNK_BYTES = 256 * 1024


class Fleet(dict[Any, tuple[np.ndarray, np.ndarray]]):
    """{unit id: (cycle numbers (T,), readings (T, F) float32)}, sorted by unit and cycle; and
    `refused`: the units left out, each {"unit", "cycles" (rows read), "reason"}."""

    def __init__(self, units: dict[Any, tuple[np.ndarray, np.ndarray]], refused: list[dict[str, Any]]):
        super().__init__(units)
        self.refused = refused


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
        rows = parquet_rows(raw, limits, layout)
        limits.check_units(len(rows.rows_per_unit))
        return _by_unit([rows], layout)
    numbered = ((n, line) for n, line in enumerate(_text_lines(raw, limits), start=1) if line.strip())
    first = next(numbered, None)
    if first is None:
        text = "C-MAPSS text or a CSV with a header" if layout.reads_cmapss_text else "a CSV with a header"
        raise FleetFileError(f"the file is empty: upload {text} ({layout.describe()})")
    form: CsvFormat | None = None
    pending: list[tuple[int, str]] = [first]
    if any(sep in first[1] for sep in ",;\t") or not layout.reads_cmapss_text:
        if not _is_header(first[1], layout):
            raise FleetFileError(f"the CSV file has no header; its first line must name the columns: "
                                 f"{layout.describe()}")  # fmt: skip
        form, pending = CsvFormat.of(first[1], layout), []
    parts: list[Rows] = []
    units: Counter[str] = Counter()  # rows read per unit

    def flush(lines: list[tuple[int, str]]) -> None:
        limits.check_rows(units.total() + len(lines))
        rows = form.rows(lines, layout) if form else text_rows(lines)
        parts.append(rows)
        units.update(rows.rows_per_unit)
        limits.check_units(len(units))

    size = 0
    for item in numbered:
        pending.append(item)
        size += len(item[1])
        if len(pending) >= chunk_lines or size >= CHUNK_BYTES:
            flush(pending)
            pending, size = [], 0
    if pending:
        flush(pending)
    if not parts:
        raise FleetFileError("the file holds a header but no readings")
    return _by_unit(parts, layout)


def _by_unit(parts: list[Rows], layout: FleetLayout) -> Fleet:
    """The rows -> {unit: (cycles (T,), readings (T, F))}, sorted by unit and cycle: one sort of
    the whole fleet, and each unit's arrays are views of two arrays. (Built unit by unit, 20 000
    units made 120 000 small arrays, whose allocation held the interpreter lock long enough to
    stall the event loop: bench/README.md, "Abuse, second round".) The rows of a refused unit
    are dropped here, once; a unit with the same cycle twice is refused too."""
    refused: dict[str, str] = {}  # each unit's first refusal, in file order
    counts: Counter[str] = Counter()
    for part in parts:
        counts.update(part.rows_per_unit)
        for unit, reason in part.refused.items():
            refused.setdefault(unit, reason)
    ids = dict(zip(counts, unit_ids(list(counts)), strict=True))  # text -> the id answered
    keep = [np.asarray([u not in refused for u in p.units], dtype=bool) for p in parts]
    texts = [u for p in parts for u in p.units if u not in refused]
    ranked_texts = sorted({*texts}, key=lambda t: ids[t])
    rank = {t: i for i, t in enumerate(ranked_texts)}
    unit_rank = np.fromiter((rank[t] for t in texts), dtype=np.int64, count=len(texts))
    cycles = np.concatenate([p.cycles[k] for p, k in zip(parts, keep, strict=True)]).astype(np.int64)
    values = np.concatenate([p.values[k] for p, k in zip(parts, keep, strict=True)]).astype(np.float32)
    lines = np.concatenate([np.asarray(p.lines, dtype=np.int64)[k] for p, k in zip(parts, keep, strict=True)])
    order = np.lexsort((cycles, unit_rank))
    ranked, cycles, readings, lines = unit_rank[order], cycles[order], values[order], lines[order]
    for i in np.flatnonzero((np.diff(ranked) == 0) & (np.diff(cycles) == 0)).tolist():
        where = f"{layout.cycle} {cycles[i]}, line {lines[i + 1]}"
        reason = f"{UNIT} has the same cycle number twice ({where}); each cycle must appear once"
        refused.setdefault(ranked_texts[int(ranked[i])], reason)
    starts = np.flatnonzero(np.r_[True, np.diff(ranked) != 0]) if len(ranked) else np.zeros(0, np.int64)
    ends = np.r_[starts[1:], len(ranked)][: len(starts)]
    fleet = {ids[ranked_texts[int(ranked[a])]]: (cycles[a:b], readings[a:b])
             for a, b in zip(starts.tolist(), ends.tolist(), strict=True)
             if ranked_texts[int(ranked[a])] not in refused}  # fmt: skip
    by_id = sorted(refused, key=lambda t: ids[t])
    if not fleet:  # nothing to score: the file is refused, for its first unit's reason
        reason, unit = refused[by_id[0]], ids[by_id[0]]
        others = f" (unit {unit}; and {len(refused) - 1} other unit(s) refused)" if len(refused) > 1 else ""
        raise FleetFileError(reason.replace(UNIT, f"unit {unit}") + others)
    listed = [{"unit": ids[t], "cycles": counts[t], "reason": _reason(refused[t], ids[t])} for t in by_id]
    return Fleet(fleet, listed)


UNIT = "\0unit\0"  # where a refusal's reason names its unit, once the unit's id is known


def _reason(reason: str, unit: Any) -> str:
    """A refused unit's reason as the answer words it: "unit 7: line 12, column s_3 is empty"."""
    return reason.replace(UNIT, f"unit {unit}") if UNIT in reason else f"unit {unit}: {reason}"
