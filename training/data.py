"""The C-MAPSS subsets, read through their data-set specs (datasets/cmapss/fd00N.toml and
training/dataset.py): one path for C-MAPSS and a user's own fleet.

A subset is three files: `train_FD00x` (run to failure), `test_FD00x` (cut before failure)
and `RUL_FD00x` (true RUL after each test unit's last cycle).
"""

import os
from dataclasses import dataclass

from training.constants import N_OPERATING_CONDITIONS, SUBSETS
from training.dataset import DatasetSpec, Unit, cmapss_spec_path, load_spec, read_dataset, resolve_data_dir

__all__ = ["Subset", "Unit", "extra_subset_names", "load_subset", "resolve_data_dir"]


@dataclass
class Subset:
    name: str  # FD001 ... FD004, or a data set's name
    train: list[Unit]
    test: list[Unit]
    spec: DatasetSpec | None = None


def load_subset(name: str, data_dir: str | os.PathLike[str] | None = None) -> Subset:
    """Read train, test and RUL files of one subset, e.g. `load_subset("FD001")`."""
    name = name.upper()
    if name not in SUBSETS:
        raise ValueError(f"unknown subset {name!r}; expected one of {', '.join(SUBSETS)}")
    dataset = read_dataset(load_spec(cmapss_spec_path(name), data_dir))
    return Subset(name, dataset.train, dataset.test, dataset.spec)


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
