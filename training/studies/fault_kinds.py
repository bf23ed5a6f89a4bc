"""The faults the fault evaluation (training/studies/fault_eval.py) injects: FAULTS change one
column of a unit's last cycles, WINDOW_FAULTS the whole window (order, repeats, history), each
with the check that should say so."""

from collections.abc import Callable

import numpy as np

# Each fault changes one column of a unit's last cycles (T, 24) -> (T, 24); `scale` is the
# column's robust scale (1.4826 MAD) in the training units, so the size of the drift and the
# noise is in units of the sensor's own spread.
FAULTS: dict[str, Callable[[np.ndarray, int, float, np.random.Generator], np.ndarray]] = {}


def fault(name: str) -> Callable:
    def register(fn: Callable) -> Callable:
        FAULTS[name] = fn
        return fn

    return register


@fault("dead (reads 0.0)")
def _dead(cycles: np.ndarray, column: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    cycles[:, column] = 0.0
    return cycles


@fault("stuck (first value repeated)")
def _stuck(cycles: np.ndarray, column: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    cycles[:, column] = cycles[0, column]
    return cycles


@fault("spike (last cycle x10)")
def _spike(cycles: np.ndarray, column: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    cycles[-1, column] *= 10.0
    return cycles


@fault("drift (0 to +8 scale over the window)")
def _drift(cycles: np.ndarray, column: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    cycles[:, column] += np.linspace(0.0, 8.0 * scale, len(cycles))
    return cycles


def _noise(size: float, last: int | None = None) -> Callable:
    """Gaussian noise of `size` robust s.d. on the column, over the window or its `last` cycles
    (a connector that has just come loose)."""

    def inject(cycles: np.ndarray, column: int, scale: float, rng: np.random.Generator) -> np.ndarray:
        rows = slice(-last, None) if last else slice(None)
        cycles[rows, column] += rng.normal(0.0, size * scale, len(cycles[rows]))
        return cycles

    return inject


FAULTS["noise (+3 scale Gaussian)"] = _noise(3.0)
FAULTS["noise (+2 scale Gaussian)"] = _noise(2.0)
FAULTS["noise (+1.5 scale Gaussian)"] = _noise(1.5)
FAULTS["noise (+3 scale Gaussian, the last 10 cycles)"] = _noise(3.0, last=10)


def _offset(size: float) -> Callable:
    def inject(cycles: np.ndarray, column: int, scale: float, rng: np.random.Generator) -> np.ndarray:
        cycles[:, column] += size * scale
        return cycles

    return inject


def _gain(factor: float) -> Callable:
    def inject(cycles: np.ndarray, column: int, scale: float, rng: np.random.Generator) -> np.ndarray:
        cycles[:, column] *= factor
        return cycles

    return inject


for _size in (2, 3, 4, 6):  # a calibration offset, constant over the window
    FAULTS[f"offset (+{_size} scale, constant)"] = _offset(float(_size))
for _factor in (1.01, 0.995):  # a gain (scale) error of the sensor
    FAULTS[f"scale error (x{_factor:g})"] = _gain(_factor)


# Faults of the whole window: a unit's last cycles (T, 24), oldest first, -> what the client
# sends, and the check that should say so.
def _repeat_latest(cycles: np.ndarray, count: int) -> np.ndarray:
    """The last `count` cycles replaced by the one before them (a reading copied to fill)."""
    cycles[-count:] = cycles[-count - 1]
    return cycles


WINDOW_FAULTS: dict[str, tuple[Callable[[np.ndarray, np.random.Generator], np.ndarray], str]] = {
    "cycles newest first": (lambda c, rng: c[::-1], "direction"),
    "cycles shuffled": (lambda c, rng: c[rng.permutation(len(c))], "direction"),
    "latest cycle repeated over the last 10": (lambda c, rng: _repeat_latest(c, 10), "repeated_cycles"),
    "latest cycle repeated over the last half": (
        lambda c, rng: _repeat_latest(c, len(c) // 2),
        "repeated_cycles",
    ),
    "every cycle sent twice": (lambda c, rng: np.repeat(c, 2, axis=0)[-len(c) :], "repeated_cycles"),
    "only 10 cycles of history": (lambda c, rng: c[-10:], "short_history"),
    "only 20 cycles of history": (lambda c, rng: c[-20:], "short_history"),
    "only 35 cycles of history": (lambda c, rng: c[-35:], "short_history"),
}
