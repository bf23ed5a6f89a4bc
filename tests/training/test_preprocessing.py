import numpy as np
import pytest
import torch

from training.constants import INFORMATIVE_SENSORS, INPUT_FEATURES
from training.data import Unit, load_subset
from training.preprocessing import Preprocessor, assign_conditions, fit_preprocessing


@pytest.fixture(scope="module")
def fd002(cmapss_dir):
    return load_subset("FD002", cmapss_dir)


def test_fit_finds_six_operating_conditions_in_fd002(fd002):
    stats = fit_preprocessing(fd002.train, 6)
    rows = np.concatenate([u.readings for u in fd002.train])
    counts = np.bincount(assign_conditions(rows[:, :3].astype(np.float64), stats), minlength=6)
    assert len(counts) == 6 and counts.min() > 0.1 * len(rows)  # six well-populated regimes
    # every row sits on its centroid: the regimes are tight clusters in settings space
    scaled = rows[:, :3] / np.asarray(stats.settings_scale)
    nearest = np.asarray(stats.centroids)[assign_conditions(rows[:, :3].astype(np.float64), stats)]
    assert np.abs(scaled - nearest).max() < 0.05


def test_normalised_training_features_have_zero_mean_unit_std_per_condition(fd002):
    stats = fit_preprocessing(fd002.train, 6)
    rows = np.concatenate([u.readings for u in fd002.train])
    out = Preprocessor(stats)(torch.from_numpy(rows[None])).numpy()[0].astype(np.float64)  # (N, F)
    condition = assign_conditions(rows[:, :3].astype(np.float64), stats)
    for k in range(6):
        # atol 5e-3: the graph is float32, and a mean of ~9000 (s_9) is stored to ~5e-4
        np.testing.assert_allclose(out[condition == k].mean(axis=0), 0.0, atol=5e-3)
        np.testing.assert_allclose(out[condition == k].std(axis=0), 1.0, atol=1e-3)


def test_preprocessor_selects_informative_sensors_in_order():
    rng = np.random.default_rng(0)
    units = [Unit(1, rng.normal(size=(50, 24)).astype(np.float32), 0.0)]
    stats = fit_preprocessing(units, 1)
    assert stats.feature_names == list(INFORMATIVE_SENSORS)
    assert stats.feature_index == [INPUT_FEATURES.index(s) for s in INFORMATIVE_SENSORS]
    x = torch.from_numpy(units[0].readings[None])  # (1, 50, 24)
    expected = (units[0].readings[:, stats.feature_index] - np.array(stats.mean[0])) / np.array(stats.std[0])
    np.testing.assert_allclose(Preprocessor(stats)(x)[0].numpy(), expected, rtol=1e-4, atol=1e-5)


def test_varying_selection_drops_sensors_constant_in_every_condition(cmapss_dir):
    fd001 = load_subset("FD001", cmapss_dir)
    stats = fit_preprocessing(fd001.train, 1, sensors="varying")
    # FD001: s_1, s_5, s_10, s_16, s_18, s_19 never change; s_6 takes two values
    assert stats.feature_names == ["s_2", "s_3", "s_4", "s_6", "s_7", "s_8", "s_9", "s_11", "s_12",
                                   "s_13", "s_14", "s_15", "s_17", "s_20", "s_21"]  # fmt: skip


def test_unknown_sensor_selection_is_refused(fd002):
    with pytest.raises(ValueError, match="unknown sensor selection 'all'; expected one of standard, varying"):
        fit_preprocessing(fd002.train[:3], 1, sensors="all")
