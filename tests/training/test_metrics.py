import numpy as np
import pytest

from training.metrics import (
    accuracy,
    bootstrap_rmse_difference_interval,
    bootstrap_rmse_interval,
    macro_f1,
    phm08_score,
    rmse,
)


def test_rmse_hand_computed():
    assert rmse(np.array([10.0, 20.0]), np.array([13.0, 16.0])) == pytest.approx(np.sqrt(12.5))


def test_bootstrap_rmse_interval_hand_computed_for_two_units():
    # squared errors 0 and 4; two draws give mean 0 (p 1/4), 2 (p 1/2) or 4 (p 1/4):
    # RMSE 0, sqrt(2), 2, so the 5th and 95th percentiles are 0 and 2.
    assert bootstrap_rmse_interval(np.array([0.0, 2.0]), np.array([0.0, 0.0])) == [0.0, 2.0]


def test_bootstrap_rmse_interval_narrows_with_more_units_and_holds_the_rmse():
    rng = np.random.default_rng(1)
    errors = rng.normal(0.0, 10.0, size=10_000)
    few = bootstrap_rmse_interval(errors[:100], np.zeros(100))
    many = bootstrap_rmse_interval(errors, np.zeros(10_000))
    assert few[0] < rmse(errors[:100], np.zeros(100)) < few[1]
    assert many[0] < 10.0 < many[1]
    assert many[1] - many[0] < (few[1] - few[0]) / 5  # 100x the units: ~1/10 the width


def test_bootstrap_rmse_difference_interval_is_paired():
    truth = np.array([0.0, 0.0])
    # a is exact, b misses the second unit by 2: RMSE(b) - RMSE(a) is RMSE(b), as above
    assert bootstrap_rmse_difference_interval(truth, np.array([0.0, 2.0]), truth) == [0.0, 2.0]
    # the same model twice differs by exactly 0 on every resample, however noisy its errors
    noisy = np.random.default_rng(2).normal(0.0, 20.0, size=100)
    assert bootstrap_rmse_difference_interval(noisy, noisy, np.zeros(100)) == [0.0, 0.0]
    # b = a with every error shrunk by 10 %: lower on every resample, although the unpaired
    # intervals of the two RMSEs overlap
    diff = bootstrap_rmse_difference_interval(noisy, 0.9 * noisy, np.zeros(100))
    assert diff[1] < 0
    zeros = np.zeros(100)
    assert bootstrap_rmse_interval(0.9 * noisy, zeros)[1] > bootstrap_rmse_interval(noisy, zeros)[0]


def test_phm08_score_penalises_late_more_than_early():
    # d = -13 -> e^1 - 1; d = +10 -> e^1 - 1; d = 0 -> 0
    assert phm08_score(np.array([0.0, 20.0, 5.0]), np.array([13.0, 10.0, 5.0])) == pytest.approx(
        2 * (np.e - 1)
    )
    assert phm08_score(np.array([15.0]), np.array([10.0])) > phm08_score(np.array([5.0]), np.array([10.0]))


def test_accuracy_and_macro_f1_hand_computed():
    true = np.array([0, 0, 1, 2])
    pred = np.array([0, 1, 1, 2])
    assert accuracy(pred, true) == 0.75
    # F1: class 0 = 2/3, class 1 = 2/3, class 2 = 1
    assert macro_f1(pred, true, 3) == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)


def test_macro_f1_skips_class_absent_from_truth_and_predictions():
    assert macro_f1(np.array([0, 1]), np.array([0, 1]), 3) == 1.0
