"""Training targets: piecewise-linear RUL and the three health states."""

import numpy as np

from training.constants import CRITICAL_MAX_RUL, DEGRADING_MAX_RUL, RUL_CAP


def rul_per_cycle(n_cycles: int, final_rul: float = 0.0, cap: float | None = RUL_CAP) -> np.ndarray:
    """True RUL at each of `n_cycles` cycles, oldest first, capped at `cap` (None: uncapped).

    A run-to-failure unit (final_rul=0) of 5 cycles -> [4, 3, 2, 1, 0].
    """
    rul = final_rul + np.arange(n_cycles - 1, -1, -1, dtype=np.float64)
    if cap is not None:
        rul = np.minimum(rul, cap)
    return rul.astype(np.float32)


def health_labels(
    rul: np.ndarray,
    critical_max: float = CRITICAL_MAX_RUL,
    degrading_max: float = DEGRADING_MAX_RUL,
) -> np.ndarray:
    """Per RUL value: 0 normal (> degrading_max), 1 degrading, 2 critical (<= critical_max)."""
    rul = np.asarray(rul)
    labels = np.zeros(rul.shape, dtype=np.int64)
    labels[rul <= degrading_max] = 1
    labels[rul <= critical_max] = 2
    return labels
