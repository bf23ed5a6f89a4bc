"""The shipped models' recipes, in one place: what `rul-train --recipe NAME` trains and what
the README, docs/training.md, RESULTS.md and (from exports made with `rul-export --recipe`)
the model card cite.

    rul-train --recipe fd001 --data-dir ../shared/data/cmapss

trains every network of fd001's ensemble, one after the other, into
`models/checkpoints/fd001/` (the shipped checkpoints' names), then prints the `rul-export`
command that builds the model from them. Each recipe was chosen on validation units only
(docs/results/rounds.md, "How the recipe was chosen"; docs/training.md, the rounds in a table).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    subset: str
    flags: tuple[str, ...]  # rul-train flags every member shares (TrainConfig / ModelConfig fields)
    members: dict[str, tuple[str, ...]]  # checkpoint stem -> that member's own flags
    why: str  # the round of RESULTS.md that fixed it

    def member_argv(self, member: str) -> list[str]:
        """rul-train's flags for one member (without --data-dir and --out)."""
        return ["--subset", self.subset, *self.flags, *self.members[member]]


# One member per fold of 5 disjoint unit folds (member k: seed k, holds out fold k), so the
# ensemble trains on every training unit and its interval is calibrated out of fold.
CV5 = {f"fold{k}": ("--folds", "5", "--fold", str(k), "--seed", str(k)) for k in range(5)}
# Three seeds on one 80/20 unit split (split seed 0).
SEEDS3 = {f"seed{s}": ("--seed", str(s)) for s in range(3)}
# One torch thread per network: a run is deterministic for a seed on a given machine and
# thread count (the shipped networks were trained so).
ONE_THREAD = ("--threads", "1")

RECIPES: dict[str, Recipe] = {
    "fd001": Recipe(
        "FD001",
        ("--window-length", "50", "--lstm-hidden", "128", *ONE_THREAD),
        CV5,
        "50-cycle windows (the window sweep), 128 LSTM units per direction (round 6)",
    ),
    "fd002": Recipe(
        "FD002", ("--window-length", "40", *ONE_THREAD), SEEDS3, "40-cycle windows (the window sweep)"
    ),
    "fd003": Recipe(
        "FD003",
        ("--window-length", "50", "--extra-train-subsets", "FD001", *ONE_THREAD),
        CV5,
        "50-cycle windows, FD001's training units pooled into training (round 7)",
    ),
    "fd004": Recipe(
        "FD004", ("--window-length", "40", *ONE_THREAD), SEEDS3, "40-cycle windows (the window sweep)"
    ),
}
