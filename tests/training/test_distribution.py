"""The predictive distribution (training/distribution.py) on a synthetic model whose truth is
known: truth = prediction + noise of a known law, so every quantile is known too."""

import numpy as np
import pytest
import torch

from training.distribution import LEVELS, QuantileHead, calibrate_quantiles, level_offsets

WINDOW = 30


def normal_quantiles(levels: tuple[float, ...], scale: float) -> np.ndarray:
    return torch.distributions.Normal(0.0, scale).icdf(torch.tensor(levels, dtype=torch.float64)).numpy()


def binomial_band(n: int, level: float) -> tuple[float, float]:
    """The share's 99.7 % band for n draws at `level` (normal approximation, 3 s.d.)."""
    half = 3 * np.sqrt(level * (1 - level) / n)
    return level - half, level + half


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Predictions uniform on 0-110; truth = prediction + N(0, s) with s growing with the RUL
    (2 below 30, 6 in 31-80, 12 above: the bands' reason to exist); full windows."""
    rng = np.random.default_rng(seed)
    predicted = rng.uniform(0, 110, n)
    scale = np.select([predicted <= 30, predicted <= 80], [2.0, 6.0], 12.0)
    return predicted, predicted + rng.normal(0, scale), scale


def test_offsets_approach_the_known_quantiles_of_the_noise():
    rng = np.random.default_rng(0)
    predicted = rng.uniform(0, 20, 20_000)
    truth = predicted + rng.normal(0, 5.0, len(predicted))
    offsets = level_offsets(predicted, truth, np.ones(len(predicted)), list(LEVELS))
    np.testing.assert_allclose(offsets, normal_quantiles(LEVELS, 5.0), atol=0.35)
    assert np.all(np.diff(offsets) >= 0)


def test_new_windows_fall_below_each_quantile_at_its_level_within_the_binomial_band():
    predicted, truth, _ = synthetic(6_000, seed=1)
    bands = calibrate_quantiles(predicted, truth, np.ones(len(predicted)), np.full(len(predicted), WINDOW),
                                WINDOW, [30.0, 80.0], cap=1e9, calibrated_on="synthetic")  # fmt: skip
    new_predicted, new_truth, _ = synthetic(4_000, seed=2)
    head = QuantileHead(bands)
    with torch.no_grad():
        q = head(
            torch.tensor(new_predicted, dtype=torch.float32), torch.full((4_000,), float(WINDOW))
        ).numpy()
    q_unclamped = (
        new_predicted[:, None] + np.asarray(bands.offsets)[np.digitize(new_predicted, [30, 80], right=True)]
    )
    for j, level in enumerate(LEVELS):
        # below the median conservative from above (share < level), from the median up from below
        low, high = binomial_band(4_000, level)
        share = np.mean(new_truth < q_unclamped[:, j])
        assert low - 0.01 <= share <= high + 0.01, (level, share)
    np.testing.assert_allclose(q, np.maximum(q_unclamped, 0), atol=1e-3)  # the graph's: at least 0
    # each band has its own spread: the 90 % - 10 % width grows with the RUL as the noise does
    width = [o[LEVELS.index(0.9)] - o[LEVELS.index(0.1)] for o in bands.offsets]
    assert width[0] < width[1] < width[2]
    assert width == pytest.approx([2 * 1.2816 * s for s in (2.0, 6.0, 12.0)], rel=0.15)


def test_quantiles_above_the_cap_are_open_and_short_histories_get_their_band():
    predicted, truth, _ = synthetic(3_000, seed=3)
    used = np.full(len(predicted), WINDOW)
    used[:1_500] = 15  # half are short histories, made worse: twice the noise
    truth[:1_500] = predicted[:1_500] + 2 * (truth[:1_500] - predicted[:1_500])
    bands = calibrate_quantiles(predicted, truth, np.ones(len(predicted)), used, WINDOW, [30.0, 80.0],
                                cap=100.0, calibrated_on="synthetic")  # fmt: skip
    assert [b["cycles"] for b in bands.short_history] == [[10, 19], [20, 29]][:1]
    head = QuantileHead(bands)
    rul = torch.tensor([50.0, 50.0, 99.0])
    with torch.no_grad():
        q = head(rul, torch.tensor([15.0, 30.0, 30.0])).numpy()
    spread = q[:, LEVELS.index(0.9)] - q[:, LEVELS.index(0.1)]
    assert spread[0] > 1.5 * spread[1]  # the short history's band is wider
    assert np.isinf(q[2, -1]) and np.isfinite(q[2, 0])  # 99 + the top quantiles pass the cap of 100
    assert (np.diff(q[:2], axis=1) >= 0).all()


def test_the_evaluations_binomial_band_is_the_issues():
    """90 % of Binomial(n, p) / n: at risk 0.1, 5-15 % for 100 units and 7-13 % for 259."""
    from training.studies.distribution_eval import binomial_band

    assert binomial_band(100, 0.1) == pytest.approx((0.05, 0.15), abs=0.006)
    assert binomial_band(259, 0.1) == pytest.approx((0.07, 0.13), abs=0.006)
