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
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from training.constants import CRITICAL_MAX_RUL, DEGRADING_MAX_RUL, MIN_CYCLES, RUL_CAP

FORMATS = ("csv", "parquet", "cmapss")
# The 26 columns of a C-MAPSS text file (Saxena et al., 2008), the names the specs use
CMAPSS_COLUMNS = ("unit", "cycle", "setting_1", "setting_2", "setting_3") + tuple(
    f"s_{i}" for i in range(1, 22)
)
SPEC_KEYS = ("name", "unit", "cycle", "settings", "sensors", "operating_conditions", "train", "test",
             "test_rul", "rul_cap", "health", "format")  # fmt: skip
REQUIRED_KEYS = ("unit", "cycle", "settings", "sensors", "operating_conditions", "train")
CMAPSS_SPECS = Path(__file__).resolve().parent / "datasets" / "cmapss"  # packaged with training/
DEFAULT_DATA_DIR = "data/cmapss"

UnitId = int | str


class DatasetError(ValueError):
    """A problem with a data set's spec or files; the message names where and what to do."""


class DatasetFileNotFound(DatasetError, FileNotFoundError):
    """A file the spec names is not there."""


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    unit: str
    cycle: str
    settings: tuple[str, ...]
    sensors: tuple[str, ...]
    operating_conditions: int
    train: tuple[Path, ...]
    test: tuple[Path, ...] = ()
    test_rul: Path | None = None
    rul_cap: float = RUL_CAP
    critical: int = CRITICAL_MAX_RUL
    degrading: int = DEGRADING_MAX_RUL
    format: str = "csv"
    source: str = ""  # the TOML file it was read from
    # the files as the spec names them (train, test, test_rul), for the checkpoint and the card
    written: dict[str, Any] = field(default_factory=dict)

    @property
    def features(self) -> tuple[str, ...]:
        """The model's input features: settings then sensors."""
        return self.settings + self.sensors

    def to_dict(self) -> dict[str, Any]:
        """What a checkpoint and a model card carry (files as given, relative to `source`)."""
        return {
            "name": self.name, "source": self.source, "unit": self.unit, "cycle": self.cycle,
            "settings": list(self.settings), "sensors": list(self.sensors),
            "operating_conditions": self.operating_conditions, "format": self.format,
            "train": self.written.get("train", [p.name for p in self.train]),
            "test": self.written.get("test", [p.name for p in self.test]),
            "test_rul": self.written.get("test_rul"), "rul_cap": self.rul_cap,
            "health": {"critical": self.critical, "degrading": self.degrading},
        }  # fmt: skip


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


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """`--data-dir` if given, else env CMAPSS_DIR, else `data/cmapss`."""
    return Path(data_dir or os.environ.get("CMAPSS_DIR") or DEFAULT_DATA_DIR)


def cmapss_spec_path(subset: str) -> Path:
    """The repository's spec of a C-MAPSS subset ("FD001" -> training/datasets/cmapss/fd001.toml)."""
    path = CMAPSS_SPECS / f"{subset.lower()}.toml"
    if not path.exists():
        known = ", ".join(sorted(p.stem.upper() for p in CMAPSS_SPECS.glob("*.toml")))
        raise DatasetError(f"unknown subset {subset!r}; expected one of {known}")
    return path


# ---------------------------------------------------------------- the spec


def _names(raw: Any, key: str, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(n, str) and n for n in raw):
        raise DatasetError(f'{where}: {key} must be a list of column names, e.g. {key} = ["a", "b"]')
    return tuple(raw)


def _find_file(name: str, base: Path, fmt: str, data_dir: str | os.PathLike[str] | None, where: str) -> Path:
    """A file named in the spec: relative to the TOML file; a C-MAPSS file also in the data
    directory (--data-dir / CMAPSS_DIR), plain or gzipped."""
    candidates = [base / name]
    if fmt == "cmapss":
        root = resolve_data_dir(data_dir)
        candidates += [root / name, root / f"{name}.gz"]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    if fmt == "cmapss":
        raise DatasetFileNotFound(
            f"{where}: {name}(.gz) not found in {resolve_data_dir(data_dir)} (nor beside the spec). Download "
            "the public NASA C-MAPSS data set ('Turbofan Engine Degradation Simulation', NASA Prognostics "
            "Center of Excellence data repository) and put its files (optionally gzipped) there, or pass "
            "--data-dir / set CMAPSS_DIR."
        )
    tried = ", ".join(str(c) for c in candidates)
    raise DatasetFileNotFound(
        f"{where}: file {name!r} not found (tried {tried}); paths are relative to the spec"
    )


def load_spec(path: str | os.PathLike[str], data_dir: str | os.PathLike[str] | None = None) -> DatasetSpec:
    """Read and check a data set's TOML file; its files must exist (not read yet)."""
    path = Path(path)
    where = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"{where}: no such data set file") from None
    except tomllib.TOMLDecodeError as exc:
        raise DatasetError(f"{where} is not valid TOML: {exc}") from None
    unknown = [k for k in raw if k not in SPEC_KEYS]
    if unknown:
        raise DatasetError(
            f"{where}: unknown key {unknown[0]!r}; the keys allowed are {', '.join(SPEC_KEYS)}"
        )
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        raise DatasetError(f"{where}: {missing[0]!r} is missing; a data set names {', '.join(REQUIRED_KEYS)}")
    fmt = raw.get("format", "csv")
    if fmt not in FORMATS:
        raise DatasetError(f"{where}: format {fmt!r} is not one of {', '.join(FORMATS)}")
    for key in ("unit", "cycle"):
        if not isinstance(raw[key], str) or not raw[key]:
            raise DatasetError(f'{where}: {key} must be a column name, e.g. {key} = "{key}"')
    settings, sensors = _names(raw["settings"], "settings", where), _names(raw["sensors"], "sensors", where)
    if len(sensors) < 2:
        raise DatasetError(f"{where}: name two or more sensors (got {len(sensors)})")
    every = [raw["unit"], raw["cycle"], *settings, *sensors]
    twice = sorted({n for n in every if every.count(n) > 1})
    if twice:
        raise DatasetError(f"{where}: column {twice[0]!r} is named more than once; each column has one role")
    if fmt == "cmapss":
        unknown_cols = [n for n in every if n not in CMAPSS_COLUMNS]
        if unknown_cols:
            raise DatasetError(f"{where}: format cmapss has no column {unknown_cols[0]!r}; its columns are "
                               f"{', '.join(CMAPSS_COLUMNS)}")  # fmt: skip
    conditions = raw["operating_conditions"]
    if not isinstance(conditions, int) or isinstance(conditions, bool) or not 1 <= conditions <= 50:
        raise DatasetError(
            f"{where}: operating_conditions must be a whole number from 1 to 50 (got {conditions!r})"
        )
    files = {key: raw.get(key, []) for key in ("train", "test")}
    for key, value in files.items():
        files[key] = [value] if isinstance(value, str) else value
        if not isinstance(files[key], list) or not all(isinstance(v, str) for v in files[key]):
            raise DatasetError(f"{where}: {key} must be a file name or a list of them")
    if not files["train"]:
        raise DatasetError(f"{where}: train names no file; name the run-to-failure histories")
    if bool(files["test"]) != ("test_rul" in raw):
        raise DatasetError(f"{where}: test and test_rul go together: the test histories and their true RUL")
    health = raw.get("health", {})
    if not isinstance(health, dict) or any(k not in ("critical", "degrading") for k in health):
        raise DatasetError(f"{where}: health = {{ critical = 30, degrading = 80 }} (cycles)")
    critical, degrading = health.get("critical", CRITICAL_MAX_RUL), health.get("degrading", DEGRADING_MAX_RUL)
    rul_cap = raw.get("rul_cap", RUL_CAP)
    if not (isinstance(critical, int) and isinstance(degrading, int) and 0 < critical < degrading):
        raise DatasetError(f"{where}: health thresholds must be whole numbers with 0 < critical < degrading "
                           f"(got critical {critical!r}, degrading {degrading!r})")  # fmt: skip
    if not isinstance(rul_cap, int | float) or not degrading < rul_cap:
        raise DatasetError(f"{where}: rul_cap must be a number above the degrading threshold {degrading} "
                           f"(got {rul_cap!r})")  # fmt: skip
    base = path.parent

    def found(name: str) -> Path:
        return _find_file(name, base, fmt, data_dir, where)

    return DatasetSpec(
        name=str(raw.get("name", path.stem)), unit=raw["unit"], cycle=raw["cycle"], settings=settings,
        sensors=sensors, operating_conditions=conditions, train=tuple(found(n) for n in files["train"]),
        test=tuple(found(n) for n in files["test"]),
        test_rul=found(raw["test_rul"]) if "test_rul" in raw else None, rul_cap=float(rul_cap),
        critical=critical, degrading=degrading, format=fmt, source=str(path),
        written={"train": files["train"], "test": files["test"], "test_rul": raw.get("test_rul")},
    )  # fmt: skip


# ---------------------------------------------------------------- the files


@dataclass
class Table:
    """One file's rows: unit ids, cycles, the spec's features and where each row came from."""

    units: list[UnitId]
    cycles: np.ndarray  # (N,) int64
    values: np.ndarray  # (N, F) float64, settings then sensors
    lines: list[int]  # (N,) the line of each row in its file (Parquet: its row, 1-based)
    path: Path


def _number(text: str, decimal_comma: bool) -> float:
    text = text.strip()
    if decimal_comma:
        text = text.replace(",", ".")
    return float(text)


def _delimiter(header: str) -> str:
    """The separator of a CSV from its header line: the most frequent of , ; and tab."""
    return max((",", ";", "\t"), key=header.count)


def _ids(raw: list[str]) -> list[UnitId]:
    """A unit column: integers when every value is one, else the text as given."""
    try:
        return [int(v) for v in raw]
    except ValueError:
        return [v.strip() for v in raw]


def _read_csv(path: Path, spec: DatasetSpec, columns: tuple[str, ...]) -> Table:
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    text = data.decode("utf-8-sig")  # a byte-order mark, as spreadsheets write it, is dropped
    first_line = text.split("\n", 1)[0]
    delimiter = _delimiter(first_line)
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
        parsed = []
        for name, value in zip(columns[2:], values[2:], strict=True):
            try:
                parsed.append(_number(value, decimal_comma))
            except ValueError:
                raise DatasetError(
                    f"{path} line {line}, column {name!r}: {value[:40]!r} is not a number"
                ) from None
        rows.append(parsed)
        lines.append(line)
    values_array = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(columns) - 2)
    return Table(_ids(units), np.asarray(cycles, np.int64), values_array, lines, path)


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
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    text = data.decode("utf-8-sig")
    delimiter = _delimiter(text.split("\n", 1)[0])
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [h.strip() for h in reader.fieldnames or []]
    reader.fieldnames = header
    if spec.unit not in header or "rul" not in header:
        raise DatasetError(f"{path}: needs the columns {spec.unit!r} and 'rul'; it has {', '.join(header)}")
    truth: dict[UnitId, float] = {}
    rows = list(reader)
    ids = _ids([r[spec.unit] for r in rows])
    for unit, row in zip(ids, rows, strict=True):
        try:
            truth[unit] = _number(row["rul"], delimiter != ",")
        except ValueError:
            raise DatasetError(f"{path}: unit {unit!r} rul {row['rul']!r} is not a number") from None
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


MIN_SCALE = 1e-4  # a setting constant in the data is left as is, not blown up


def kmeans(points: np.ndarray, k: int, iterations: int = 50) -> np.ndarray:
    """Deterministic k-means (farthest-point start, Lloyd updates) -> (k, D) centroids."""
    centroids = [points.mean(axis=0)] if k == 1 else [points[0]]
    while len(centroids) < k:
        dist = np.min([((points - c) ** 2).sum(axis=1) for c in centroids], axis=0)
        centroids.append(points[int(np.argmax(dist))])
    c = np.array(centroids)
    for _ in range(iterations):
        assign = np.argmin(((points[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
        c = np.array([points[assign == j].mean(axis=0) for j in range(k)])
    return c


def count_conditions(settings: np.ndarray, most: int = 12) -> int:
    """How many operating conditions the settings (N, S) form: the largest k for which k-means
    gives k groups with clear gaps between them (every row nearer its centroid than a quarter
    of the distance between the two closest centroids: a setting that drifts evenly is one
    condition, not several), else 1. C-MAPSS: 1, 6, 1, 6 for FD001-FD004, 6 for the four together."""
    if settings.shape[1] == 0 or len(settings) < 2:
        return 1
    points = settings / np.maximum(settings.std(axis=0), MIN_SCALE)
    points = points[:: max(1, len(points) // 4_000)]  # a sample bounds the time; conditions recur
    found = 1
    for k in range(2, min(most, len(points)) + 1):
        centroids = kmeans(points, k)
        distance = np.sqrt(((points[:, None, :] - centroids[None]) ** 2).sum(-1))  # (N, k)
        radius = distance.min(axis=1).max()
        between = np.sqrt(((centroids[:, None] - centroids[None]) ** 2).sum(-1))[np.triu_indices(k, 1)].min()
        if radius < between / 4:
            found = k
    return found


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
