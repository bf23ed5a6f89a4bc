"""The input checks inside the graph: each fault flags its column and nothing else, clean
windows flag nothing, the NaN padding of a short window is only a short history, cycles
sent newest first or a latest cycle repeated are window faults, a constant offset within range
is an inconsistent column, another engine's cycles inside a window are a discontinuity and a
sensor drifting slowly is a drifting column, another engine type's settings are out of
distribution, and masking leaves clean windows unchanged."""

import dataclasses

import numpy as np
import pytest
import torch

from training.constants import INFORMATIVE_SENSORS, INPUT_FEATURES
from training.data import load_subset
from training.input_checks import QualityCheck
from training.learned_checks import fit_order_check, fit_stitch_check
from training.order_check import OrderFit, load_detector, read_fit, reorder_index, save_fit, scores
from training.padding import fill_padding, real_rows
from training.preprocessing import Preprocessor, fit_preprocessing
from training.quality_fit import fit_quality, fitted_checks
from training.quality_stats import (
    DIRECTION,
    DISCONTINUITY,
    DRIFTING,
    INCONSISTENT,
    NOISY,
    OUT_OF_ORDER,
    OUT_OF_RANGE,
    REPEATED_CYCLES,
    SHORT_HISTORY,
    SPIKE,
    STUCK,
    UNKNOWN_CONDITION,
)
from training.stitch_check import OUTLIER_GAP, stitched_training_windows, threshold_of
from training.studies.order_errors import every_window
from training.windows import cut_history, last_windows, pad_front, real_cycles, split_by_unit

WINDOW = 30


@pytest.fixture(scope="module")
def fd001(cmapss_dir):
    return load_subset("FD001", cmapss_dir)


@pytest.fixture(scope="module")
def split(fd001):
    """The checks' statistics and the split of the units they were fitted on."""
    return fitted_checks(fd001.train, 1, list(INFORMATIVE_SENSORS), WINDOW)


@pytest.fixture(scope="module")
def order_fit(split):
    """The learned order check, trained once (as rul-train does) for the checks fitted here."""
    return fit_order_check(split, WINDOW)


@pytest.fixture(scope="module")
def stitch_fit(split):
    """The learned stitch check, trained once (as rul-train does) for the checks fitted here."""
    return fit_stitch_check(split, WINDOW)


@pytest.fixture(scope="module")
def check(fd001, order_fit, stitch_fit):
    stats = fit_quality(fd001.train, 1, list(INFORMATIVE_SENSORS), WINDOW, order_fit, stitch_fit=stitch_fit)
    return QualityCheck(stats, WINDOW).eval()


@pytest.fixture(scope="module")
def windows(fd001):
    x, _ = last_windows(fd001.test, WINDOW)
    return x[real_cycles(x) == WINDOW]  # clean, every one a full history of 30 cycles


def run(check, x, window_flags=False):
    """flags, mask, ood (and window flags) as the graph computes them on NaN-padded windows."""
    readings = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    with torch.no_grad():
        real = real_rows(readings)
        flags, mask, ood, per_window, _ = check(fill_padding(readings, real), real)
    out = flags.numpy(), mask.numpy(), ood.numpy()
    return (*out, per_window.numpy()) if window_flags else out


def column(name):
    return INPUT_FEATURES.index(name)


def test_clean_test_windows_flag_nothing(check, windows):
    flags, mask, ood, per_window = run(check, windows, window_flags=True)
    assert not flags.any() and not mask.any() and not per_window.any()
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


def test_nan_padding_of_a_short_window_is_a_short_history_and_nothing_else(check, fd001, windows):
    natural = np.stack([pad_front(u.readings[:12], WINDOW, "nan") for u in fd001.train[:10]])  # 18 NaN rows
    cut = cut_history(windows, np.arange(len(windows)) % 20 + 10)  # 10 to 29 of each unit's last cycles
    for short in (natural, cut):
        flags, mask, ood, per_window = run(check, short, window_flags=True)
        assert not flags.any() and not mask.any() and (ood < 1.0).all()
        assert (per_window == SHORT_HISTORY).all()


def test_the_same_history_padded_by_repeating_its_first_cycle_is_repeated_cycles(check, fd001):
    """The graph is told which rows are padding (NaN); 18 copies of a real cycle are what a
    client sends when it fills a window with one reading, and no training window has them."""
    edge = np.stack([pad_front(u.readings[:12], WINDOW, "edge") for u in fd001.train[:10]])
    flags, _, ood, per_window = run(check, edge, window_flags=True)
    assert (per_window & REPEATED_CYCLES).all() and (ood > 1.0).all()
    assert not (flags & STUCK).any()  # whole cycles repeated are not a stuck sensor


@pytest.mark.parametrize("repeats", [3, 10, 25])
def test_a_latest_cycle_repeated_to_fill_the_window_is_flagged(check, windows, repeats):
    x = windows.copy()
    x[:, -repeats:] = x[:, -repeats - 1 : -repeats]
    flags, mask, ood, per_window = run(check, x, window_flags=True)
    assert (per_window & REPEATED_CYCLES).all() and (ood > 1.0).all()
    assert not (flags & STUCK).any() and not mask.any()


def test_cycles_newest_first_run_the_wear_backwards_and_are_flagged(check, fd001):
    """Reversed, the last windows of engines with wear to see (true RUL <= 80) are flagged in
    nearly every case, and no clean one is; shuffled cycles are flagged as often."""
    x, rul = last_windows(fd001.test, WINDOW)
    worn = (real_cycles(x) == WINDOW) & (rul <= 80)
    reversed_x = x[worn][:, ::-1]
    _, _, ood, per_window = run(check, reversed_x, window_flags=True)
    assert ((per_window & DIRECTION) != 0).mean() >= 0.9 and (ood[(per_window & DIRECTION) != 0] > 1).all()
    _, _, _, clean = run(check, x[worn], window_flags=True)
    assert not (clean & DIRECTION).any()


def test_shuffled_cycles_of_a_worn_engine_jump_and_are_flagged(check, fd001):
    """Shuffled, the last windows of engines near failure (true RUL <= 30) jump back and forth
    in wear from cycle to cycle: nearly every one is flagged out_of_order or direction."""
    x, rul = last_windows(fd001.test, WINDOW)
    near = (real_cycles(x) == WINDOW) & (rul <= 30)
    rng = np.random.default_rng(3)
    shuffled = np.stack([w[rng.permutation(WINDOW)] for w in x[near]])
    _, _, ood, per_window = run(check, shuffled, window_flags=True)
    caught = (per_window & (OUT_OF_ORDER | DIRECTION)) != 0
    assert caught.mean() >= 0.9 and (ood[caught] > 1).all()
    _, _, _, clean = run(check, x[near], window_flags=True)
    assert not (clean & OUT_OF_ORDER).any()


def without_order_detector(check):
    return QualityCheck(dataclasses.replace(check.stats, order_detector=None), WINDOW).eval()


def test_the_learned_order_check_catches_the_newest_cycles_sent_newest_first(check, fd001):
    """The newest 20 of 30 cycles newest first, engines near failure: the health index's
    slope and successive differences miss most (the oldest cycles stay in order), the learned
    order check (training/order_check.py) flags nearly every one. (Shorter parts reversed, or
    the oldest cycles, are caught less often: docs/results/faults.md.)"""
    x, rul = last_windows(fd001.test, WINDOW)
    moved = x[(real_cycles(x) == WINDOW) & (rul <= 30)].copy()
    moved[:, -20:] = moved[:, -20:][:, ::-1]
    _, _, ood, per_window = run(check, moved, window_flags=True)
    caught = (per_window & OUT_OF_ORDER) != 0
    assert caught.mean() >= 0.9 and (ood[caught] > 1).all()
    _, _, _, by_index_alone = run(without_order_detector(check), moved, window_flags=True)
    assert ((by_index_alone & (OUT_OF_ORDER | DIRECTION)) != 0).mean() <= caught.mean() - 0.3


def test_the_learned_order_check_judges_full_windows_only_and_passes_clean_ones(check, fd001, windows):
    """A short history's leading rows are padding (it is short_history already): shuffled, it
    gets the same flags and score with or without the learned check. Every clean full test
    window, not only the last, is flagged out_of_order in at most 1 % of cases."""
    rng = np.random.default_rng(6)
    short = np.stack([np.r_[np.full((12, 24), np.nan), w[-18:][rng.permutation(18)]] for w in windows])
    with_check, without = (
        run(check, short, window_flags=True),
        run(without_order_detector(check), short, True),
    )
    for a, b in zip(with_check, without, strict=True):
        np.testing.assert_array_equal(a, b)
    every, _, _ = every_window(fd001.test, WINDOW)
    _, _, _, per_window = run(check, every, window_flags=True)
    assert ((per_window & OUT_OF_ORDER) != 0).mean() <= 0.01


def test_reorder_index_draws_every_order_fault_as_a_permutation():
    order = reorder_index(4000, WINDOW, torch.Generator().manual_seed(0))
    assert (order.sort(dim=1).values == torch.arange(WINDOW)).all()  # each row a permutation
    identity, newest_first = torch.arange(WINDOW), torch.arange(WINDOW - 1, -1, -1)
    assert (order == newest_first).all(dim=1).float().mean() > 0.1  # one kind in five
    rotated = ((order.roll(1, dims=1) + 1) % WINDOW == order).all(dim=1) & (order[:, 0] != 0)
    assert rotated.float().mean() > 0.1
    assert (order == identity).all(
        dim=1
    ).float().mean() < 0.05  # a part reversed or shuffled of length 1 only


def test_a_saved_order_check_round_trips_and_refuses_another_window_shape(check, tmp_path):
    fit = OrderFit(**check.stats.order_detector)
    save_fit(fit, tmp_path / "order_check.pt")
    back = read_fit(tmp_path / "order_check.pt")
    assert back.summary() == fit.summary() and back.state.keys() == fit.state.keys()
    z = torch.randn(8, WINDOW, len(check.stats.columns))
    n = len(check.stats.columns)
    np.testing.assert_array_equal(
        scores(load_detector(dataclasses.asdict(back), n, WINDOW), z),
        scores(load_detector(check.stats.order_detector, n, WINDOW), z),
    )
    with pytest.raises(ValueError, match=f"windows of {WINDOW} cycles, not {n} and {WINDOW + 5}"):
        load_detector(dataclasses.asdict(back), n, WINDOW + 5)


def test_one_faulty_sensor_does_not_make_the_window_look_out_of_order(check, windows):
    """The window checks read the health index with flagged columns imputed: a spike or a dead
    sensor is that column's flag only (in all but the odd window already near a threshold)."""
    for fault in ("spike", "dead"):
        x = windows.copy()
        if fault == "spike":
            x[:, 25, column("s_11")] *= 10.0
        else:
            x[:, :, column("s_11")] = 0.0
        _, _, _, per_window = run(check, x, window_flags=True)
        assert (per_window != 0).mean() <= 0.02, fault


@pytest.mark.parametrize("offset", [3.0, 6.0])
@pytest.mark.parametrize("sensor", ["s_4", "s_7", "s_11", "s_12", "s_15", "s_21"])
def test_a_constant_offset_is_flagged_in_its_column_and_masked(check, windows, sensor, offset):
    """A constant offset of some robust s.d. on one sensor for the whole window: where it stays
    inside the range (no per-cycle check fires) it disagrees with the other sensors; either way
    that column, and only it, is flagged and masked."""
    j = column(sensor)
    k = check.stats.column_index.index(j)
    x = windows.copy()
    x[:, :, j] += offset * check.stats.scale[0][k]
    flags, mask, _ = run(check, x)
    in_range = ~(flags & (OUT_OF_RANGE | SPIKE | STUCK)).any(axis=(1, 2))
    caught = (flags[:, :, j] != 0).any(axis=1)
    assert caught.mean() >= 0.95
    assert ((flags[in_range & caught][:, :, j] & INCONSISTENT) != 0).all()
    assert mask[caught, j].all() and (mask.sum(axis=1)[caught] == 1).all()
    assert not np.delete(flags, j, axis=2)[caught].any()


@pytest.mark.parametrize("level", [2.0, 3.0])
@pytest.mark.parametrize("sensor", ["s_2", "s_9", "s_11", "s_14", "s_17", "s_21"])
def test_a_noisy_sensor_is_flagged_in_its_column_and_masked(check, windows, sensor, level):
    """Gaussian noise of some robust s.d. on one sensor, its mean near 0 (`inconsistent` misses
    it): flagged in that column (noisy, or a spike where one jump is large), and masked."""
    j = column(sensor)
    k = check.stats.column_index.index(j)
    x = windows.copy()
    noise = np.random.default_rng(k).standard_normal(x.shape[:2])
    x[:, :, j] += level * check.stats.scale[0][k] * noise
    flags, mask, _ = run(check, x)
    caught = (flags[:, :, j] != 0).any(axis=1)
    assert caught.mean() >= 0.97
    assert mask[caught, j].all() and (mask.sum(axis=1)[caught] == 1).all()
    assert not (np.delete(flags, j, axis=2) & NOISY).any()


@pytest.mark.parametrize("sensor", ["s_2", "s_9", "s_11", "s_14", "s_17", "s_21"])
def test_noise_within_range_and_under_the_jump_threshold_is_the_noisy_check(check, windows, sensor):
    """A sensor reading its window's mean +- a, the sign drawn at random each cycle (and never the
    same value twice): no reading out of range, no jump (about 2a) over the spike threshold, no
    run of equal values, so no per-cycle check fires; its
    residual from the other sensors varies from cycle to cycle as no validation window's does."""
    j = column(sensor)
    k = check.stats.column_index.index(j)
    a = 0.4 * check.stats.jump_z[k] * check.stats.scale[0][k]  # jumps under 0.81 x the spike threshold
    x = windows.copy()
    rng = np.random.default_rng(k)
    signs = rng.choice([-1.0, 1.0], size=x.shape[:2]) + 0.01 * rng.random(x.shape[:2])  # no two equal
    x[:, :, j] = x[:, :, j].mean(axis=1, keepdims=True) + a * signs
    flags, mask, _ = run(check, x)
    assert ((flags[:, :, j] & (OUT_OF_RANGE | SPIKE | STUCK)) != 0).any(axis=1).mean() <= 0.05
    noisy = ((flags[:, :, j] & NOISY) != 0).all(axis=1)  # every real cycle of the column
    assert noisy.mean() >= 0.95
    assert mask[noisy, j].all() and (mask.sum(axis=1)[noisy] == 1).all()
    assert not (np.delete(flags, j, axis=2) & NOISY).any()


@pytest.mark.parametrize(
    ("where", "k"),
    [("end", 1), ("start", 1), *((where, k) for where in ("end", "middle", "start") for k in (3, 8, 15))],
)
def test_another_engines_cycles_inside_the_window_are_a_discontinuity(check, fd001, where, k):
    """k cycles of a healthy engine (another training unit's first cycles) put into the last
    window of worn test engines (true RUL <= 40), at the end, in the middle or at the start:
    their wear differs by 100+ cycles, so the health index steps where the two meet. Flagged
    discontinuity, out of distribution; the same windows clean are not. (One foreign cycle in
    the middle is caught about half the time, and moves the answer by under a cycle:
    docs/results/continuity.md.)"""
    x, rul = last_windows(fd001.test, WINDOW)
    worn = x[(real_cycles(x) == WINDOW) & (rul <= 40)]
    donors = [u.readings for u in fd001.train[: len(worn)]]
    stitched = worn.copy()
    at = {"end": WINDOW - k, "middle": WINDOW // 2 - k // 2, "start": 0}[where]
    for i, donor in enumerate(donors):
        stitched[i, at : at + k] = donor[5 : 5 + k]
    _, _, ood, per_window = run(check, stitched, window_flags=True)
    caught = (per_window & DISCONTINUITY) != 0
    assert caught.mean() >= (0.6 if k == 1 else 0.8), caught.mean()
    assert (ood[caught] > 1.0).all()
    assert not (run(check, worn, window_flags=True)[3] & DISCONTINUITY).any()


@pytest.mark.parametrize("k", [5, 12])
def test_the_learned_stitch_check_catches_stitched_windows_the_step_checks_pass(check, fd001, windows, k):
    """Every full test window with its last k cycles taken from another test engine at a random
    point of its life (any wear, so many junctions are faint): the learned stitch check
    (training/stitch_check.py) flags windows the step checks alone pass, and with it most are
    flagged discontinuity; the clean windows are not (test_clean_test_windows_flag_nothing)."""
    rng = np.random.default_rng(k)
    donors = [u.readings for u in fd001.test if len(u.readings) >= 40]
    stitched = windows.copy()
    for i in range(len(stitched)):
        donor = donors[rng.integers(len(donors))]
        start = rng.integers(len(donor) - k + 1)
        stitched[i, -k:] = donor[start : start + k]
    with_it = (run(check, stitched, window_flags=True)[3] & DISCONTINUITY) != 0
    steps_only = QualityCheck(dataclasses.replace(check.stats, stitch_detector=None), WINDOW).eval()
    without = (run(steps_only, stitched, window_flags=True)[3] & DISCONTINUITY) != 0
    assert (with_it & ~without).sum() >= 0.05 * len(stitched), ((with_it & ~without).sum(), len(stitched))
    assert with_it.mean() >= 0.6, with_it.mean()
    assert not (without & ~with_it).any()  # the learned check only adds


def test_the_stitch_threshold_leaves_out_only_a_unit_far_above_the_others():
    """The largest validation score, but a unit whose windows score more than OUTLIER_GAP above
    every other unit's (a step of its own) does not set it. Unit ids as a data set names them
    (text in the mixed fleet and in a TOML data set)."""
    owners = np.array(["a/1", "a/1", "b/2", "b/2", "c"])
    assert threshold_of(np.array([0.5, 2.0, 1.0, 1.5, 0.2]), owners)[0] == 2.0
    close = np.array([0.5, 2.0 + OUTLIER_GAP - 0.1, 1.0, 2.0, 0.2])
    assert threshold_of(close, owners)[0] == pytest.approx(2.0 + OUTLIER_GAP - 0.1)
    far = np.array([0.5, 2.0 + OUTLIER_GAP + 0.1, 1.0, 2.0, 0.2])
    value, how = threshold_of(far, owners)
    assert value == 2.0 and "but unit a/1's" in how


def test_the_learned_stitch_check_judges_histories_of_ten_cycles_on(check, windows):
    """A history shorter than the stitch check's MIN_CYCLES is never flagged by it: the
    step checks alone judge it (as without the learned check)."""
    short = cut_history(windows, np.full(len(windows), 8))
    steps_only = QualityCheck(dataclasses.replace(check.stats, stitch_detector=None), WINDOW).eval()
    np.testing.assert_array_equal(run(check, short, True)[3], run(steps_only, short, True)[3])


@pytest.mark.parametrize("direction", [1.0, -1.0])
@pytest.mark.parametrize("sensor", ["s_3", "s_7", "s_11", "s_12", "s_20"])
def test_a_sensor_drifting_slowly_is_flagged_drifting_in_its_column_and_masked(
    check, windows, sensor, direction
):
    """One sensor ramping from 0 to 3 robust s.d. over the window (calibration drift, fouling),
    either way: its residual from the others trends; that column is flagged (drifting, or
    another per-cycle check where the ramp leaves the range) and masked, and no other."""
    j = column(sensor)
    k = check.stats.column_index.index(j)
    x = windows.copy()
    x[:, :, j] += direction * np.linspace(0.0, 3.0, WINDOW) * check.stats.scale[0][k]
    flags, mask, _ = run(check, x)
    caught = (flags[:, :, j] != 0).any(axis=1)
    assert caught.mean() >= 0.9, caught.mean()
    assert ((flags[:, :, j] & DRIFTING) != 0).any(axis=1).mean() >= 0.5
    assert mask[caught, j].all() and (mask.sum(axis=1)[caught] == 1).all()


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


def test_thresholds_come_from_training_units_and_leave_validation_windows_unflagged(fd001, order_fit):
    stats = fit_quality(fd001.train, 1, list(INFORMATIVE_SENSORS), WINDOW, order_fit)
    _, val = split_by_unit(fd001.train, 0.2, 0)
    assert "80 training units" in stats.calibrated_on and "20 validation units" in stats.calibrated_on
    check = QualityCheck(stats, WINDOW).eval()
    x, _ = last_windows(val, WINDOW)
    flags, _, ood, per_window = run(check, x, window_flags=True)
    assert not flags.any() and not (per_window & ~(SHORT_HISTORY | DISCONTINUITY)).any()
    # the discontinuity threshold is 1.25 x the 99.5th percentile of the validation windows'
    # statistic (training/quality_fit.py STEP_QUANTILE): a validation unit's own end of life
    # may pass it, never more than 0.5 % of all its windows
    every = np.stack([u.readings[e - WINDOW : e] for u in val for e in range(WINDOW, len(u.readings) + 1)])
    _, _, every_ood, every_window = run(check, every, window_flags=True)
    assert ((every_window & DISCONTINUITY) != 0).mean() <= 0.005
    assert ((every_ood > 1.0) & ((every_window & DISCONTINUITY) == 0)).mean() <= 0.005


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


def test_stitched_training_windows_take_a_block_of_another_window_and_keep_edge_padding():
    """`rul-train --stitch-prob`: a chosen window keeps its own cycles but for one block of
    consecutive cycles of another window of the batch, at most half its real history; its
    padding stays the first real cycle repeated (as the networks train); the others are
    untouched; a share of 0 changes nothing and draws nothing."""
    rng = np.random.default_rng(0)
    w, c = 20, 3
    batch = torch.from_numpy(rng.normal(size=(64, w, c)).astype(np.float32))
    real = torch.from_numpy(rng.integers(4, w + 1, 64))
    for i, n in enumerate(real.tolist()):
        batch[i, : w - n] = batch[i, w - n]  # edge padding
    generator = torch.Generator().manual_seed(0)
    out = stitched_training_windows(batch, 0.5, generator)
    changed = (out != batch).any(dim=2)  # (B, W)
    stitched_rows = changed.any(dim=1)
    assert 16 < int(stitched_rows.sum()) < 48
    rows_of = {tuple(r.tolist()): i for i, window in enumerate(batch) for r in window}
    for i in torch.nonzero(stitched_rows).squeeze(1).tolist():
        n = int(real[i])
        first = w - n
        block = [t for t in range(first, w) if changed[i, t]]
        assert 1 <= len(block) <= max(n // 2, 1) and block == list(range(block[0], block[-1] + 1))
        donors = {rows_of[tuple(out[i, t].tolist())] for t in block}
        assert len(donors) == 1 and donors != {i}
        assert (out[i, :first] == out[i, first]).all()  # padding: the new first row repeated
    assert torch.equal(out[~stitched_rows], batch[~stitched_rows])
    before = generator.get_state()
    assert stitched_training_windows(batch, 0.0, generator) is batch
    assert torch.equal(generator.get_state(), before)
