"""The window the networks read when its order is in doubt (training/wear_order.py)."""

import numpy as np
import torch

from training.padding import fill_padding, real_rows
from training.wear_order import WearOrder

W = 12


def repaired(readings: np.ndarray, index: np.ndarray, in_doubt: list[bool]) -> np.ndarray:
    x = torch.from_numpy(readings.astype(np.float32))
    real = real_rows(x)
    with torch.no_grad():
        out = WearOrder(W)(fill_padding(x, real), torch.from_numpy(index.astype(np.float32)), real,
                           torch.tensor(in_doubt))  # fmt: skip
    return out.numpy()


def test_rows_in_doubt_are_sorted_by_wear_and_others_pass_untouched():
    rng = np.random.default_rng(0)
    readings = rng.normal(size=(3, W, 24))
    index = rng.normal(size=(3, W))
    out = repaired(readings, index, [True, False, True])
    for b in (0, 2):
        order = np.argsort(-index[b], kind="stable")  # least worn (highest index) first
        np.testing.assert_array_equal(out[b], readings[b][order].astype(np.float32))
    np.testing.assert_array_equal(out[1], readings[1].astype(np.float32))


def test_any_order_of_the_same_cycles_reads_the_same():
    rng = np.random.default_rng(1)
    window = rng.normal(size=(W, 24))
    index = np.linspace(100, 50, W) + rng.normal(size=W)  # falls with wear, plus noise
    orders = [np.arange(W), np.arange(W)[::-1], rng.permutation(W)]
    out = repaired(np.stack([window[o] for o in orders]), np.stack([index[o] for o in orders]), [True] * 3)
    np.testing.assert_array_equal(out[1], out[0])
    np.testing.assert_array_equal(out[2], out[0])


def test_padding_keeps_its_place_and_copies_the_new_first_cycle():
    rng = np.random.default_rng(2)
    readings = rng.normal(size=(1, W, 24))
    readings[0, :4] = np.nan  # 8 real cycles, padded in front
    index = np.r_[np.zeros(4), np.arange(8.0)]  # rising: newest first
    out = repaired(readings, index, [True])[0]
    real = readings[0, 4:][::-1].astype(np.float32)
    np.testing.assert_array_equal(out[4:], real)
    np.testing.assert_array_equal(out[:4], np.repeat(real[:1], 4, axis=0))


def test_ties_keep_the_order_sent():
    readings = np.arange(W * 24, dtype=np.float64).reshape(1, W, 24)
    out = repaired(readings, np.zeros((1, W)), [True])
    np.testing.assert_array_equal(out, readings.astype(np.float32))
