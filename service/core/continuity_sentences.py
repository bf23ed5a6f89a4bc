"""The sentences of the continuity checks (training/continuity.py): where a window's history
steps from one engine to another, and how far a sensor drifts from the others. The graph
decides; these functions only measure again, in numpy, what it compared, and word it with the
card's thresholds (`QualityChecks`). The steps are the graph's, taken by least squares here
instead of its precomputed projections (the service imports nothing from training/)."""

import numpy as np

from service.core.model_card import QualityChecks


def steps(series: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """series (n, M) over a history's real cycles -> ((n, M) the least-squares step of each at
    each row j on top of a quadratic trend, in its standard errors for unit noise; (n,) that
    standard error), row 0 zero."""
    n = len(series)
    t = np.arange(n)
    centred = (t - t.mean()) / n
    found, errors = np.zeros(series.shape), np.ones(n)
    for j in range(1, n):
        x = np.c_[np.ones(n), centred, centred**2, (t >= j).astype(float)]
        errors[j] = np.sqrt(np.linalg.inv(x.T @ x)[3, 3])
        found[j] = np.linalg.lstsq(x, series, rcond=None)[0][3] / errors[j]
    return found, errors


def discontinuity(
    checks: QualityChecks, z: np.ndarray, condition: np.ndarray, labels: np.ndarray
) -> tuple[str, int]:
    """z (n, C) the window's z-scores as the graph's window checks read them (flagged columns
    imputed), condition (n,) each cycle's operating condition, labels (n,) the cycles' labels
    -> the sentence of the statistic furthest beyond its threshold, and the first cycle after
    the step (the flag's `cycles`)."""
    h = z @ np.asarray(checks.wear or [0.0] * z.shape[1])
    health_noise = np.asarray(checks.health_noise or [1.0])[condition]
    level_noise = np.asarray(checks.level_noise or [[1.0]])[condition]
    thresholds = (checks.step_threshold or [np.nan], checks.level_threshold or [np.nan])
    full = min(len(h), len(thresholds[0]) - 1)
    limits = (thresholds[0][full], thresholds[1][full])
    found, errors = steps(np.c_[h / health_noise, z / np.sqrt(level_noise), h])  # (n, 2 + C), (n,)
    statistics = np.c_[found[:, 0] ** 2, np.mean(found[:, 1:-1] ** 2, axis=1)] / np.asarray(limits)
    row, which = np.unravel_index(int(np.argmax(statistics)), statistics.shape)
    j = max(int(row), 1)  # row 0 has no step; the graph flags only where a step is measured
    seen, allowed = np.sqrt(statistics[j, which] * limits[which]), np.sqrt(limits[which])
    if which == 0:
        what = f"the sensors' health index moves by {found[j, -1] * errors[j]:+.3g} cycles of RUL"
    else:
        what = f"the {z.shape[1]} sensors' readings move (root mean square over them)"
    between = f"between cycles {int(labels[j - 1])} and {int(labels[j])}"
    question = "are these the cycles of two engines (a join on the wrong key, a tail number reused)?"
    if statistics[j, which] <= 1.0 and checks.stitch_detector:  # the graph's learned stitch check fired
        problem = (f"the {len(h)} cycles do not follow each other as one engine's do: the learned stitch "
                   "check (trained against windows stitched from two engines) scores this window above "
                   f"every validation window, though no step is beyond the step checks' limit (the largest, "
                   f"{between}: {what}, {seen:.3g} standard errors, where {allowed:.3g} are allowed); "
                   f"{question}")  # fmt: skip
        return problem, int(labels[j])
    problem = (f"the engine's history steps {between}: {what} against the trend of the rest of the "
               f"window, {seen:.3g} standard errors where one engine's windows in training reach at most "
               f"{allowed:.3g}; {question}")  # fmt: skip
    return problem, int(labels[j])


def drifting(checks: QualityChecks, residual: np.ndarray, c: int) -> str:
    """residual (n,) checked column c minus its estimate from the others over the real cycles."""
    n = len(residual)
    t = np.arange(n) - (n - 1) / 2
    slope = float(residual @ t / max(t @ t, 1e-6))
    thresholds = checks.drift_slope or [[float("nan")] * (c + 1)]
    allowed = float(thresholds[min(n, len(thresholds) - 1)][c])
    side = "upwards" if slope > 0 else "downwards"
    return (f"drifts {side} from its estimate from the other sensors by {abs(slope) * (n - 1):.2g} "
            f"robust s.d. over {n} cycles, where training windows drift at most "
            f"{allowed * (n - 1):.2g}; a sensor losing its calibration, or fouling?")  # fmt: skip
