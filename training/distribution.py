"""A calibrated predictive distribution of the RUL, computed inside the graph.

For each window the graph gives the RUL at a fixed grid of quantile levels (`LEVELS`), so a
caller can ask what a planner asks: the probability that the engine fails within h cycles
(service/core/planning.py reads it off these quantiles) and the RUL it has left at a risk it
accepts (a lower quantile).

The quantiles are conformal predictive distributions (Vovk et al., "Nonparametric predictive
distributions based on conformal prediction", Machine Learning 2019) made with the intervals'
machinery (training/intervals.py): the same held-out windows, the same test-like weights, the
same bands by predicted RUL and by history length, against the true, uncapped RUL. In each
band the quantile at level tau is the prediction plus an offset: below the median the
conservative (1 - tau) conformal score of rul - truth taken from below, from the median up the
conservative tau score of truth - rul, so that P(truth < quantile) <= tau below the median and
P(truth <= quantile) >= tau above it for an exchangeable new window. A quantile above the
training cap (`open_above`) is +inf: a network trained on RUL capped at 125 cannot tell 130
cycles left from 300, so that part of the distribution is open ("at least").
"""

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from training.intervals import band_index, band_of_window, history_bands, weighted_conformal_score

# The quantile levels of the graph's rul_quantiles output, in its column order.
LEVELS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5,
          0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.975, 0.99)  # fmt: skip


@dataclass
class QuantileBands:
    levels: list[float]  # quantile levels, increasing
    edges: list[float]  # band upper edges on the predicted RUL (the interval's)
    offsets: list[list[float]]  # per RUL band, per level: quantile - rul, full windows
    open_above: float  # a quantile above this (the RUL cap) is +inf
    calibrated_on: str
    # per band of cycles used below the full window: {"cycles": [first, last], "offsets"}
    short_history: list[dict] | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def level_offsets(
    predicted: np.ndarray, truth: np.ndarray, weights: np.ndarray, levels: list[float]
) -> list[float]:
    """Quantile - rul per level for one band (the module docstring), non-decreasing."""
    offsets = [
        -weighted_conformal_score(predicted - truth, weights, 1.0 - tau)
        if tau < 0.5
        else weighted_conformal_score(truth - predicted, weights, tau)
        for tau in levels
    ]
    return np.maximum.accumulate(offsets).tolist()


def band_offsets(
    predicted: np.ndarray, truth: np.ndarray, weights: np.ndarray, edges: list[float], levels: list[float]
) -> list[list[float]]:
    """`level_offsets` per predicted-RUL band; a band with no point borrows all points'."""
    bands = band_index(predicted, edges)
    table = []
    for k in range(len(edges) + 1):
        in_k = bands == k if np.any(bands[weights > 0] == k) else weights > 0
        table.append(level_offsets(predicted[in_k], truth[in_k], weights[in_k], levels))
    return table


def calibrate_quantiles(
    predicted: np.ndarray,
    truth: np.ndarray,
    weights: np.ndarray,
    cycles_used: np.ndarray,
    window_length: int,
    edges: list[float],
    cap: float,
    calibrated_on: str,
    levels: tuple[float, ...] = LEVELS,
) -> QuantileBands:
    """Offsets per RUL band for full windows, and per history band (intervals.history_bands)
    on the windows cut to it; `truth` uncapped, one entry per held-out window."""
    full = (cycles_used == window_length) & (weights > 0)
    short = []
    for first, last in history_bands(window_length):
        in_band = (cycles_used >= first) & (cycles_used <= last) & (weights > 0)
        if in_band.any():
            offsets = band_offsets(predicted[in_band], truth[in_band], weights[in_band], edges, list(levels))
            short.append({"cycles": [first, last], "offsets": offsets})
    return QuantileBands(
        list(levels),
        list(map(float, edges)),
        band_offsets(predicted[full], truth[full], weights[full], edges, list(levels)),
        float(cap),
        calibrated_on,
        short or None,
    )


def quantiles_of(rul: np.ndarray, bands: QuantileBands, cycles_used: np.ndarray) -> np.ndarray:
    """(N,) rul, (N,) cycles used -> (N, levels) quantiles, as the graph computes them."""
    head = QuantileHead(bands)
    with torch.no_grad():
        rul_t, used_t = (torch.as_tensor(a, dtype=torch.float32) for a in (rul, cycles_used))
        out = head(rul_t, used_t)
    return out.numpy()


class QuantileHead(nn.Module):
    """rul (B,), cycles used (B,) -> rul_quantiles (B, levels): rul + the band's offsets,
    at least 0, +inf above open_above; the offsets are a table (history band, RUL band)
    flattened as in IntervalHead."""

    def __init__(self, bands: QuantileBands):
        super().__init__()
        self.bands = bands
        short = bands.short_history or []
        tables = [*(b["offsets"] for b in short), bands.offsets]  # (H, R, Q)
        self.register_buffer("edges", torch.tensor(bands.edges))
        self.register_buffer("history_edges", torch.tensor([float(b["cycles"][1]) for b in short]))
        self.register_buffer("offsets", torch.tensor(tables, dtype=torch.float32).flatten(0, 1))
        self.open_above = float(bands.open_above)

    def forward(self, rul: torch.Tensor, cycles_used: torch.Tensor) -> torch.Tensor:
        band = band_of_window(rul, cycles_used, self.edges, self.history_edges)
        quantiles = torch.clamp(rul.unsqueeze(-1) + self.offsets[band], min=0.0)  # (B, Q)
        return torch.where(quantiles > self.open_above, float("inf"), quantiles)
