"""Evaluation metrics of the C-MAPSS protocol: RMSE (with a bootstrap interval over the test
units), the PHM08 score, health accuracy and macro-F1, and interval coverage."""

import numpy as np


def rmse(predicted: np.ndarray, true: np.ndarray) -> float:
    d = np.asarray(predicted, dtype=np.float64) - np.asarray(true, dtype=np.float64)
    return float(np.sqrt(np.mean(d**2)))


def _unit_draws(n_units: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n_units) indices: each row a resample of the units with replacement."""
    return np.random.default_rng(seed).integers(0, n_units, size=(resamples, n_units))


def _percentiles(values: np.ndarray, coverage: float) -> list[float]:
    tail = (1.0 - coverage) / 2.0
    return [float(np.quantile(values, tail)), float(np.quantile(values, 1.0 - tail))]


def bootstrap_rmse_interval(
    predicted: np.ndarray, true: np.ndarray, coverage: float = 0.9, resamples: int = 2000, seed: int = 0
) -> list[float]:
    """[low, high]: the percentile bootstrap interval of the RMSE over units (Efron & Tibshirani,
    "An Introduction to the Bootstrap", 1993): how far the RMSE of a test set of this many
    units moves by the luck of which units it holds. 100 test units leave a C-MAPSS RMSE
    uncertain by about +-1 cycle, as large as the differences between published models."""
    squared = (np.asarray(predicted, dtype=np.float64) - np.asarray(true, dtype=np.float64)) ** 2
    draws = _unit_draws(len(squared), resamples, seed)
    return _percentiles(np.sqrt(squared[draws].mean(axis=1)), coverage)


def bootstrap_rmse_difference_interval(
    predicted_a: np.ndarray,
    predicted_b: np.ndarray,
    true: np.ndarray,
    coverage: float = 0.9,
    resamples: int = 2000,
    seed: int = 0,
) -> list[float]:
    """[low, high]: the paired percentile bootstrap interval of RMSE(b) - RMSE(a) over the
    same units (each resample draws units, both models are scored on the drawn ones): whether
    two models' difference on one test set is more than the luck of which units it holds."""
    truth = np.asarray(true, dtype=np.float64)
    squared_a = (np.asarray(predicted_a, dtype=np.float64) - truth) ** 2
    squared_b = (np.asarray(predicted_b, dtype=np.float64) - truth) ** 2
    draws = _unit_draws(len(truth), resamples, seed)
    differences = np.sqrt(squared_b[draws].mean(axis=1)) - np.sqrt(squared_a[draws].mean(axis=1))
    return _percentiles(differences, coverage)


def phm08_score(predicted: np.ndarray, true: np.ndarray) -> float:
    """Saxena et al. (2008): sum of exp(-d/13) - 1 for early (d < 0), exp(d/10) - 1 for late
    predictions, d = predicted - true. Late predictions cost more."""
    d = np.asarray(predicted, dtype=np.float64) - np.asarray(true, dtype=np.float64)
    return float(np.sum(np.where(d < 0, np.exp(-d / 13.0) - 1.0, np.exp(d / 10.0) - 1.0)))


def accuracy(predicted: np.ndarray, true: np.ndarray) -> float:
    return float(np.mean(np.asarray(predicted) == np.asarray(true)))


def macro_f1(predicted: np.ndarray, true: np.ndarray, n_classes: int) -> float:
    """Unweighted mean of per-class F1 over the classes that occur in `true` or `predicted`
    (a class absent from both is skipped rather than counted as 0 or 1)."""
    predicted, true = np.asarray(predicted), np.asarray(true)
    scores = []
    for k in range(n_classes):
        tp = np.sum((predicted == k) & (true == k))
        fp = np.sum((predicted == k) & (true != k))
        fn = np.sum((predicted != k) & (true == k))
        if tp + fp + fn == 0:
            continue
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


def interval_coverage(true: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    true = np.asarray(true)
    return float(np.mean((true >= np.asarray(lower)) & (true <= np.asarray(upper))))
