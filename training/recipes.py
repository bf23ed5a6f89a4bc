"""The shipped models' recipes, in one place: what `rul-train --recipe NAME` trains and what
the README, docs/training.md, RESULTS.md and the model cards (`training.recipe`) cite. A recipe
is named overrides of training/config.py's defaults.

    rul-train --recipe fd001 --data-dir ../shared/data/cmapss

trains every network of fd001's ensemble, one after the other, into
`models/checkpoints/fd001/` (the shipped checkpoints' names), then prints the `rul-export`
command that builds the model from them. Each recipe was chosen on validation units only
(docs/results/rounds.md, "How the recipe was chosen"; docs/training.md, the rounds in a table).
"""

from dataclasses import dataclass
from typing import Any

Overrides = dict[str, Any]  # config field name -> value, over training/config.py's defaults


def as_flags(overrides: Overrides) -> list[str]:
    """Overrides as rul-train flags: {"window_length": 50} -> ["--window-length", "50"]."""
    flags = []
    for name, value in overrides.items():
        flag = name.replace("_", "-")
        if isinstance(value, bool):
            flags.append(f"--{flag}" if value else f"--no-{flag}")
        else:
            flags += [f"--{flag}", str(value)]
    return flags


# The shipped models' recipes. The overrides chosen per subset on validation RMSE of FD001 and
# FD002 runs (docs/results/rounds.md, "How the recipe was chosen"): longer windows won on both;
# one condition (FD001/FD003) takes 50 cycles, six conditions (FD002/FD004) 40. Everything else
# is the defaults. training/studies/experiments.py plans its rounds from these.
SUBSET_OVERRIDES: dict[str, Overrides] = {
    "FD001": {"window_length": 50},
    "FD002": {"window_length": 40},
    "FD003": {"window_length": 50},
    "FD004": {"window_length": 40},
}
# Those of the shipped fd001 (round 6) and fd003 (round 7) networks.
SHIPPED_OVERRIDES: dict[str, Overrides] = {
    "FD001": {**SUBSET_OVERRIDES["FD001"], "lstm_hidden": 128},
    "FD003": {**SUBSET_OVERRIDES["FD003"], "extra_train_subsets": "FD001"},
}
# One member per fold of 5 disjoint unit folds (member k: seed k, holds out fold k), so the
# ensemble trains on every training unit and its interval is calibrated out of fold.
CV5: dict[str, Overrides] = {f"fold{k}": {"folds": 5, "fold": k, "seed": k} for k in range(5)}
# Three seeds on one 80/20 unit split (split seed 0).
SEEDS3: dict[str, Overrides] = {f"seed{s}": {"seed": s} for s in range(3)}
# One torch thread per network: a run is deterministic for a seed on a given machine and
# thread count (the shipped networks were trained so).
ONE_THREAD: Overrides = {"threads": 1}


@dataclass(frozen=True)
class Recipe:
    subset: str
    overrides: Overrides  # what every member changes from the defaults
    members: dict[str, Overrides]  # checkpoint stem -> that member's own overrides
    why: str  # the round of RESULTS.md that fixed it

    def member_argv(self, member: str) -> list[str]:
        """rul-train's flags for one member (without --data-dir and --out)."""
        return ["--subset", self.subset, *as_flags(self.overrides), *as_flags(self.members[member])]


RECIPES: dict[str, Recipe] = {
    "fd001": Recipe("FD001", {**SHIPPED_OVERRIDES["FD001"], **ONE_THREAD}, CV5,
                    "50-cycle windows (the window sweep), 128 LSTM units per direction (round 6)"),
    "fd002": Recipe("FD002", {**SUBSET_OVERRIDES["FD002"], **ONE_THREAD}, SEEDS3,
                    "40-cycle windows (the window sweep)"),
    "fd003": Recipe("FD003", {**SHIPPED_OVERRIDES["FD003"], **ONE_THREAD}, CV5,
                    "50-cycle windows, FD001's training units pooled into training (round 7)"),
    "fd004": Recipe("FD004", {**SUBSET_OVERRIDES["FD004"], **ONE_THREAD}, SEEDS3,
                    "40-cycle windows (the window sweep)"),
}  # fmt: skip
