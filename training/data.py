"""The C-MAPSS subsets, read through their data-set specs (training/datasets/cmapss/fd00N.toml and
training/dataset.py): one path for C-MAPSS and a user's own fleet.

A subset is three files: `train_FD00x` (run to failure), `test_FD00x` (cut before failure)
and `RUL_FD00x` (true RUL after each test unit's last cycle).
"""

import os
from dataclasses import dataclass
from pathlib import Path

from training.constants import N_OPERATING_CONDITIONS, SUBSETS
from training.dataset import Unit, read_dataset
from training.dataset_spec import CMAPSS_SPECS, DatasetSpec, cmapss_spec_path, load_spec, resolve_data_dir

__all__ = ["Subset", "Unit", "extra_subset_names", "load_data", "load_subset", "resolve_data_dir"]


@dataclass
class Subset:
    name: str  # FD001 ... FD004, or a data set's name
    train: list[Unit]
    test: list[Unit]
    spec: DatasetSpec


def spec_path(dataset: str) -> Path:
    """A checkpoint's data set: its TOML file where it was, else one of the repository's specs
    of that name (a shipped checkpoint trained elsewhere on training/datasets/cmapss/...)."""
    path = Path(dataset)
    shipped = CMAPSS_SPECS / path.name
    return shipped if not path.exists() and shipped.exists() else path


def load_data(subset: str, dataset: str = "", data_dir: str | os.PathLike[str] | None = None) -> Subset:
    """What a model trains on: the data set of a TOML file when `dataset` names one, else the
    C-MAPSS subset (read through its spec in the repository)."""
    if not dataset:
        return load_subset(subset, data_dir)
    read = read_dataset(load_spec(spec_path(dataset), data_dir))
    return Subset(read.name, read.train, read.test, read.spec)


def load_subset(name: str, data_dir: str | os.PathLike[str] | None = None) -> Subset:
    """Read train, test and RUL files of one subset, e.g. `load_subset("FD001")`."""
    name = name.upper()
    if name not in SUBSETS:
        raise ValueError(f"unknown subset {name!r}; expected one of {', '.join(SUBSETS)}")
    dataset = read_dataset(load_spec(cmapss_spec_path(name), data_dir))
    return Subset(name, dataset.train, dataset.test, dataset.spec)


def check_training_units(subset: Subset, val_fraction: float, folds: int) -> None:
    """Enough training units for the validation split: with --val-fraction, at least one unit
    to validate on at that fraction and one to train on; with --folds, one unit a fold. Else a
    ValueError saying what to do."""
    n = len(subset.train)
    if folds:
        needed, split = max(2, folds), f"--folds {folds}"
    else:
        needed = next(
            k for k in range(2, 10_000) if round(k * val_fraction) >= 1 and k - round(k * val_fraction) >= 1
        )
        split = f"--val-fraction {val_fraction:g}"
    if n < needed:
        raise ValueError(f"{subset.spec.source}: {n} training unit(s); the validation split ({split}) "
                         f"needs at least {needed}, so that whole units are held out to choose the model: "
                         "add run-to-failure histories, or raise --val-fraction")  # fmt: skip


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
