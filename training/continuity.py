"""The continuity checks' arithmetic (issue "One engine, one continuous history"), in numpy so
that the graph (training/input_checks.py), their fit (training/quality_fit.py) and the
service's sentences (service/core/check_sentences.py keeps its own copy of `step_sizes`, as it
imports nothing from training/) compute the same numbers.

- discontinuity: a window is one engine's history, so its health index (z @ wear, cycles of
  RUL) follows one smooth trend. The statistic is, over every position j of the real cycles,
  the least-squares size of a step at j (the cycles from j on shifted against those before)
  on top of a quadratic trend over the window, in units of its standard error for the index's
  per-cycle noise, squared; its largest over j. Another engine's cycles appended at the end
  (k = 1 included), in the middle, or a window whose first part is another engine's, all put
  a step into the index where the two histories meet, as large as the two engines' wear
  differs. A quadratic trend, not a straight line: near failure the wear accelerates, and a
  straight line leaves the last cycles of one engine's own clean history looking like a step
  (measured: fd001's largest clean validation statistic 56 with a line, 28 with the
  quadratic; its 99th percentile 12).
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
  robust s.d. per cycle (the slope weights are `slope_weights`, the graph's `_slope`).
"""

import numpy as np

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


def step_sizes(h: np.ndarray) -> np.ndarray:
    """(n,) an index over a history's real cycles -> (n,) the least-squares step at each row j
    on top of a quadratic trend (index units; 0 at j = 0 and where n < MIN_STEP_HISTORY):
    the sizes `step_projections` standardises."""
    n = len(h)
    sizes = np.zeros(n)
    if n < MIN_STEP_HISTORY:
        return sizes
    t = np.arange(n)
    centred = (t - t.mean()) / n
    for j in range(1, n):
        x = np.c_[np.ones(n), centred, centred**2, (t >= j).astype(float)]
        sizes[j] = np.linalg.lstsq(x, h, rcond=None)[0][3]
    return sizes


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
