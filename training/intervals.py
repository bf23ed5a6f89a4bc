"""Split-conformal RUL intervals, calibrated on validation units, computed inside the graph.

Errors grow with the RUL (an engine near failure is easy to place, a healthy one is not), so
one half-width for all would be too wide near failure and too narrow far from it. We use
Mondrian (group-conditional) split conformal: the predicted RUL picks a band (the health
thresholds: <= 30, 31-80, > 80) and each band has its own half-width, the
ceil((n+1)(1-alpha))-th smallest |residual| of the validation windows predicted in it
(Vovk et al., "Algorithmic Learning in a Random World", 2005; Lei et al., JASA 2018).

Intervals are promises about the engine, so they are calibrated against the true, uncapped
RUL, per band with two one-sided conformal widths at 1 - alpha/2 each (below and above the
prediction: the errors are far from symmetric once the truth is uncapped). A network trained
on RUL capped at 125 cannot tell an engine with 130 cycles left from one with 300: where the
calibrated upper bound would pass the cap (`open_above`), the interval is open above (upper
bound +inf, "at least rul_lower") and its lower bound is one-sided at 1 - alpha.

A short history (fewer real cycles than the window) predicts worse, so it gets widths of its
own: the same calibration repeated on the validation windows cut to each history band's
lengths (`HISTORY_BANDS`, `with_short_history`); the graph picks the band from how many of
the window's rows are real.
"""

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

# Bands of cycles used (first, last) below the full window; the full window is its own band.
HISTORY_BANDS = ((10, 19), (20, 34), (35, None))  # None: window_length - 1


def history_bands(window_length: int) -> list[tuple[int, int]]:
    """HISTORY_BANDS for a model's window: (first, last) cycles used, each below the window,
    empty bands left out (a 40-cycle window has 10-19, 20-34 and 35-39)."""
    bands = [(first, window_length - 1 if last is None else min(last, window_length - 1))
             for first, last in HISTORY_BANDS]  # fmt: skip
    return [(first, last) for first, last in bands if first <= last]


@dataclass
class IntervalBands:
    edges: list[float]  # band upper edges on the predicted RUL, e.g. [30, 80]: 3 bands
    half_widths: list[float]  # one per band: rul - lower of a closed interval, cycles
    nominal_coverage: float  # e.g. 0.9
    calibrated_on: str  # what the residuals were
    # Since the open upper bound: per band upper - rul, and rul - lower of an open interval;
    # an upper bound above open_above (the cap) is +inf. None: symmetric, never open (older).
    upper_widths: list[float] | None = None
    open_lower_widths: list[float] | None = None
    open_above: float | None = None
    # Since short-history intervals: per band of cycles used below the full window, widths
    # calibrated as above on windows cut to those lengths: {"cycles": [first, last],
    # "half_widths", "upper_widths", "open_lower_widths"}. None: one set for every history.
    short_history: list[dict] | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def for_history(self, cycles_used: int) -> "IntervalBands":
        """The widths used for a window with `cycles_used` real cycles, as bands of their own."""
        for band in self.short_history or []:
            if cycles_used <= band["cycles"][1]:
                return IntervalBands(
                    self.edges,
                    band["half_widths"],
                    self.nominal_coverage,
                    self.calibrated_on,
                    band["upper_widths"],
                    band["open_lower_widths"],
                    self.open_above,
                )
        return IntervalBands(
            self.edges,
            self.half_widths,
            self.nominal_coverage,
            self.calibrated_on,
            self.upper_widths,
            self.open_lower_widths,
            self.open_above,
        )


def band_index(rul: np.ndarray, edges: list[float]) -> np.ndarray:
    """(N,) predicted RUL -> (N,) band: 0 for rul <= edges[0], ..., len(edges) above the last."""
    return np.sum(np.asarray(rul)[:, None] > np.asarray(edges)[None, :], axis=1)


def conformal_one_sided(scores: np.ndarray, level: float) -> float:
    """The ceil((n + 1) * level)-th smallest score, at least 0 (the interval always holds the
    prediction): P(score <= it) >= level for an exchangeable new point."""
    ordered = np.sort(np.asarray(scores, dtype=np.float64))
    rank = int(np.ceil((len(ordered) + 1) * level))
    return max(float(ordered[min(rank, len(ordered)) - 1]), 0.0)


def weighted_conformal_score(scores: np.ndarray, weights: np.ndarray, level: float) -> float:
    """The weighted conformal quantile of `scores` (Tibshirani et al., "Conformal prediction
    under covariate shift", NeurIPS 2019): the smallest score whose cumulative weight reaches
    level, the level raised as ceil((n + 1) level) / n for the effective sample size n, so that
    P(score <= it) >= level for an exchangeable new point."""
    order = np.argsort(scores, kind="stable")
    s, w = np.asarray(scores, dtype=np.float64)[order], np.asarray(weights, dtype=np.float64)[order]
    n_eff = w.sum() ** 2 / np.sum(w**2)
    target = min(np.ceil((n_eff + 1) * level) / n_eff, 1.0)
    index = int(np.searchsorted(np.cumsum(w) / w.sum(), target - 1e-12))
    return float(s[min(index, len(s) - 1)])


def weighted_conformal(scores: np.ndarray, weights: np.ndarray, level: float) -> float:
    """The weighted form of `conformal_one_sided`: `weighted_conformal_score`, at least 0 (the
    interval always holds the prediction)."""
    return max(weighted_conformal_score(scores, weights, level), 0.0)


def calibrate_uncapped(
    predicted: np.ndarray,
    true: np.ndarray,
    edges: list[float],
    coverage: float,
    cap: float,
    calibrated_on: str,
    weights: np.ndarray | None = None,
) -> IntervalBands:
    """Per band: lower and upper widths at 1 - alpha/2 each, and the one-sided lower width at
    1 - alpha used when the upper bound passes `cap` and opens; `true` is the uncapped RUL.
    `weights` (one per calibration window, e.g. test-like: export.calibration_windows) make
    the quantiles those of the weighted distribution. A band with no calibration point
    borrows the widths of all points together."""
    alpha = 1.0 - coverage
    bands = band_index(predicted, edges)
    weights = np.ones(len(predicted)) if weights is None else np.asarray(weights, dtype=np.float64)
    widths: dict[str, list[float]] = {"lower": [], "upper": [], "open_lower": []}
    for k in range(len(edges) + 1):
        in_k = bands == k if np.any(bands[weights > 0] == k) else weights > 0
        below, above, w = predicted[in_k] - true[in_k], true[in_k] - predicted[in_k], weights[in_k]
        widths["lower"].append(weighted_conformal(below, w, 1.0 - alpha / 2))
        widths["upper"].append(weighted_conformal(above, w, 1.0 - alpha / 2))
        widths["open_lower"].append(weighted_conformal(below, w, coverage))
    return IntervalBands(
        list(map(float, edges)), widths["lower"], coverage, calibrated_on,
        widths["upper"], widths["open_lower"], float(cap),
    )  # fmt: skip


def with_short_history(
    bands: IntervalBands, predicted: np.ndarray, true: np.ndarray, cycles_used: np.ndarray,
    weights: np.ndarray, window_length: int,
) -> IntervalBands:  # fmt: skip
    """`bands` (the full window's) with widths per HISTORY_BANDS band, calibrated as
    `calibrate_uncapped` on predictions of windows cut to `cycles_used` real cycles."""
    short = []
    for first, last in history_bands(window_length):
        in_band = (cycles_used >= first) & (cycles_used <= last) & (weights > 0)
        if not in_band.any():
            continue
        fitted = calibrate_uncapped(
            predicted[in_band],
            true[in_band],
            bands.edges,
            bands.nominal_coverage,
            bands.open_above or 0.0,
            bands.calibrated_on,
            weights[in_band],
        )
        short.append(
            {
                "cycles": [first, last],
                "half_widths": fitted.half_widths,
                "upper_widths": fitted.upper_widths,
                "open_lower_widths": fitted.open_lower_widths,
            }
        )
    return IntervalBands(**{**bands.to_dict(), "short_history": short or None})


def interval_bounds(
    rul: np.ndarray, bands: IntervalBands, cycles_used: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) as the graph computes them; upper is +inf where the interval is open.
    `cycles_used` (N,): real cycles per window (default: full windows)."""
    if cycles_used is not None and bands.short_history:
        lower, upper = np.zeros(len(rul)), np.zeros(len(rul))
        for n in np.unique(cycles_used):
            at = cycles_used == n
            lower[at], upper[at] = interval_bounds(rul[at], bands.for_history(int(n)))
        return lower, upper
    band = band_index(rul, bands.edges)
    lower_width = np.asarray(bands.half_widths)[band]
    upper = rul + np.asarray(bands.upper_widths or bands.half_widths)[band]
    if bands.open_above is not None and bands.open_lower_widths is not None:
        is_open = upper > bands.open_above
        upper = np.where(is_open, np.inf, upper)
        lower_width = np.where(is_open, np.asarray(bands.open_lower_widths)[band], lower_width)
    return np.maximum(rul - lower_width, 0.0), upper


class IntervalHead(nn.Module):
    """rul (B,), cycles used (B,) -> (lower (B,) >= 0, upper (B,), +inf when open), as
    `interval_bounds`. The widths are tables (history bands, RUL bands), flattened: one
    gather of band_of_history * (E + 1) + band_of_rul."""

    def __init__(self, bands: IntervalBands):
        super().__init__()
        self.bands = bands
        short = bands.short_history or []
        tables = [*short, {"half_widths": bands.half_widths, "open_lower_widths": bands.open_lower_widths,
                           "upper_widths": bands.upper_widths or bands.half_widths}]  # fmt: skip
        self.register_buffer("edges", torch.tensor(bands.edges))  # (E,)
        self.register_buffer(
            "history_edges", torch.tensor([float(b["cycles"][1]) for b in short])
        )  # (H - 1,)
        self.register_buffer("lower_widths", torch.tensor([t["half_widths"] for t in tables]).flatten())
        self.register_buffer("upper_widths", torch.tensor([t["upper_widths"] for t in tables]).flatten())
        self.opens = bands.open_above is not None and bands.open_lower_widths is not None
        if self.opens:
            self.register_buffer(
                "open_lower_widths", torch.tensor([t["open_lower_widths"] for t in tables]).flatten()
            )
            self.open_above = float(bands.open_above)

    def forward(
        self, rul: torch.Tensor, cycles_used: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        band = band_of_window(rul, cycles_used, self.edges, self.history_edges)
        lower_width = self.lower_widths[band]  # (B,)
        upper = rul + self.upper_widths[band]  # (B,)
        if self.opens:
            is_open = upper > self.open_above
            upper = torch.where(is_open, float("inf"), upper)
            lower_width = torch.where(is_open, self.open_lower_widths[band], lower_width)
        return torch.clamp(rul - lower_width, min=0.0), upper


def band_of_window(
    rul: torch.Tensor, cycles_used: torch.Tensor | None, edges: torch.Tensor, history_edges: torch.Tensor
) -> torch.Tensor:
    """(B,) index into a table of (history band, RUL band) rows flattened, history band major:
    history_band * (len(edges) + 1) + rul_band; no cycles_used: full windows (the last history
    band)."""
    band = (rul.unsqueeze(-1) > edges).long().sum(-1)  # (B,)
    if not len(history_edges):
        return band
    n_rul_bands = len(edges) + 1
    if cycles_used is None:
        return band + n_rul_bands * len(history_edges)
    return band + n_rul_bands * (cycles_used.unsqueeze(-1) > history_edges).long().sum(-1)
