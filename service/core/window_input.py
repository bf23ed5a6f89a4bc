"""A window as the client sent it, checked before the model sees it: how errors name a
window, the readings' width and the client's cycle numbers (service/core/predictor.py shapes it)."""

from collections.abc import Sequence
from typing import Any

import numpy as np


def window_label(index: int, window_id: str | int | None) -> str:
    """How errors name a window: "window 3 (id 'engine-17')", or "window 3" without an id."""
    return f"window {index}" + (f" (id {window_id!r})" if window_id is not None else "")


class WindowError(ValueError):
    """A window the model cannot take; the message names the window and the problem."""

    def __init__(self, index: int, window_id: str | int | None, problem: str):
        super().__init__(f"{window_label(index, window_id)}: {problem}")


def column_problem(readings: Any, features: list[str]) -> str | None:
    """The first cycle whose width differs from the card's input features, described."""
    if isinstance(readings, np.ndarray) and readings.ndim == 2:
        readings = readings[:1]  # a table (schemas.py): every cycle has the first one's width
    for cycle, row in enumerate(readings):
        if len(row) != len(features):
            return (
                f"cycle {cycle} has {len(row)} columns; expected {len(features)}: "
                f"{features[0]} ... {features[-1]} (3 operational settings, then sensors 1-21)"
            )
    return None


def check_cycle_numbers(
    index: int, window_id: str | int | None, cycles: Sequence[int] | np.ndarray, n_cycles: int
) -> None:
    """WindowError unless `cycles` has one number per reading, each larger than the one before
    (oldest first): a decrease or a repeat names its position and both numbers."""
    if len(cycles) != n_cycles:
        raise WindowError(index, window_id, f"cycles has {len(cycles)} numbers for {n_cycles} cycles of "
                                            "readings; send one cycle number per reading")  # fmt: skip
    numbers = np.asarray(cycles, dtype=np.int64)
    bad = np.flatnonzero(np.diff(numbers) <= 0)
    if len(bad):
        at = int(bad[0]) + 1
        how = "repeats" if numbers[at] == numbers[at - 1] else "is lower than"
        problem = (f"cycles[{at}] = {numbers[at]} {how} cycles[{at - 1}] = {numbers[at - 1]}; cycle "
                   "numbers must increase (readings oldest first, each cycle once)")  # fmt: skip
        raise WindowError(index, window_id, problem)


FLOAT32_MAX = float(np.finfo(np.float32).max)  # 3.4e38


def not_finite(value: float, sent: Any = None) -> str:
    """How an error names a value that is not a finite float32 ("nan", "inf"), saying so when the
    number sent was finite but beyond float32's range (1e300 is read as inf)."""
    try:
        overflowed = sent is not None and np.isfinite(float(sent)) and np.isinf(value)
    except (TypeError, ValueError):
        overflowed = False
    if overflowed:
        return f"{value} ({float(sent):g} is beyond float32's ±{FLOAT32_MAX:.1e}: the model reads float32)"
    return str(value)
