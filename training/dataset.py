"""A data set described by a TOML file, not hard-coded: which columns are the unit, the cycle,
the operating settings and the sensors, which files hold the run-to-failure (and test)
histories, the RUL cap and the health thresholds (docs/own-fleet.md has a worked example).

    name = "fleet-a"
    unit = "esn"                      # strings or integers
    cycle = "flight"                  # integers, increasing within a unit
    settings = ["altitude", "mach"]   # [] when there are none
    sensors = ["T24", "T30", "Nf"]    # two or more
    operating_conditions = 1
    train = ["train.csv"]             # paths relative to this file
    test = ["test.csv"]               # optional, with test_rul (columns <unit>, rul)
    test_rul = "test_rul.csv"
    rul_cap = 125                     # optional
    health = { critical = 30, degrading = 80 }   # optional
    format = "csv"                    # csv (header; .csv or .csv.gz) | parquet | cmapss

The model's input features are `settings` then `sensors`, in this order, under these names.
Columns the spec does not name are ignored. Every problem in the files is a `DatasetError`
naming the file, the line or unit, and the column, and what to do. C-MAPSS's four subsets are
such files (`training/datasets/cmapss/fd00N.toml`, format "cmapss": the original headerless text files,
found through `--data-dir` / `CMAPSS_DIR`).
"""

import csv
import gzip
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from service.core.csv_cells import parse_number, separator, unit_ids
from training.conditions import count_conditions
from training.constants import MIN_CYCLES
from training.dataset_spec import CMAPSS_COLUMNS, DatasetError, DatasetSpec, load_spec

UnitId = int | str


@dataclass
class Unit:
    """One engine's history: `readings` (cycles, F) = the spec's settings then sensors, oldest first."""

    unit_id: UnitId
    readings: np.ndarray  # (T, F) float32
    final_rul: float  # true RUL after the last cycle: 0 for training units (run to failure)
    cycles: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (T,) as in the file
    source: str = ""  # the file's stem, when the data set lists several (its units are split per file)


@dataclass
class Dataset:
    spec: DatasetSpec
    train: list[Unit]
    test: list[Unit]

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass
class Table:
    """One file's rows: unit ids, cycles, the spec's features and where each row came from."""

    units: list[UnitId]
    cycles: np.ndarray  # (N,) int64
    values: np.ndarray  # (N, F) float64, settings then sensors
    lines: list[int]  # (N,) the line of each row in its file (Parquet: its row, 1-based)
    path: Path


def _csv_text(path: Path) -> tuple[str, str]:
    """A CSV file's text (gzipped or not; a byte-order mark, as spreadsheets write it, dropped)
    and its separator."""
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    text = data.decode("utf-8-sig")
    return text, separator(text.split("\n", 1)[0])


def _read_csv(path: Path, spec: DatasetSpec, columns: tuple[str, ...]) -> Table:
    text, delimiter = _csv_text(path)
    decimal_comma = delimiter != ","  # "1,5" means 1.5 only where the comma is not the separator
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [h.strip() for h in next(reader, [])]
    missing = [c for c in columns if c not in header]
    if missing:
        raise DatasetError(f"{path}: column {missing[0]!r} (named in {spec.source}) is missing; the file's "
                           f"columns are {', '.join(header)[:300]} (separator {delimiter!r})")  # fmt: skip
    where = [header.index(c) for c in columns]
    units, cycles, rows, lines = [], [], [], []
    for record in reader:
        if not record or all(not v.strip() for v in record):
            continue  # blank lines, as editors leave them at the end
        line = reader.line_num
        if len(record) < len(header):
            raise DatasetError(f"{path} line {line}: {len(record)} fields; the header has {len(header)}")
        values = [record[i] for i in where]
        for name, value in zip(columns, values, strict=True):
            if not value.strip():
                raise DatasetError(f"{path} line {line}, column {name!r} is empty; every named column "
                                   "needs a value in every row: fill it, or drop the row")  # fmt: skip
        units.append(values[0])
        try:
            cycles.append(int(values[1]))
        except ValueError:
            raise DatasetError(
                f"{path} line {line}, column {columns[1]!r}: {values[1]!r} is not a whole number; "
                "cycles are integers that increase within a unit"
            ) from None
        parsed = [parse_number(value, decimal_comma) for value in values[2:]]
        bad = next((k for k, (_, problem) in enumerate(parsed) if problem), None)
        if bad is not None:
            raise DatasetError(f"{path} line {line}, column {columns[2 + bad]!r}: {values[2 + bad][:40]!r} "
                               "is not a number")  # fmt: skip
        rows.append([number for number, _ in parsed])
        lines.append(line)
    values_array = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(columns) - 2)
    return Table(
        unit_ids([u.strip() for u in units]), np.asarray(cycles, np.int64), values_array, lines, path
    )


def _read_parquet(path: Path, spec: DatasetSpec, columns: tuple[str, ...]) -> Table:
    import pyarrow.parquet as pq  # the training extra installs it; only Parquet files need it

    names = pq.read_schema(path).names
    missing = [c for c in columns if c not in names]
    if missing:
        raise DatasetError(f"{path}: column {missing[0]!r} (named in {spec.source}) is missing; the file's "
                           f"columns are {', '.join(names)[:300]}")  # fmt: skip
    table = pq.read_table(path, columns=list(columns))
    for name in columns:
        nulls = table.column(name).is_null().to_numpy(zero_copy_only=False)
        if nulls.any():
            row = int(np.argmax(nulls)) + 1
            raise DatasetError(f"{path} row {row}, column {name!r} is empty; every named column "
                               "needs a value in every row: fill it, or drop the row")  # fmt: skip
    units = [u if isinstance(u, int) else str(u) for u in table.column(columns[0]).to_pylist()]
    try:
        cycles = table.column(columns[1]).to_numpy().astype(np.int64, casting="safe")
        values = np.stack([table.column(n).to_numpy().astype(np.float64) for n in columns[2:]], axis=1)
    except (TypeError, ValueError) as exc:
        raise DatasetError(
            f"{path}: the cycle column must hold integers and the features numbers ({exc})"
        ) from None
    return Table(
        units, cycles, values.reshape(len(units), len(columns) - 2), list(range(1, len(units) + 1)), path
    )


def _read_cmapss(path: Path, spec: DatasetSpec, columns: tuple[str, ...]) -> Table:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        table = np.loadtxt(f, dtype=np.float64, ndmin=2)
    if table.shape[1] != len(CMAPSS_COLUMNS):
        raise DatasetError(f"{path} has {table.shape[1]} columns; a C-MAPSS file has {len(CMAPSS_COLUMNS)}: "
                           "unit, cycle, 3 settings, 21 sensors")  # fmt: skip
    where = [CMAPSS_COLUMNS.index(c) for c in columns]
    units = [int(u) for u in table[:, where[0]]]
    return Table(
        units, table[:, where[1]].astype(np.int64), table[:, where[2:]], list(range(1, len(units) + 1)), path
    )


READERS = {"csv": _read_csv, "parquet": _read_parquet, "cmapss": _read_cmapss}


def read_table(path: Path, spec: DatasetSpec) -> Table:
    """One file of the data set, its named columns only."""
    return READERS[spec.format](path, spec, (spec.unit, spec.cycle, *spec.features))


def units_of(table: Table, spec: DatasetSpec, prefix: str = "") -> list[Unit]:
    """A table's rows grouped by unit (sorted by id); each unit's cycles must increase, as one
    engine's do, and it must have MIN_CYCLES of them."""
    by_unit: dict[UnitId, list[int]] = {}
    for row, unit in enumerate(table.units):
        by_unit.setdefault(unit, []).append(row)
    units = []
    for unit in sorted(by_unit, key=lambda u: (isinstance(u, str), u)):
        rows = np.asarray(by_unit[unit])
        cycles = table.cycles[rows]
        steps = np.diff(cycles)
        if (steps <= 0).any():
            at = int(np.argmax(steps <= 0)) + 1
            what = "repeats" if steps[at - 1] == 0 else f"goes back to {cycles[at]}"
            raise DatasetError(
                f"{table.path} line {table.lines[rows[at]]}: unit {unit!r} cycle {what} after cycle "
                f"{cycles[at - 1]} ({spec.cycle!r}); a unit's cycles must increase, one engine's history "
                "in order. Sort the file by unit and cycle, and give two engines two ids"
            )  # fmt: skip
        if len(rows) < MIN_CYCLES:
            raise DatasetError(f"{table.path}: unit {unit!r} has {len(rows)} cycles; a unit needs at least "
                               f"{MIN_CYCLES} (drop it, or wait for more of its history)")  # fmt: skip
        unit_id: UnitId = f"{prefix}{unit}" if prefix else unit
        units.append(Unit(unit_id, table.values[rows].astype(np.float32), 0.0, cycles, prefix.rstrip("/")))
    return units


def _read_units(paths: tuple[Path, ...], spec: DatasetSpec) -> list[Unit]:
    """Units of one or several files; with several, each id is qualified by its file's stem
    ("train_FD002/17"), since two exports may number their engines alike."""
    units: list[Unit] = []
    for path in paths:
        stem = path.name.split(".")[0]
        units += units_of(read_table(path, spec), spec, f"{stem}/" if len(paths) > 1 else "")
    return units


def _true_rul(spec: DatasetSpec, test: list[Unit]) -> list[float]:
    """The true RUL after each test unit's last cycle, from test_rul: headerless values in unit
    order (format cmapss) or a CSV with columns <unit>, rul."""
    path = spec.test_rul
    assert path is not None
    if spec.format == "cmapss":
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as f:
            values = np.loadtxt(f, dtype=np.float64, ndmin=1)
        if len(values) != len(test):
            raise DatasetError(f"{path} has {len(values)} values but the test files have {len(test)} units")
        return [float(v) for v in values]
    text, delimiter = _csv_text(path)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [h.strip() for h in reader.fieldnames or []]
    reader.fieldnames = header
    if spec.unit not in header or "rul" not in header:
        raise DatasetError(f"{path}: needs the columns {spec.unit!r} and 'rul'; it has {', '.join(header)}")
    truth: dict[UnitId, float] = {}
    rows = list(reader)
    ids = unit_ids([r[spec.unit].strip() for r in rows])
    for unit, row in zip(ids, rows, strict=True):
        truth[unit], problem = parse_number(row["rul"], delimiter != ",")
        if problem:
            raise DatasetError(f"{path}: unit {unit!r} rul {row['rul']!r} is not a number")
    known = {u.unit_id for u in test}
    stranger = [u for u in truth if u not in known]
    if stranger:
        raise DatasetError(f"{path}: unit {stranger[0]!r} has a true RUL but no history in the test files; "
                           "drop its line or add its history")  # fmt: skip
    lacking = [u.unit_id for u in test if u.unit_id not in truth]
    if lacking:
        raise DatasetError(f"{path}: test unit {lacking[0]!r} has no true RUL ({len(lacking)} such units); "
                           "add a line for each, or drop them from the test files")  # fmt: skip
    return [truth[u.unit_id] for u in test]


def check_conditions(units: list[Unit], spec: DatasetSpec) -> None:
    """The settings of the training units must form the spec's number of operating conditions."""
    settings = np.concatenate([u.readings[:, : len(spec.settings)] for u in units]).astype(np.float64)
    found = count_conditions(settings)
    if found != spec.operating_conditions:
        names = ", ".join(spec.settings) or "no setting columns"
        raise DatasetError(
            f"{spec.source}: the training files' settings ({names}) form {found} operating condition(s), "
            f"not the {spec.operating_conditions} the spec names: set operating_conditions = {found}, "
            "or check which columns are settings"
        )


def read_dataset(spec: DatasetSpec) -> Dataset:
    """Every file of `spec`: training units (run to failure) and test units with their truth."""
    train = _read_units(spec.train, spec)
    check_conditions(train, spec)
    test = _read_units(spec.test, spec) if spec.test else []
    if test:
        for unit, rul in zip(test, _true_rul(spec, test), strict=True):
            unit.final_rul = rul
    return Dataset(spec, train, test)


def load_dataset(path: str | os.PathLike[str], data_dir: str | os.PathLike[str] | None = None) -> Dataset:
    """`read_dataset(load_spec(path, data_dir))`."""
    return read_dataset(load_spec(path, data_dir))
