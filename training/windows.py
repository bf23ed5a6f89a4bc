"""Sliding windows over unit histories, front padding, and the split by whole units."""

import numpy as np

from training.constants import MIN_CYCLES, PADDING_RULE, TRAINING_PADDING
from training.data import Unit
from training.labels import rul_per_cycle


def pad_front(readings: np.ndarray, window_length: int, rule: str = TRAINING_PADDING) -> np.ndarray:
    """(T, C) with T < window_length -> (window_length, C): "edge" repeats the first cycle (what
    the networks train on), "nan" puts rows of NaN in front (what the exported graph is sent:
    training/padding.py; the graph fills them as "edge" does)."""
    missing = window_length - len(readings)
    if missing <= 0:
        return readings
    if rule == "edge":
        return np.pad(readings, ((missing, 0), (0, 0)), mode="edge")
    if rule == "nan":
        return np.concatenate([np.full((missing, readings.shape[1]), np.nan, readings.dtype), readings])
    raise ValueError(f"unknown padding rule {rule!r}; expected 'edge' or 'nan'")


def last_window(readings: np.ndarray, window_length: int, padding: str = PADDING_RULE) -> np.ndarray:
    """The last `window_length` cycles of (T, C), front-padded (as served) when T is shorter."""
    return pad_front(readings[-window_length:], window_length, padding)


def real_cycles(windows: np.ndarray) -> np.ndarray:
    """(N, W, C) NaN-padded windows -> (N,) how many rows are real (numpy's `real_rows`)."""
    padding = np.isnan(windows).all(axis=-1)  # (N, W)
    return windows.shape[1] - np.cumprod(padding, axis=1).sum(axis=1)


def cut_history(windows: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(N, W, C) windows -> copies that keep only the last lengths[i] (<= their real rows)
    cycles of window i, the rest NaN padding: what a client with a shorter history sends."""
    cut = windows.copy()
    keep = np.minimum(lengths, real_cycles(windows))
    rows = np.arange(windows.shape[1])[None, :] < (windows.shape[1] - keep)[:, None]  # (N, W)
    cut[rows] = np.nan
    return cut


def unit_windows(
    unit: Unit, window_length: int, cap: float | None, min_cycles: int = MIN_CYCLES,
    padding: str = TRAINING_PADDING,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """A window ending at every cycle from the `min_cycles`-th on, with its RUL target.

    Windows ending before cycle `window_length` are front-padded by `padding` ("edge" for
    the networks, "nan" for the exported graph, which fills it as "edge"), so training sees
    padded inputs, and every window length is validated on the same end cycles. Returns
    readings (N, W, C) and RUL (N,); a unit shorter than `min_cycles` still gives its one
    last window, so no unit is ever dropped.
    """
    readings = unit.readings
    rul = rul_per_cycle(len(readings), unit.final_rul, cap)
    first_end = min(min_cycles, window_length, len(readings))  # cycles in the first window
    padded = pad_front(readings, len(readings) + window_length - first_end, padding)
    # (N, C, W) view -> (N, W, C): the i-th window ends at cycle first_end + i
    windows = np.lib.stride_tricks.sliding_window_view(padded, window_length, axis=0)
    return np.ascontiguousarray(windows.transpose(0, 2, 1)), rul[first_end - 1 :]


def stack_windows(
    units: list[Unit], window_length: int, cap: float | None, min_cycles: int = MIN_CYCLES,
    padding: str = TRAINING_PADDING,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Windows of many units concatenated: (N, W, C) readings and (N,) RUL."""
    parts = [unit_windows(u, window_length, cap, min_cycles, padding) for u in units]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def last_windows(
    units: list[Unit], window_length: int, padding: str = PADDING_RULE
) -> tuple[np.ndarray, np.ndarray]:
    """Each unit's last window (N, W, C), padded as served, and its true, uncapped RUL (N,):
    the test protocol."""
    readings = np.stack([last_window(u.readings, window_length, padding) for u in units])
    return readings, np.array([u.final_rul for u in units], dtype=np.float32)


def split_by_unit(units: list[Unit], val_fraction: float, seed: int) -> tuple[list[Unit], list[Unit]]:
    """Shuffle whole units with `seed` and hold out `val_fraction` of them (at least one)."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1); got {val_fraction}")
    if len(units) < 2:
        raise ValueError(f"need at least 2 units to split; got {len(units)}")
    order = np.random.default_rng(seed).permutation(len(units))
    n_val = min(len(units) - 1, max(1, round(val_fraction * len(units))))
    return _hold_out(units, order[:n_val])


def fold_split(units: list[Unit], folds: int, fold: int, seed: int) -> tuple[list[Unit], list[Unit]]:
    """Cross-validation by whole units: shuffle with `seed`, deal the units into `folds`
    disjoint folds and hold out fold `fold`. The folds of one seed cover every unit once, so
    an ensemble of one member per fold has trained on every unit and validated on every unit."""
    if not 2 <= folds <= len(units):
        raise ValueError(f"folds must be between 2 and the number of units ({len(units)}); got {folds}")
    if not 0 <= fold < folds:
        raise ValueError(f"fold must be in [0, {folds}); got {fold}")
    order = np.random.default_rng(seed).permutation(len(units))
    return _hold_out(units, order[fold::folds])


def split_per_source(
    units: list[Unit], val_fraction: float, seed: int, folds: int = 0, fold: int = 0
) -> tuple[list[Unit], list[Unit]]:
    """`split_by_unit` (or with folds `fold_split`) within each source file of a data set that
    lists several, so that each file gives its share of validation units, the very units a
    model trained on that file alone would hold out: a mixed fleet and a file's specialist are
    then compared on the same validation units. One source: the plain split."""
    sources = list(dict.fromkeys(u.source for u in units))
    if len(sources) <= 1:
        return fold_split(units, folds, fold, seed) if folds else split_by_unit(units, val_fraction, seed)
    train, val = [], []
    for source in sources:
        own = [u for u in units if u.source == source]
        t, v = fold_split(own, folds, fold, seed) if folds else split_by_unit(own, val_fraction, seed)
        train, val = train + t, val + v
    return train, val


def _hold_out(units: list[Unit], val_positions: np.ndarray) -> tuple[list[Unit], list[Unit]]:
    """(training units, validation units), each in the original order."""
    val_idx = set(val_positions.tolist())
    train = [u for i, u in enumerate(units) if i not in val_idx]
    val = [u for i, u in enumerate(units) if i in val_idx]
    return train, val
