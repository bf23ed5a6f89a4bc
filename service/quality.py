"""How far to trust each answer: the graph's input-quality outputs (`quality_flags`, a bit set
per cycle and column, and `ood_score`) turned into the `quality` of a prediction, with one
sentence per flagged column that gives the values involved.

The graph decides (training/quality.py: what is flagged, what is masked); this module only
explains, with the statistics in the model card, and applies the card's status rule:
out_of_distribution if ood_score > 1 or more than max_masked sensor columns are flagged;
degraded if any sensor column is flagged (it was masked); ok otherwise.
"""

from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from service.model_card import QualityChecks

Status = Literal["ok", "degraded", "out_of_distribution"]
OK: Status = "ok"
DEGRADED: Status = "degraded"
OUT_OF_DISTRIBUTION: Status = "out_of_distribution"
# A column's checks in the order they are named: the first that fired is its `check`.
CHECK_ORDER = ("out_of_range", "spike", "stuck", "unknown_condition")


class QualityFlag(BaseModel):
    column: str = Field(description="the input column, e.g. s_4 or setting_1")
    check: str = Field(description="out_of_range | spike | stuck | unknown_condition (the first that fired)")
    problem: str = Field(description="what is wrong, with the values involved")
    cycles: list[int] = Field(description="flagged cycles: positions in the readings sent (0 = first); "
                              "in scoring, the file's cycle numbers")  # fmt: skip


class Quality(BaseModel):
    """How far to trust one answer (the API's `quality`; the same object on every path)."""

    status: Status = Field(
        description="ok; degraded: a sensor the model reads was flagged and masked (replaced by its "
        "estimate from the others); out_of_distribution: the window is not like the training data "
        "(the RUL is still returned, and should not be trusted)"
    )
    flags: list[QualityFlag] = Field(default_factory=list)
    ood_score: float = Field(
        default=0.0, description="out-of-distribution score; above 1: not like the training data"
    )

    def why_out_of_distribution(self) -> str:
        """One sentence for a refusal: the score and the first flags' problems."""
        why = "; ".join(f"{f.column} {f.problem}" for f in self.flags[:3]) or "unlike the training data"
        return f"out of distribution (ood_score {self.ood_score:g}): {why}"


def _fmt(value: float) -> str:
    return f"{value:.6g}"


class QualityExplainer:
    """One model's checks, as its card states them."""

    def __init__(self, checks: QualityChecks, input_features: list[str]):
        self.checks = checks
        self.features = input_features
        self.n_settings = len(checks.settings_scale)
        self.scaled_centroids = np.asarray(checks.centroids)  # (K, 3)
        self.centroids = self.scaled_centroids * np.asarray(checks.settings_scale)  # raw units
        self.center, self.scale = np.asarray(checks.center), np.asarray(checks.scale)  # (K, C)
        self.checked = {index: c for c, index in enumerate(checks.column_index)}  # raw column -> c

    def _condition(self, row: np.ndarray) -> int:
        scaled = row[: self.n_settings] / np.asarray(self.checks.settings_scale)
        return int(np.argmin(((scaled - self.scaled_centroids) ** 2).sum(-1)))

    def _problem(self, check: str, window: np.ndarray, rows: np.ndarray, column: int, real: int) -> str:
        """The sentence for one check of one column; `rows` are the flagged rows of `window`."""
        values = window[rows, column]
        if check == "unknown_condition":
            known = ", ".join(_fmt(v) for v in sorted(set(np.round(self.centroids[:, column], 4))))
            return (f"reads {_fmt(values.min())}" + (f" to {_fmt(values.max())}" if np.ptp(values) else "")
                    + f" in {len(rows)} of {real} cycles, far from every training operating condition "
                    f"(training values of {self.features[column]}: {known})")  # fmt: skip
        c, k = self.checked[column], self._condition(window[rows[0]])
        center, scale = self.center[k, c], self.scale[k, c]
        if check == "out_of_range":
            low, high = center - self.checks.range_z[c] * scale, center + self.checks.range_z[c] * scale
            seen = _fmt(values[0]) if not np.ptp(values) else f"{_fmt(values.min())} to {_fmt(values.max())}"
            count = f"all {real}" if len(rows) == real else f"{len(rows)} of {real}"
            return (
                f"reads {seen} in {count} cycles; training range for this condition {_fmt(low)}–{_fmt(high)}"
            )
        if check == "spike":
            first = int(rows[0])
            allowed = self.checks.jump_z[c] * scale
            more = f" ({len(rows)} such jumps)" if len(rows) > 1 else ""
            return (f"jumps from {_fmt(window[first - 1, column])} to {_fmt(window[first, column])} between "
                    f"consecutive cycles{more}; training jumps at most {_fmt(allowed)} "
                    "in this condition")  # fmt: skip
        return (f"reads {_fmt(values[0])} in {len(rows)} consecutive cycles; in training it never repeats "
                f"the same value {self.checks.stuck_run[c]} times in a row")  # fmt: skip

    def assess(
        self, window: np.ndarray, flags: np.ndarray, ood_score: float, positions: np.ndarray
    ) -> Quality:
        """window (W, 24) as the graph read it, flags (W, 24) int, positions (W,): the label of
        each row in the caller's terms, -1 for the front padding (never reported)."""
        real_rows = positions >= 0
        real = int(real_rows.sum())
        result: list[QualityFlag] = []
        sensors_flagged = 0
        for column in np.flatnonzero((flags != 0).any(axis=0)):
            column_flags = np.where(real_rows, flags[:, column], 0)
            if column >= self.n_settings and column_flags.any():
                sensors_flagged += 1
            fired = [c for c in CHECK_ORDER if (column_flags & self.checks.bits.get(c, 0)).any()]
            if not fired:
                continue
            problems = []
            for check in fired:
                rows = np.flatnonzero(column_flags & self.checks.bits[check])
                problems.append(self._problem(check, window, rows, int(column), real))
            rows = np.flatnonzero(column_flags)
            cycles = [int(p) for p in positions[rows]]
            problem = "; ".join(problems)
            result.append(
                QualityFlag(column=self.features[column], check=fired[0], problem=problem, cycles=cycles)
            )
        score = float(ood_score)
        if score > 1.0 or sensors_flagged > self.checks.max_masked:
            status = OUT_OF_DISTRIBUTION
        else:
            status = DEGRADED if sensors_flagged else OK
        return Quality(status=status, flags=result, ood_score=round(score, 4))

    def assess_batch(
        self, windows: np.ndarray, flags: np.ndarray, ood_scores: np.ndarray, positions: np.ndarray
    ) -> list[Quality]:
        """`assess` for a batch: windows (N, W, 24), flags (N, W, 24), ood_scores (N,), positions
        (N, W). A window with no flag at all (the common case) is settled by its score alone."""
        flagged = (flags != 0).any(axis=(1, 2)).tolist()
        scores = ood_scores.tolist()
        return [
            self.assess(windows[i], flags[i], scores[i], positions[i])
            if flagged[i]
            else Quality(status=OUT_OF_DISTRIBUTION if scores[i] > 1.0 else OK, ood_score=round(scores[i], 4))
            for i in range(len(scores))
        ]


def row_positions(window_length: int, n_cycles: int, first: int = 0) -> np.ndarray:
    """(W,) the label of each row of a window the predictor built from `n_cycles` readings:
    the last W of them (positions first + n - W ... first + n - 1), front padding -1."""
    positions = np.arange(window_length) + (n_cycles - window_length)
    return np.where(positions >= 0, positions + first, -1)
