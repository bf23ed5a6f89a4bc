"""The input checks inside the graph: each fault flags its column and nothing else, clean
windows flag nothing, the front padding of a short window is not 'stuck', another engine
type's settings are out of distribution, and masking leaves clean windows unchanged."""

import numpy as np
import pytest
import torch

from training.constants import INFORMATIVE_SENSORS, INPUT_FEATURES
from training.data import load_subset
from training.preprocessing import Preprocessor, fit_preprocessing
from training.quality import OUT_OF_RANGE, SPIKE, STUCK, UNKNOWN_CONDITION, QualityCheck, fit_quality
from training.windows import last_windows, pad_front, split_by_unit

WINDOW = 30


@pytest.fixture(scope="module")
def fd001(cmapss_dir):
    return load_subset("FD001", cmapss_dir)


@pytest.fixture(scope="module")
def check(fd001):
    stats = fit_quality(fd001.train, 1, list(INFORMATIVE_SENSORS), WINDOW)
    return QualityCheck(stats, WINDOW).eval()


@pytest.fixture(scope="module")
def windows(fd001):
    x, _ = last_windows(fd001.test, WINDOW)
    return x  # (100, 30, 24), clean


def run(check, x):
    with torch.no_grad():
        flags, mask, ood = check(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    return flags.numpy(), mask.numpy(), ood.numpy()


def column(name):
    return INPUT_FEATURES.index(name)


def test_clean_test_windows_flag_nothing(check, windows):
    flags, mask, ood = run(check, windows)
    assert not flags.any() and not mask.any()
    assert (ood < 1.0).all()


@pytest.mark.parametrize(
    "fault, bit",
    [
        ("dead", OUT_OF_RANGE),
        ("spike", OUT_OF_RANGE | SPIKE),
        ("stuck", STUCK),
    ],
)
@pytest.mark.parametrize("sensor", ["s_4", "s_9", "s_11", "s_17"])
def test_each_fault_flags_its_column_and_nothing_else(check, windows, fault, bit, sensor):
    x = windows[:20].copy()
    j = column(sensor)
    if fault == "dead":
        x[:, :, j] = 0.0
    elif fault == "spike":
        x[:, -1, j] *= 10.0
    else:
        x[:, :, j] = x[:, :1, j]
    flags, mask, _ = run(check, x)
    others = np.delete(flags, j, axis=2)
    assert not others.any(), f"{fault} in {sensor} flagged another column"
    assert mask[:, j].all() and mask.sum() == len(x)
    assert ((flags[:, :, j] & bit) != 0).any(axis=1).all()
    if fault == "spike":  # the spiking cycle, and only it, is out of range
        assert (flags[:, -1, j] & OUT_OF_RANGE).all() and not (flags[:, :-1, j] & OUT_OF_RANGE).any()


def test_front_padding_of_a_short_window_is_not_stuck(check, fd001):
    short = np.stack([pad_front(u.readings[:12], WINDOW) for u in fd001.train[:10]])  # 18 repeated rows
    flags, mask, _ = run(check, short)
    assert not flags.any() and not mask.any()


def test_a_sensor_stuck_for_part_of_the_window_flags_those_cycles_only(check, windows):
    x = windows[:5].copy()
    j = column("s_11")
    x[:, 10:, j] = x[:, 10:11, j]  # stuck from cycle 10 on: 20 equal readings
    flags, _, _ = run(check, x)
    stuck = (flags[:, :, j] & STUCK) != 0
    assert stuck[:, 10:].all() and not stuck[:, :10].any()


def test_another_engine_types_settings_are_flagged_and_out_of_distribution(check, cmapss_dir):
    fd002 = load_subset("FD002", cmapss_dir)
    x, _ = last_windows(fd002.test[:50], WINDOW)
    flags, _, ood = run(check, x)
    assert ((flags[:, :, :3] & UNKNOWN_CONDITION) != 0).any(axis=(1, 2)).all()
    assert (ood > 1.0).all()


def test_thresholds_come_from_training_units_and_leave_validation_windows_unflagged(fd001):
    stats = fit_quality(fd001.train, 1, list(INFORMATIVE_SENSORS), WINDOW)
    _, val = split_by_unit(fd001.train, 0.2, 0)
    assert "80 training units" in stats.calibrated_on and "20 validation units" in stats.calibrated_on
    check = QualityCheck(stats, WINDOW).eval()
    x, _ = last_windows(val, WINDOW)
    flags, _, ood = run(check, x)
    assert not flags.any() and (ood < 1.0).all()


def test_masking_leaves_clean_features_unchanged_and_imputes_a_masked_one(fd001, windows):
    stats = fit_preprocessing(fd001.train, 1)
    prep = Preprocessor(stats)
    x = torch.from_numpy(windows[:8])
    none = torch.zeros(8, len(stats.feature_index), dtype=torch.bool)
    torch.testing.assert_close(prep(x, none), prep(x))
    masked = none.clone()
    masked[:, 2] = True  # s_4
    dead = x.clone()
    dead[:, :, column("s_4")] = 0.0
    imputed = prep(dead, masked)
    torch.testing.assert_close(imputed[..., [0, 1, *range(3, 14)]], prep(x)[..., [0, 1, *range(3, 14)]])
    # the estimate from the other sensors is far closer to the true z-score than 0.0 read raw
    true_z = prep(x)[..., 2]
    assert (imputed[..., 2] - true_z).abs().mean() < 1.0 < (prep(dead)[..., 2] - true_z).abs().mean()
