"""Split-conformal RUL intervals, calibrated on validation units, computed inside the graph.

Errors grow with the RUL (an engine near failure is easy to place, a healthy one is not), so
one half-width for all would be too wide near failure and too narrow far from it. We use
Mondrian (group-conditional) split conformal: the predicted RUL picks a band (the health
thresholds: <= 30, 31-80, > 80) and each band has its own half-width, the
ceil((n+1)(1-alpha))-th smallest |residual| of the validation windows predicted in it
(Vovk et al., "Algorithmic Learning in a Random World", 2005; Lei et al., JASA 2018).
"""

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn


def conformal_half_width(residuals: np.ndarray, coverage: float) -> float:
    """The ceil((n + 1) * coverage)-th smallest |residual| (the largest if that exceeds n)."""
    scores = np.sort(np.abs(np.asarray(residuals, dtype=np.float64)))
    n = len(scores)
    if n == 0:
        raise ValueError("conformal calibration needs at least one residual")
    rank = int(np.ceil((n + 1) * coverage))
    return float(scores[min(rank, n) - 1])


@dataclass
class IntervalBands:
    edges: list[float]  # band upper edges on the predicted RUL, e.g. [30, 80]: 3 bands
    half_widths: list[float]  # one per band, cycles
    nominal_coverage: float  # e.g. 0.9
    calibrated_on: str  # what the residuals were

    def to_dict(self) -> dict:
        return asdict(self)


def band_index(rul: np.ndarray, edges: list[float]) -> np.ndarray:
    """(N,) predicted RUL -> (N,) band: 0 for rul <= edges[0], ..., len(edges) above the last."""
    return np.sum(np.asarray(rul)[:, None] > np.asarray(edges)[None, :], axis=1)


def calibrate_bands(
    predicted: np.ndarray, true: np.ndarray, edges: list[float], coverage: float, calibrated_on: str
) -> IntervalBands:
    """Per-band split-conformal half-widths; a band with no calibration point borrows the
    half-width of all points together (never narrower than the data justifies)."""
    bands = band_index(predicted, edges)
    overall = conformal_half_width(predicted - true, coverage)
    widths = []
    for k in range(len(edges) + 1):
        in_k = bands == k
        widths.append(conformal_half_width(predicted[in_k] - true[in_k], coverage) if in_k.any() else overall)
    return IntervalBands(list(map(float, edges)), widths, coverage, calibrated_on)


def interval_bounds(rul: np.ndarray, bands: IntervalBands) -> tuple[np.ndarray, np.ndarray]:
    half = np.asarray(bands.half_widths)[band_index(rul, bands.edges)]
    return np.maximum(rul - half, 0.0), rul + half


class IntervalHead(nn.Module):
    """rul (B,) -> (lower (B,) >= 0, upper (B,)), the same arithmetic as `interval_bounds`."""

    def __init__(self, bands: IntervalBands):
        super().__init__()
        self.bands = bands
        self.register_buffer("edges", torch.tensor(bands.edges))  # (E,)
        self.register_buffer("half_widths", torch.tensor(bands.half_widths))  # (E + 1,)

    def forward(self, rul: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        band = (rul.unsqueeze(-1) > self.edges).long().sum(-1)  # (B,)
        half = self.half_widths[band]  # (B,)
        return torch.clamp(rul - half, min=0.0), rul + half
