import numpy as np
import pytest

from training.data import Unit
from training.windows import fold_split, last_window, last_windows, pad_front, split_by_unit, unit_windows


def _unit(n_cycles: int, unit_id: int = 1, final_rul: float = 0.0) -> Unit:
    readings = np.arange(n_cycles * 24, dtype=np.float32).reshape(n_cycles, 24)
    return Unit(unit_id, readings, final_rul)


def test_unit_windows_one_per_end_cycle_with_rul_of_last_cycle():
    windows, rul = unit_windows(_unit(10), window_length=4, cap=None, min_cycles=4)
    assert windows.shape == (7, 4, 24)
    np.testing.assert_array_equal(windows[0, :, 0], [0, 24, 48, 72])  # cycles 0-3
    np.testing.assert_array_equal(windows[-1, :, 0], [144, 168, 192, 216])  # cycles 6-9
    np.testing.assert_array_equal(rul, [6, 5, 4, 3, 2, 1, 0])


def test_unit_windows_before_window_length_are_front_padded_from_min_cycles():
    windows, rul = unit_windows(_unit(6), window_length=4, cap=None, min_cycles=2)
    assert windows.shape == (5, 4, 24)  # ending at cycles 1, 2, 3, 4, 5 (0-based)
    np.testing.assert_array_equal(windows[0, :, 0], [0, 0, 0, 24])  # 2 real cycles, padded
    np.testing.assert_array_equal(windows[1, :, 0], [0, 0, 24, 48])
    np.testing.assert_array_equal(windows[2, :, 0], [0, 24, 48, 72])  # first full window
    np.testing.assert_array_equal(rul, [4, 3, 2, 1, 0])


def test_unit_windows_end_cycles_do_not_depend_on_window_length():
    _, rul_short = unit_windows(_unit(50), window_length=20, cap=None, min_cycles=10)
    _, rul_long = unit_windows(_unit(50), window_length=40, cap=None, min_cycles=10)
    np.testing.assert_array_equal(rul_short, rul_long)
    assert len(rul_short) == 41


def test_unit_windows_exact_length_gives_one_window():
    windows, rul = unit_windows(_unit(4), window_length=4, cap=None, min_cycles=4)
    assert windows.shape == (1, 4, 24) and rul.tolist() == [0]


def test_unit_windows_unit_shorter_than_min_cycles_is_padded_not_dropped():
    windows, rul = unit_windows(_unit(2, final_rul=50), window_length=4, cap=125, min_cycles=3)
    assert windows.shape == (1, 4, 24)
    np.testing.assert_array_equal(windows[0, :, 0], [0, 0, 0, 24])
    assert rul.tolist() == [50]


def test_pad_front_repeats_first_cycle():
    padded = pad_front(np.array([[1.0, 2.0], [3.0, 4.0]]), 4)
    np.testing.assert_array_equal(padded, [[1, 2], [1, 2], [1, 2], [3, 4]])


def test_last_window_takes_final_cycles_of_long_history():
    np.testing.assert_array_equal(last_window(_unit(10).readings, 3)[:, 0], [168, 192, 216])


def test_last_windows_pairs_each_unit_with_its_true_rul():
    readings, rul = last_windows([_unit(10, 1, 112.0), _unit(2, 2, 7.0)], 4)
    assert readings.shape == (2, 4, 24)
    assert rul.tolist() == [112.0, 7.0]


def test_split_by_unit_is_disjoint_deterministic_and_whole_units():
    units = [_unit(5, unit_id=i) for i in range(1, 11)]
    train, val = split_by_unit(units, 0.2, seed=3)
    assert len(train) == 8 and len(val) == 2
    assert {u.unit_id for u in train}.isdisjoint({u.unit_id for u in val})
    assert [u.unit_id for u in split_by_unit(units, 0.2, seed=3)[1]] == [u.unit_id for u in val]


def test_split_by_unit_rejects_fraction_outside_zero_one():
    with pytest.raises(ValueError, match=r"val_fraction must be in \(0, 1\); got 1.0"):
        split_by_unit([_unit(5), _unit(5)], 1.0, seed=0)


def test_fold_split_deals_every_unit_into_exactly_one_validation_fold():
    units = [_unit(5, unit_id=i) for i in range(1, 12)]
    folds = [fold_split(units, 5, k, seed=4) for k in range(5)]
    held_out = [[u.unit_id for u in val] for _, val in folds]
    assert sorted(i for ids in held_out for i in ids) == list(range(1, 12))  # each unit once
    assert [len(ids) for ids in held_out] == [3, 2, 2, 2, 2]
    for train, val in folds:
        assert {u.unit_id for u in train} == set(range(1, 12)) - {u.unit_id for u in val}
    assert [u.unit_id for u in fold_split(units, 5, 2, seed=4)[1]] == held_out[2]  # deterministic


@pytest.mark.parametrize(
    ("folds", "fold", "message"),
    [(1, 0, r"folds must be between 2 and the number of units \(4\); got 1"),
     (5, 0, r"folds must be between 2 and the number of units \(4\); got 5"),
     (4, 4, r"fold must be in \[0, 4\); got 4")],
)  # fmt: skip
def test_fold_split_rejects_impossible_folds(folds, fold, message):
    with pytest.raises(ValueError, match=message):
        fold_split([_unit(5, unit_id=i) for i in range(4)], folds, fold, seed=0)
