"""Input-quality checks that live inside the exported graph, so every runtime that serves the
file (the service, rul-score, Triton) flags a faulty or foreign window the same way.

Per checked sensor column (the sensors the model reads), per cycle:
- out_of_range: robust z-score |x - median| / (1.4826 MAD) of its operating condition beyond
  the column's threshold (a dead sensor reading 0.0, a spike x10, a wrong unit);
- spike: a jump of the robust z-score between consecutive cycles beyond the column's threshold;
- stuck: the same value repeated over more consecutive cycles than the training units ever
  show for that column (all the checked sensors vary from cycle to cycle in C-MAPSS).
Per settings column, per cycle:
- unknown_condition: the operational setting far from every training operating condition
  (another flight regime or engine type, e.g. FD002 windows sent to fd001).
Per window, one out-of-distribution score: the larger of the settings' distance and the
mean per-cycle Mahalanobis distance of the (masked, imputed) sensor z-scores, each divided by
its threshold, so a score above 1 means "not like the training data".

Statistics come from the training units of one 80/20 split of the subset (split seed 0);
every threshold is MARGIN times the largest value seen on its validation units, so no
validation window is flagged and the rule is fixed before any test unit is looked at.
"""

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from training.constants import INPUT_FEATURES, SETTING_NAMES
from training.data import Unit
from training.preprocessing import assign_conditions, fit_preprocessing, imputation_weights
from training.windows import split_by_unit, stack_windows

# Bits of the `quality_flags` output (B, W, 24), per cycle and column.
OUT_OF_RANGE, SPIKE, STUCK, UNKNOWN_CONDITION = 1, 2, 4, 8
CHECK_NAMES = {
    OUT_OF_RANGE: "out_of_range",
    SPIKE: "spike",
    STUCK: "stuck",
    UNKNOWN_CONDITION: "unknown_condition",
}
MARGIN = 1.25  # threshold = MARGIN x the largest value on validation units
MIN_Z = 4.0  # a threshold is never below this many robust standard deviations
STUCK_EXTRA = 2  # stuck: a run this much longer than the longest run in training
MAX_MASKED = 3  # more flagged sensors than this: too little left to trust, out of distribution
QUALITY_SPLIT = (0.2, 0)  # (validation fraction, split seed) of the units the checks are fitted on


@dataclass
class QualityStats:
    """Everything the checks need, as plain lists for the checkpoint and the model card."""

    columns: list[str]  # checked sensor columns, in the model's feature order
    column_index: list[int]  # their positions among the 24 raw columns
    settings_scale: list[float]  # (3,) as in preprocessing
    centroids: list[list[float]]  # (K, 3) operating conditions in scaled-settings space
    center: list[list[float]]  # (K, C) per-condition median of each checked column
    scale: list[list[float]]  # (K, C) per-condition robust scale (1.4826 MAD; std if MAD is 0)
    range_z: list[float]  # (C,) out_of_range threshold on |robust z|
    jump_z: list[float]  # (C,) spike threshold on |robust z(t) - robust z(t-1)|
    stuck_run: list[int]  # (C,) this many equal consecutive values is stuck
    settings_z: list[float]  # (3,) unknown_condition threshold on |setting - nearest centroid| (scaled)
    precision: list[list[float]]  # (C, C) inverse covariance of the robust z-scores (training rows)
    imputation: list[list[float]]  # (C, C) estimates a masked column's z from the others
    mahalanobis_threshold: float  # threshold on the window's mean squared Mahalanobis distance / C
    max_masked: int  # more flagged sensor columns than this: out of distribution
    calibrated_on: str  # which units gave the statistics and which the thresholds

    def to_dict(self) -> dict:
        return asdict(self)


def _robust_z(rows: np.ndarray, condition: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return (rows - center[condition]) / scale[condition]  # (N, C)


def _longest_run(column: np.ndarray) -> int:
    """The longest run of equal consecutive values in a 1-D array."""
    change = np.flatnonzero(np.diff(column) != 0)
    bounds = np.concatenate([[-1], change, [len(column) - 1]])
    return int(np.diff(bounds).max())


def _windows_mean_d2(units: list[Unit], window_length: int, stats: "QualityStats") -> np.ndarray:
    """The OOD term of every window of `units`, computed as the graph does (no column masked)."""
    check = QualityCheck(stats, window_length).eval()
    x, _ = stack_windows(units, window_length, None)
    with torch.no_grad():
        return np.concatenate([check.mean_d2(torch.from_numpy(x[i : i + 4096])).numpy()
                               for i in range(0, len(x), 4096)])  # fmt: skip


def fit_quality(units: list[Unit], n_conditions: int, columns: list[str], window_length: int) -> QualityStats:
    """Fit the checks on `units` (a subset's training units): statistics on an 80 % split of
    them, thresholds on the other 20 % (QUALITY_SPLIT)."""
    val_fraction, seed = QUALITY_SPLIT
    train, val = split_by_unit(units, val_fraction, seed)
    prep = fit_preprocessing(train, n_conditions)
    index = [INPUT_FEATURES.index(c) for c in columns]
    n_set = len(SETTING_NAMES)

    rows = np.concatenate([u.readings for u in train]).astype(np.float64)
    condition = assign_conditions(rows[:, :n_set], prep)
    center, scale = [], []
    for k in range(n_conditions):
        in_k = rows[condition == k][:, index]
        median = np.median(in_k, axis=0)
        mad = 1.4826 * np.median(np.abs(in_k - median), axis=0)
        center.append(median)
        scale.append(np.where(mad > 0, mad, np.maximum(in_k.std(axis=0), 1e-4)))
    center_a, scale_a = np.array(center), np.array(scale)
    z_train = _robust_z(rows[:, index], condition, center_a, scale_a)
    precision = np.linalg.inv(np.cov(z_train, rowvar=False) + 1e-6 * np.eye(len(index)))

    def per_unit(unit_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cond = assign_conditions(unit_rows[:, :n_set], prep)
        z = _robust_z(unit_rows[:, index], cond, center_a, scale_a)
        scaled = unit_rows[:, :n_set] / np.asarray(prep.settings_scale)
        deviation = np.abs(scaled - np.asarray(prep.centroids)[cond])
        return z, np.abs(np.diff(z, axis=0)), deviation

    parts = [per_unit(u.readings.astype(np.float64)) for u in val]
    z_val = np.concatenate([p[0] for p in parts])
    jumps = np.concatenate([p[1] for p in parts])
    deviation = np.concatenate([p[2] for p in parts])
    runs = [max(_longest_run(u.readings[:, j]) for u in train) for j in index]
    stats = QualityStats(
        columns=list(columns),
        column_index=index,
        settings_scale=prep.settings_scale,
        centroids=prep.centroids,
        center=center_a.tolist(),
        scale=scale_a.tolist(),
        range_z=np.maximum(MARGIN * np.abs(z_val).max(axis=0), MIN_Z).tolist(),
        jump_z=np.maximum(MARGIN * jumps.max(axis=0), MIN_Z).tolist(),
        stuck_run=[r + STUCK_EXTRA for r in runs],
        settings_z=np.maximum(MARGIN * deviation.max(axis=0), MIN_Z).tolist(),
        precision=precision.tolist(),
        imputation=imputation_weights(z_train).tolist(),
        mahalanobis_threshold=0.0,
        max_masked=MAX_MASKED,
        calibrated_on=f"statistics: {len(train)} training units; thresholds: {MARGIN:g} x the largest "
        f"value on {len(val)} validation units (split seed {seed}, {val_fraction:.0%} held out)",
    )
    stats.mahalanobis_threshold = float(MARGIN * _windows_mean_d2(val, window_length, stats).max())
    return stats


# The helpers below keep the exported graph free of shape computations (no Shape -> Gather ->
# Concat chains, which ONNX Runtime's GPU providers run on the CPU): every shape they need is
# fixed by the window length and the columns; only the batch axis broadcasts.


def _flat_index(index: torch.Tensor) -> torch.Tensor:
    """(W, C) cycle indices -> (W * C,) positions in a window flattened cycle by cycle:
    index[t, c] * C + c."""
    n_columns = index.shape[1]
    return (index * n_columns + torch.arange(n_columns)).flatten()


def _take_cycles(x: torch.Tensor, flat_index: torch.Tensor) -> torch.Tensor:
    """x (B, W, C) -> out[b, t, c] = x[b, index[t, c], c] for the index behind `flat_index`
    (`_flat_index`): one gather of constant positions along the flattened window."""
    return x.flatten(1).index_select(1, flat_index).view(x.shape)


def _shift_in_zero(x: torch.Tensor) -> torch.Tensor:
    """x (B, T, C) float -> (B, T + 1, C): a cycle of zeros in front."""
    return F.pad(x, (0, 0, 1, 0))


class QualityCheck(nn.Module):
    """Raw readings (B, W, 24) -> flags (B, W, 24) int32 bit set per cycle and column,
    column_mask (B, 24) bool of sensor columns to mask, ood_score (B,) float32.

    Rows equal to the previous row in all 24 columns are the front padding of a short window
    (the service repeats the first cycle): they never count towards a stuck run."""

    def __init__(self, stats: QualityStats, window_length: int):
        super().__init__()
        self.stats = stats
        self.n_settings = len(SETTING_NAMES)
        n_cols = len(INPUT_FEATURES)
        self.register_buffer("column_index", torch.tensor(stats.column_index, dtype=torch.long))
        self.register_buffer("settings_scale", torch.tensor(stats.settings_scale, dtype=torch.float32))
        self.register_buffer("centroids", torch.tensor(stats.centroids, dtype=torch.float32))  # (K, 3)
        self.register_buffer("center", torch.tensor(stats.center, dtype=torch.float32))  # (K, C)
        self.register_buffer("scale", torch.tensor(stats.scale, dtype=torch.float32))  # (K, C)
        self.register_buffer("range_z", torch.tensor(stats.range_z, dtype=torch.float32))  # (C,)
        self.register_buffer("jump_z", torch.tensor(stats.jump_z, dtype=torch.float32))  # (C,)
        self.register_buffer("settings_z", torch.tensor(stats.settings_z, dtype=torch.float32))  # (3,)
        self.register_buffer("precision", torch.tensor(stats.precision, dtype=torch.float32))  # (C, C)
        self.register_buffer("imputation", torch.tensor(stats.imputation, dtype=torch.float32))  # (C, C)
        self.mahalanobis_threshold = float(stats.mahalanobis_threshold) or 1.0
        # Scatter the checked columns and the settings into the 24 raw columns (one-hot maps).
        to_raw = torch.zeros(len(stats.column_index), n_cols)
        to_raw[torch.arange(len(stats.column_index)), torch.tensor(stats.column_index)] = 1.0
        self.register_buffer("to_raw", to_raw)  # (C, 24)
        settings_to_raw = torch.zeros(self.n_settings, n_cols)
        settings_to_raw[torch.arange(self.n_settings), torch.arange(self.n_settings)] = 1.0
        self.register_buffer("settings_to_raw", settings_to_raw)  # (3, 24)
        # Stuck runs, with the window length fixed per model: a run of L equal values ends at
        # cycle t if the L - 1 comparisons up to t are all equal (cumulative counts, gathered).
        t = torch.arange(window_length).unsqueeze(1)  # (W, 1)
        run = torch.tensor(stats.stuck_run).unsqueeze(0)  # (1, C)
        self.register_buffer("index_back", _flat_index(torch.clamp(t - run + 1, min=0)))  # (W * C,)
        self.register_buffer("run_valid", t - run + 1 >= 0)  # (W, C)
        self.register_buffer("index_forward", _flat_index(torch.clamp(t + run - 1, max=window_length - 1)))
        self.register_buffer("run_needed", (run - 1).float())  # (1, C)

    def _conditions(self, readings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        settings = readings[..., : self.n_settings] / self.settings_scale  # (B, W, 3)
        dist = ((settings.unsqueeze(-2) - self.centroids) ** 2).sum(-1)  # (B, W, K)
        condition = dist.argmin(dim=-1)  # (B, W)
        deviation = (settings - self.centroids[condition]).abs() / self.settings_z  # (B, W, 3)
        return condition, deviation

    def _robust_z(self, readings: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        values = readings.index_select(-1, self.column_index)  # (B, W, C)
        return (values - self.center[condition]) / self.scale[condition]  # (B, W, C)

    def _mean_d2(self, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean over cycles of the squared Mahalanobis distance / C, masked columns imputed."""
        keep = (~mask).unsqueeze(1)  # (B, 1, C)
        z = torch.where(keep, z, 0.0)
        z = torch.where(keep, z, z @ self.imputation.T)  # (B, W, C)
        d2 = ((z @ self.precision) * z).sum(-1) / z.shape[-1]  # (B, W)
        return d2.mean(dim=1)  # (B,)

    def mean_d2(self, readings: torch.Tensor) -> torch.Tensor:
        """The Mahalanobis term with no column masked (calibration)."""
        condition, _ = self._conditions(readings)
        z = self._robust_z(readings, condition)
        return self._mean_d2(z, torch.zeros(z.shape[0], z.shape[2], dtype=torch.bool))

    def _stuck(self, readings: torch.Tensor) -> torch.Tensor:
        values = readings.index_select(-1, self.column_index)  # (B, W, C)
        padding = (readings[:, 1:] == readings[:, :-1]).all(dim=-1, keepdim=True)  # (B, W-1, 1)
        same = ((values[:, 1:] == values[:, :-1]) & ~padding).float()  # (B, W-1, C)
        counts = _shift_in_zero(same).cumsum(dim=1)  # (B, W, C)
        ends = ((counts - _take_cycles(counts, self.index_back)) >= self.run_needed) & self.run_valid
        # mark every cycle of a stuck run: some run ends within [t, t + L - 1]
        ended = ends.float().cumsum(dim=1)  # (B, W, C)
        before = _shift_in_zero(ended[:, :-1])
        return (_take_cycles(ended, self.index_forward) - before) > 0  # (B, W, C)

    def forward(self, readings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        condition, deviation = self._conditions(readings)
        z = self._robust_z(readings, condition)  # (B, W, C)
        out_of_range = z.abs() > self.range_z
        jump = (z[:, 1:] - z[:, :-1]).abs() > self.jump_z  # (B, W-1, C) the jump into cycle t
        spike = _shift_in_zero(jump.float())
        stuck = self._stuck(readings)
        bits = OUT_OF_RANGE * out_of_range.float() + SPIKE * spike + STUCK * stuck.float()
        unknown = UNKNOWN_CONDITION * (deviation > 1.0).float()  # (B, W, 3)
        flags = (bits @ self.to_raw + unknown @ self.settings_to_raw).to(torch.int32)  # (B, W, 24)
        flagged = (bits.amax(dim=1) > 0).float()  # (B, C)
        column_mask = (flagged @ self.to_raw) > 0  # (B, 24)
        mahalanobis = self._mean_d2(z, flagged > 0) / self.mahalanobis_threshold  # (B,)
        settings_term = deviation.amax(dim=(1, 2))  # (B,)
        return flags, column_mask, torch.maximum(mahalanobis, settings_term)
