"""Answers in a maintenance planner's terms, read off the graph's RUL quantiles.

The graph gives each window's RUL at fixed quantile levels (`rul_quantiles`, levels in the
model card's `distribution`; +inf where the distribution is open above the RUL cap). From them:

- `failure_probabilities`: P(true RUL <= h) for each horizon h, the distribution function
  interpolated linearly between the quantiles, from P = 0 at RUL 0. Where the quantiles are
  open above the cap, the function rises to the first open level at the cap: an upper bound,
  the safe side for a planner (a horizon above the cap is refused: the model cannot tell
  what lies beyond it). Above the highest quantile it stays at the highest level.
- `rul_at_risk`: the RUL the engine has left with probability at least 1 - risk, the quantile
  of the largest level <= risk (conservative: never a level above the risk asked), at most the
  cap (an open quantile: "at least the cap"), 0 below the lowest level.
"""

from dataclasses import dataclass

import numpy as np

DEFAULT_HORIZONS = (30,)  # cycles: the health head's critical threshold
DEFAULT_RISK = 0.05
MAX_HORIZONS = 16
MAX_RISK = 0.5


@dataclass(frozen=True)
class Planning:
    """What a caller asks: horizons in cycles, the risk it accepts, and whether it wants to
    know why (the drivers)."""

    horizons: tuple[int, ...] = DEFAULT_HORIZONS
    risk: float = DEFAULT_RISK
    explain: bool = False  # the drivers of each answer too (service/core/drivers.py)


DEFAULT_PLANNING = Planning()


class PlanningError(ValueError):
    """Horizons or a risk a model cannot answer; the message starts with the field's name."""


def asked(
    horizons: list[int] | None, risk: float | None, defaults: Planning, cap: float, explain: bool = False
) -> Planning:
    """The planning a request asks, its missing parts from `defaults` (the settings'), checked
    against a model's cap; PlanningError names the field and the problem."""
    planning = Planning(
        tuple(defaults.horizons if horizons is None else horizons),
        defaults.risk if risk is None else risk,
        explain,
    )
    problem = planning_problem(planning.horizons, planning.risk, cap)
    if problem:
        raise PlanningError(f"{problem[0]}: {problem[1]}")
    return planning


def planning_problem(
    horizons: list[int] | tuple[int, ...], risk: float, cap: float
) -> tuple[str, str] | None:
    """(field, problem) for horizons or a risk a model cannot answer, else None."""
    if len(horizons) > MAX_HORIZONS:
        return "horizons", f"{len(horizons)} horizons; at most {MAX_HORIZONS}"
    for i, h in enumerate(horizons):
        if isinstance(h, bool) or not isinstance(h, int) or h < 1:
            return "horizons", f"horizons[{i}] = {h!r}; a horizon is a whole number of cycles >= 1"
        if h > cap:
            return "horizons", (f"horizons[{i}] = {h} is above the model's RUL cap of {cap:g} cycles: it "
                                "cannot tell an engine failing then from one lasting longer")  # fmt: skip
    if len(set(horizons)) != len(horizons):
        repeated = sorted({h for h in horizons if list(horizons).count(h) > 1})
        return "horizons", f"horizons repeat {repeated}; give each once"
    if isinstance(risk, bool) or not isinstance(risk, int | float) or not 0 < risk <= MAX_RISK:
        return "risk", f"risk = {risk!r}; it must be a probability in (0, {MAX_RISK}]"
    return None


def failure_probabilities(
    quantiles: np.ndarray, levels: list[float] | tuple[float, ...], horizons: tuple[int, ...], cap: float
) -> np.ndarray:
    """(N, Q) quantiles -> (N, H) P(RUL <= h), as the module docstring says."""
    n = len(quantiles)
    # the distribution function's knots: (0, 0), then (quantile, level), an open one at the cap
    q = np.asarray(quantiles, dtype=np.float64)
    x = np.concatenate([np.zeros((n, 1)), np.minimum(q, cap)], axis=1)
    is_open = np.concatenate([np.zeros((n, 1), bool), ~np.isfinite(q)], axis=1)
    p = np.concatenate([[0.0], np.asarray(levels, dtype=np.float64)])
    out = np.empty((n, len(horizons)))
    rows, last = np.arange(n), x.shape[1] - 1
    for j, h in enumerate(horizons):
        k = ((x <= h) & ~is_open).sum(axis=1)  # closed knots at or below h (>= 1: the first is 0)
        lo, hi = k - 1, np.minimum(k, last)
        gap = x[rows, hi] - x[rows, lo]
        share = np.divide(h - x[rows, lo], gap, out=np.ones(n), where=gap > 0)
        out[:, j] = np.where(k <= last, p[lo] + (p[hi] - p[lo]) * share, p[-1])
    return out


def rul_at_risk(
    quantiles: np.ndarray, levels: list[float] | tuple[float, ...], risk: float, cap: float
) -> np.ndarray:
    """(N, Q) quantiles -> (N,) the conservative lower quantile at `risk`, in [0, cap]."""
    below = np.flatnonzero(np.asarray(levels) <= risk + 1e-12)
    if not len(below):
        return np.zeros(len(quantiles))
    return np.minimum(quantiles[:, below[-1]].astype(np.float64), cap)
