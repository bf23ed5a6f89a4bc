"""The continuity checks (issue "One engine, one continuous history"): their arithmetic in
numpy, for their fit (training/quality_fit.py), and `ContinuityCheck`, the part of the graph's
checks (training/input_checks.py) that applies them. The service's sentences
(service/core/continuity_sentences.py) compute the same steps by least squares, as the service
imports nothing from training/.

- discontinuity: a window is one engine's history, so its health index (z @ wear, cycles of
  RUL) follows one smooth trend. The statistic is, over every position j of the real cycles,
  the least-squares size of a step at j (the cycles from j on shifted against those before)
  on top of a quadratic trend over the window, in units of its standard error for the index's
  per-cycle noise, squared; its largest over j. Another engine's cycles appended at the end
  (k = 1 included), in the middle, or a window whose first part is another engine's, all put
  a step into the index where the two histories meet, as large as the two engines' wear
  differs. A quadratic trend, not a straight line: near failure the wear accelerates, and a
  straight line leaves the last cycles of one engine's own clean history looking like a step
  (measured on fd001's validation windows, the sensors' statistic below: 1.25 x its largest
  56 with a line, 35 with the quadratic; its 99th percentile 8.1 and 3.1).
  The same step is also taken per checked sensor (its robust z-score, in units of its own
  per-cycle noise) and averaged over the sensors (`level`): two engines at the same wear
  still differ in their sensors' levels, and the networks read those levels (measured on
  fd001: a healthy engine, true RUL 118, answered 117, with the last 10 cycles of another
  healthy one, true RUL 111, was answered 53 and passed the health-index step alone). Either
  statistic above its threshold flags. Both are taken on series whitened cycle by cycle by
  their per-cycle noise in that cycle's operating condition (`condition_noise`): on fd004
  the noise of s_8 and s_13 differs 8-9 fold between conditions.
- drifting: per checked column, the least-squares slope over the real cycles of its residual
  from its estimate from the other sensors (the wear all sensors share cancels in it), in
  robust s.d. per cycle (`slopes_of_last` for the fit; in the graph QualityCheck._slope).
"""

import numpy as np
import torch
from torch import nn

from training.quality_stats import QualityStats

MIN_STEP_HISTORY = 5  # fewer real cycles: no step is estimated (a quadratic and a step need 4)


def step_projections(window_length: int) -> np.ndarray:
    """(W + 1, W, W): for a history of n real cycles (the window's last n rows) and a split at
    row j, the weights that turn an index h (W,) into the least-squares size of a step at j on
    top of a quadratic trend over the real rows, divided by that size's standard error for
    unit white noise. Zero where no step is estimated: n < MIN_STEP_HISTORY, j on padding or
    on the first real row."""
    w = window_length
    out = np.zeros((w + 1, w, w))
    for n in range(MIN_STEP_HISTORY, w + 1):
        t = np.arange(n)
        centred = (t - t.mean()) / n
        start = w - n
        for j in range(1, n):
            x = np.c_[np.ones(n), centred, centred**2, (t >= j).astype(float)]
            inverse = np.linalg.inv(x.T @ x)
            out[n, start + j, start:] = (inverse @ x.T)[3] / np.sqrt(inverse[3, 3])
    return out


def condition_noise(steps: np.ndarray, now: np.ndarray, before: np.ndarray, n_conditions: int) -> np.ndarray:
    """steps (T, M) differences between consecutive cycles of M series, now/before (T,) the
    operating conditions of the two cycles -> (K, M) each series' per-cycle noise variance in
    each condition: the least-squares solution of E[step^2] = var[now] + var[before]."""
    design = np.zeros((len(steps), n_conditions))
    np.add.at(design, (np.arange(len(steps)), now), 1.0)
    np.add.at(design, (np.arange(len(steps)), before), 1.0)
    variance = np.linalg.lstsq(design, steps**2, rcond=None)[0]
    return np.maximum(variance, 1e-3 * np.mean(steps**2, axis=0) / 2)


def level_statistic(z: np.ndarray, n: int, projections: np.ndarray) -> np.ndarray:
    """z (N, W, C) whitened sensor z-scores over windows with n real cycles (the last n rows)
    -> (N,) the largest, over the split rows, of the mean over the sensors of the squared
    standardised step."""
    steps = np.einsum("jw,nwc->njc", projections[n][:, -n:], z[:, -n:])  # (N, W, C)
    return (steps**2).mean(axis=2).max(axis=1)


def slopes_of_last(x: np.ndarray, n: int) -> np.ndarray:
    """(N, W, C) -> (N, C) least-squares slope of each column over each window's last n rows."""
    t = np.arange(n) - (n - 1) / 2
    return np.einsum("nwc,w->nc", x[:, -n:], t / (t @ t))


def _floats(values: list) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def blame_signature(imputation: torch.Tensor, thresholds: torch.Tensor, power: int = 1) -> torch.Tensor:
    """(C, C) unit columns: a fault in column c moves the residuals (each column minus its
    estimate from the others) along column c of (I - imputation), raised to `power` for
    variances, divided by each residual's threshold (C,): what the inconsistent, noisy and
    drifting checks match the residuals against to blame one column."""
    signature = (torch.eye(len(imputation)) - imputation) ** power / thresholds.unsqueeze(1)
    return torch.nan_to_num(signature / signature.norm(dim=0, keepdim=True).clamp(min=1e-12))


class ContinuityCheck(nn.Module):
    """The continuity checks in the graph, on what QualityCheck has computed: `drifting` from
    the residuals' slopes, `discontinuity` from the health index and the sensors' z-scores.
    Statistics fitted before these checks have none of their fields: the checks never fire."""

    def __init__(self, stats: QualityStats, window_length: int, imputation: torch.Tensor):
        super().__init__()
        n_checked, n_conditions = len(stats.column_index), len(stats.centroids) or 1
        never = [float("inf")] * (window_length + 1)
        self.register_buffer(
            "drift_slope", _floats(stats.drift_slope or [[float("inf")] * n_checked] * len(never))
        )
        # a drift in column c moves the residuals' slopes, over the full-window thresholds
        self.register_buffer("drift_signature", blame_signature(imputation, self.drift_slope[window_length]))
        projections = torch.tensor(step_projections(window_length), dtype=torch.float32)
        self.register_buffer("step_projection", projections)  # (W + 1, W, W)
        health_noise = torch.tensor(stats.health_noise or [1.0] * n_conditions, dtype=torch.float32)
        self.register_buffer("health_noise", health_noise)  # (K,) s.d.
        level_noise = torch.tensor(
            stats.level_noise or [[1.0] * n_checked] * n_conditions, dtype=torch.float32
        )
        self.register_buffer("level_noise", level_noise.sqrt())  # (K, C) s.d.
        self.register_buffer(
            "step_threshold", torch.tensor(stats.step_threshold or never, dtype=torch.float32)
        )
        self.register_buffer(
            "level_threshold", torch.tensor(stats.level_threshold or never, dtype=torch.float32)
        )

    def drifting(self, slopes: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        """slopes (B, C) of the residuals over n (B,) real cycles -> (B, C) bool: the column whose
        drift signature best explains them, where some slope is above its threshold."""
        ratio = slopes / self.drift_slope[n.long()]  # (B, C)
        fit = (ratio @ self.drift_signature).abs()  # (B, C)
        return (fit >= fit.amax(dim=1, keepdim=True)) & (ratio.abs().amax(dim=1, keepdim=True) > 1.0)

    def discontinuity(
        self, h: torch.Tensor, z: torch.Tensor, condition: torch.Tensor, n: torch.Tensor
    ) -> torch.Tensor:
        """(B,) the larger of the two statistics, each over its threshold for n real cycles
        (above 1 flags): the largest squared standardised step of the index h (B, W), and the
        largest mean over the sensors of their squared standardised steps, z (B, W, C); each
        cycle whitened by its condition's (B, W) noise."""
        projection = self.step_projection[n.long()]  # (B, W, W)
        steps = (projection @ (h / self.health_noise[condition]).unsqueeze(-1)).squeeze(-1)  # (B, W)
        index_term = (steps**2).amax(dim=1) / self.step_threshold[n.long()]
        levels = ((projection @ (z / self.level_noise[condition])) ** 2).mean(dim=-1)  # (B, W)
        return torch.maximum(index_term, levels.amax(dim=1) / self.level_threshold[n.long()])
