"""A data set's TOML file (its format: training/dataset.py): read, checked, its files found.
C-MAPSS's four subsets and the mixed fleet are such files (training/datasets/cmapss/), whose
original headerless text files are found through `--data-dir` / `CMAPSS_DIR`."""

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.constants import CRITICAL_MAX_RUL, DEGRADING_MAX_RUL, RUL_CAP

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
