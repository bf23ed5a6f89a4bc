"""The test-like validation quantity of training.calibration_weights: its weights and its RMSE against
hand-computed values."""

import numpy as np
import pytest

from training.calibration_weights import end_cycle_weights
from training.data import Unit
from training.studies.test_like_round import paired, validation_errors
from training.windows import unit_windows


def test_weights_follow_the_test_lengths_one_per_window_and_sum_to_one():
    # a 20-cycle unit, 50-cycle windows: windows end at cycles 10..20 (11 of them)
    assert len(unit_windows(Unit(1, np.zeros((20, 24), np.float32), 0.0), 50, 125.0)[1]) == 11
    # test units of 30 cycles reach end cycles 20..40: only the last window
    weights = end_cycle_weights(20, np.array([30]), 50)
    assert weights.shape == (11,) and weights[-1] == 1.0 and weights[:-1].sum() == 0.0
    # lengths 12 and 25: cycles 10..20 get 1 (from 12) and cycles 15..20 one more (from 25)
    weights = end_cycle_weights(20, np.array([12, 25]), 50)
    np.testing.assert_allclose(weights, np.array([1] * 5 + [2] * 6) / 17)
    # no test unit near: uniform rather than undefined
    np.testing.assert_allclose(end_cycle_weights(20, np.array([200]), 50), np.full(11, 1 / 11))


def test_validation_errors_weigh_each_unit_once_and_windows_by_test_length():
    units = [Unit(1, np.zeros((12, 24), np.float32), 0.0), Unit(2, np.zeros((14, 24), np.float32), 0.0)]
    # predicting 0 everywhere: the error is the truth, RUL 2..0 (unit 1, ends 10..12) and 4..0
    errors = validation_errors(lambda x: {"rul": np.zeros(len(x))}, units, 50, np.array([1000]))  # uniform
    every = np.concatenate([[2, 1, 0], [4, 3, 2, 1, 0]]) ** 2
    assert errors["every_window"] == pytest.approx(np.sqrt(every.mean()))
    assert errors["test_like"] == pytest.approx(np.sqrt(((4 + 1 + 0) / 3 + (16 + 9 + 4 + 1 + 0) / 5) / 2))
    # every test unit 24 cycles long: only end cycles 14..34, i.e. unit 2's last window (RUL 0);
    # unit 1 has none in reach and falls back to uniform
    errors = validation_errors(lambda x: {"rul": np.zeros(len(x))}, units, 50, np.array([24]))
    assert errors["test_like"] == pytest.approx(np.sqrt(((4 + 1 + 0) / 3 + 0) / 2))


FOLDS = (10.0, 11.0, 12.0, 13.0, 14.0)


def test_paired_rule_adopts_only_below_two_standard_errors():
    base = [{"q": v} for v in FOLDS]
    better = [{"q": v - d} for v, d in zip(FOLDS, (0.5, 0.6, 0.4, 0.5, 0.5), strict=True)]
    result = paired(base, better, "q")
    assert result["mean"] == pytest.approx(-0.5) and result["lower_on"] == 5 and result["adopt"]
    mixed = [{"q": v + d} for v, d in zip(FOLDS, (-1.0, 1.0, -1.0, 1.0, -0.5), strict=True)]
    assert not paired(base, mixed, "q")["adopt"]
