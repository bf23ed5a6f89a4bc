import numpy as np
import torch

from training.intervals import (
    IntervalBands,
    IntervalHead,
    band_index,
    calibrate_uncapped,
    conformal_one_sided,
    interval_bounds,
)
from training.metrics import interval_coverage


def test_conformal_one_sided_is_the_finite_sample_quantile():
    scores = np.arange(1, 20, dtype=float)  # n = 19
    assert conformal_one_sided(scores, 0.9) == 18.0  # ceil(20 * 0.9) = 18th smallest


def test_conformal_one_sided_takes_largest_when_rank_exceeds_n_and_never_goes_below_zero():
    assert conformal_one_sided(np.array([1.0, -5.0, 2.0]), 0.9) == 2.0  # ceil(4 * 0.9) = 4 > 3
    assert conformal_one_sided(np.array([-3.0, -2.0, -1.0]), 0.5) == 0.0


def test_two_sided_conformal_interval_covers_nominal_share_on_synthetic_data():
    rng = np.random.default_rng(0)
    calib, test = rng.normal(0, 5, 2000), rng.normal(0, 5, 20000)
    below, above = conformal_one_sided(-calib, 0.95), conformal_one_sided(calib, 0.95)
    assert 0.88 <= interval_coverage(test, -below * np.ones_like(test), above * np.ones_like(test)) <= 0.92


def test_band_index_uses_upper_edges_inclusive():
    np.testing.assert_array_equal(band_index(np.array([0, 30, 30.5, 80, 81]), [30, 80]), [0, 0, 1, 1, 2])


def test_mondrian_bands_cover_each_band_on_heteroscedastic_synthetic_data():
    """Noise grows with the RUL: one width would over-cover near failure and under-cover far
    from it; per-band widths keep every band near 90 %."""
    rng = np.random.default_rng(1)

    def sample(n):
        true = rng.uniform(0, 125, n)
        return true + rng.normal(0, 1 + 0.15 * true), true  # predicted, true

    # no cap in reach: every interval closed, each band's two sides at 95 %
    bands = calibrate_uncapped(*sample(6000), [30, 80], 0.9, 10_000.0, "synthetic")
    predicted, true = sample(60000)
    lower, upper = interval_bounds(predicted, bands)
    assert bands.half_widths[0] < bands.half_widths[1] < bands.half_widths[2]
    for k in range(3):
        in_k = band_index(predicted, bands.edges) == k
        assert 0.87 <= interval_coverage(true[in_k], lower[in_k], upper[in_k]) <= 0.93


def test_interval_head_matches_numpy_bounds():
    bands = IntervalBands([30.0, 80.0], [4.0, 12.0, 25.0], 0.9, "test")
    rul = np.array([2.0, 30.0, 55.0, 120.0], dtype=np.float32)
    lower, upper = IntervalHead(bands)(torch.from_numpy(rul))
    np.testing.assert_allclose(lower.numpy(), [0.0, 26.0, 43.0, 95.0])
    np.testing.assert_allclose(upper.numpy(), [6.0, 34.0, 67.0, 145.0])
    np.testing.assert_allclose(
        np.stack(interval_bounds(rul, bands)), np.stack([lower.numpy(), upper.numpy()])
    )


def test_conformal_one_sided_is_the_finite_sample_quantile_and_never_negative():
    assert conformal_one_sided(np.arange(1, 20, dtype=float), 0.9) == 18.0
    assert conformal_one_sided(np.array([-5.0, -4.0, -3.0]), 0.5) == 0.0


def capped_network_sample(rng, n):
    """A network trained on RUL capped at 125: below the cap it tracks the truth with noise,
    above it it says about 120 whatever the truth (up to 300)."""
    true = rng.uniform(0, 300, n)
    predicted = np.minimum(true, 120.0) + rng.normal(0, 4 + 0.08 * np.minimum(true, 125), n)
    return np.clip(predicted, 0, None), true


def test_uncapped_calibration_opens_above_the_cap_and_covers_the_uncapped_truth():
    rng = np.random.default_rng(2)
    bands = calibrate_uncapped(*capped_network_sample(rng, 8000), [30, 80], 0.9, 125.0, "synthetic")
    predicted, true = capped_network_sample(rng, 80000)
    lower, upper = interval_bounds(predicted, bands)
    is_open = np.isinf(upper)
    assert is_open[predicted > 110].all() and not is_open[predicted < 60].any()
    assert 0.88 <= interval_coverage(true, lower, upper) <= 0.92
    assert 0.87 <= interval_coverage(true[~is_open], lower[~is_open], upper[~is_open]) <= 0.95
    assert np.all(upper[~is_open] <= 125.0)  # a closed upper bound never claims more than the cap


def test_interval_head_matches_numpy_bounds_when_open():
    bands = IntervalBands(
        [30.0, 80.0], [4.0, 12.0, 25.0], 0.9, "test", [5.0, 15.0, 60.0], [3.0, 9.0, 20.0], 125.0
    )
    rul = np.array([2.0, 30.0, 55.0, 100.0], dtype=np.float32)
    lower, upper = IntervalHead(bands)(torch.from_numpy(rul))
    np.testing.assert_allclose(lower.numpy(), [0.0, 26.0, 43.0, 80.0])  # open: the one-sided width 20
    np.testing.assert_allclose(upper.numpy(), [7.0, 35.0, 70.0, np.inf])
    np.testing.assert_allclose(
        np.stack(interval_bounds(rul, bands)), np.stack([lower.numpy(), upper.numpy()])
    )
