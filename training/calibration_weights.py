"""Test-like weights of validation windows: each validation unit counts once and, within a
unit, the window ending at cycle e is weighted by how many of the subset's **test units were
observed for e cycles, within +-BANDWIDTH cycles** (their lengths are inputs, known at
prediction time; no test label is used). The interval calibration (train.py, export.py) weighs
its validation windows so, and round 8's test-like validation RMSE
(training/studies/test_like_round.py, docs/results/rounds.md round 8) is built on it.
"""

import numpy as np

from training.constants import MIN_CYCLES
from training.data import Unit

BANDWIDTH = 10  # cycles either side of a test unit's length


def end_cycle_weights(unit_cycles: int, test_lengths: np.ndarray, window_length: int) -> np.ndarray:
    """Weights of the windows `unit_windows` makes for a unit of `unit_cycles` cycles (one
    per end cycle, oldest first), summing to 1: the number of test units whose length lies
    within BANDWIDTH cycles of the end cycle. Uniform when no test unit is that short."""
    first_end = min(MIN_CYCLES, window_length, unit_cycles)
    ends = np.arange(first_end, unit_cycles + 1)
    counts = (np.abs(ends[:, None] - test_lengths[None, :]) <= BANDWIDTH).sum(axis=1).astype(np.float64)
    if counts.sum() == 0:
        counts[:] = 1.0
    return counts / counts.sum()


def window_weights(units: list[Unit], test_units: list[Unit], window_length: int) -> np.ndarray:
    """Test-like weights of every window `stack_windows` makes of `units`, in its order: each
    unit sums to 1 (`end_cycle_weights`, from the test units' lengths alone)."""
    test_lengths = np.array([len(u.readings) for u in test_units])
    return np.concatenate([end_cycle_weights(len(u.readings), test_lengths, window_length) for u in units])
