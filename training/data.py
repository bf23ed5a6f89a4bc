"""Reading the NASA C-MAPSS files (`.txt` or `.txt.gz`) into per-unit arrays.

A subset is three files: `train_FD00x` (run to failure), `test_FD00x` (cut before failure)
and `RUL_FD00x` (true RUL after each test unit's last cycle).
"""

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.constants import FILE_COLUMNS, N_OPERATING_CONDITIONS, SUBSETS

DEFAULT_DATA_DIR = "data/cmapss"
DOWNLOAD_HINT = (
    "Download the public NASA C-MAPSS data set ('Turbofan Engine Degradation Simulation', "
    "NASA Prognostics Center of Excellence data repository) and put train_FD00x.txt, "
    "test_FD00x.txt and RUL_FD00x.txt (optionally gzipped) there, or pass --data-dir / set "
    "CMAPSS_DIR."
)


@dataclass
class Unit:
    """One engine's history: `readings` (cycles, 24) = 3 settings + 21 sensors, oldest first."""

    unit_id: int
    readings: np.ndarray  # (T, 24) float32
    final_rul: float  # true RUL after the last cycle: 0 for training units (run to failure)


@dataclass
class Subset:
    name: str  # FD001 ... FD004
    train: list[Unit]
    test: list[Unit]


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """`--data-dir` if given, else env CMAPSS_DIR, else `data/cmapss`."""
    return Path(data_dir or os.environ.get("CMAPSS_DIR") or DEFAULT_DATA_DIR)


def _open_text(data_dir: Path, stem: str) -> Path:
    for candidate in (data_dir / f"{stem}.txt", data_dir / f"{stem}.txt.gz"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{stem}.txt(.gz) not found in {data_dir}. {DOWNLOAD_HINT}")


def _load_table(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        table = np.loadtxt(f, dtype=np.float64, ndmin=2)
    if table.shape[1] != len(FILE_COLUMNS):
        raise ValueError(
            f"{path} has {table.shape[1]} columns; expected {len(FILE_COLUMNS)}: "
            "unit, cycle, 3 settings, 21 sensors"
        )
    return table


def split_units(table: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Rows (N, 26) -> [(unit id, readings (T, 24) sorted by cycle)] in unit order."""
    units = []
    for unit_id in np.unique(table[:, 0]).astype(int):
        rows = table[table[:, 0] == unit_id]
        rows = rows[np.argsort(rows[:, 1], kind="stable")]
        units.append((int(unit_id), rows[:, 2:].astype(np.float32)))
    return units


def load_subset(name: str, data_dir: str | os.PathLike[str] | None = None) -> Subset:
    """Read train, test and RUL files of one subset, e.g. `load_subset("FD001")`."""
    name = name.upper()
    if name not in SUBSETS:
        raise ValueError(f"unknown subset {name!r}; expected one of {', '.join(SUBSETS)}")
    root = resolve_data_dir(data_dir)
    train = [Unit(u, r, 0.0) for u, r in split_units(_load_table(_open_text(root, f"train_{name}")))]
    test_units = split_units(_load_table(_open_text(root, f"test_{name}")))
    rul_path = _open_text(root, f"RUL_{name}")
    opener = gzip.open if rul_path.suffix == ".gz" else open
    with opener(rul_path, "rt") as f:
        true_rul = np.loadtxt(f, dtype=np.float64, ndmin=1)
    if len(true_rul) != len(test_units):
        raise ValueError(f"{rul_path} has {len(true_rul)} values but test_{name} has {len(test_units)} units")
    test = [Unit(u, r, float(rul)) for (u, r), rul in zip(test_units, true_rul, strict=True)]
    return Subset(name, train, test)


def extra_subset_names(subset: str, extra: str) -> list[str]:
    """The subsets named in `--extra-train-subsets` ("FD001" or "FD001,FD003"), checked: each
    must be another subset with as many operating conditions as `subset` (FD001 with FD003,
    FD002 with FD004), since one preprocessing is fitted on the pooled units."""
    names = [name.strip().upper() for name in extra.split(",") if name.strip()]
    flag = "--extra-train-subsets"
    for name in names:
        if name not in N_OPERATING_CONDITIONS:
            raise ValueError(f"{flag}: unknown subset {name!r}; expected some of {', '.join(SUBSETS)}")
        if name == subset:
            raise ValueError(f"{flag}: {name} is the subset being trained; name other subsets")
        if N_OPERATING_CONDITIONS[name] != N_OPERATING_CONDITIONS[subset]:
            raise ValueError(
                f"{flag}: {name} has {N_OPERATING_CONDITIONS[name]} operating condition(s) and {subset} "
                f"{N_OPERATING_CONDITIONS[subset]}; only subsets with the same conditions can be pooled"
            )
    return names
