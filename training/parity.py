"""Whether an exported graph computes what PyTorch does: every output compared on the same
raw windows (clean ones and `faulty_copies` of them, so that the input checks and the masking
are compared too), within tolerances fixed here; rul-export refuses a graph that is not."""

from pathlib import Path

import numpy as np
import onnxruntime as ort

from training.checkpoint import OUTPUT_NAMES
from training.evaluate import PredictFn

PARITY_TOLERANCE_RUL = 1e-3  # cycles
PARITY_TOLERANCE_PROBS = 1e-4
PARITY_TOLERANCE_OOD = 1e-3  # relative


def onnx_predict_fn(path: Path) -> PredictFn:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def predict(readings: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(OUTPUT_NAMES, session.run(list(OUTPUT_NAMES), {"readings": readings}), strict=True))

    return predict


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Max |a - b|, where equal infinities (an open upper bound) count as no difference and a
    NaN on either side as an infinite one (no valid window may give one)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if np.isnan(a).any() or np.isnan(b).any():
        return float("inf")
    same_inf = np.isinf(a) & (a == b)
    with np.errstate(invalid="ignore"):  # inf - inf, masked just below
        return float(np.max(np.where(same_inf, 0.0, np.abs(a - b)))) if a.size else 0.0


def check_parity(torch_fn: PredictFn, onnx_fn: PredictFn, readings: np.ndarray) -> dict[str, float]:
    """Max |torch - onnxruntime| per output on the same raw windows; raises if over tolerance
    (the quality flags must agree exactly, the OOD score to PARITY_TOLERANCE_OOD relative)."""
    expected, got = torch_fn(readings), onnx_fn(readings)
    parity: dict[str, float] = {"n_windows": len(readings)}
    for name in OUTPUT_NAMES:
        parity[f"max_abs_diff_{name}"] = max_abs_diff(expected[name], got[name])
    worst_rul = max(parity[f"max_abs_diff_{n}"] for n in ("rul", "rul_lower", "rul_upper", "rul_quantiles"))
    ood_scale = max(1.0, float(np.max(np.abs(expected["ood_score"]))))
    if (
        worst_rul > PARITY_TOLERANCE_RUL
        or parity["max_abs_diff_health_probs"] > PARITY_TOLERANCE_PROBS
        or parity["max_abs_diff_quality_flags"] != 0
        or parity["max_abs_diff_window_flags"] != 0
        or parity["max_abs_diff_ood_score"] > PARITY_TOLERANCE_OOD * ood_scale
    ):
        raise RuntimeError(
            f"ONNX parity check failed: {parity}; tolerances {PARITY_TOLERANCE_RUL} cycles "
            f"and {PARITY_TOLERANCE_PROBS} probability, flags exact, "
            f"OOD score {PARITY_TOLERANCE_OOD} relative"
        )
    return parity


FAULT_KINDS = 9


def faulty_copies(windows: np.ndarray, columns: list[int]) -> np.ndarray:
    """Copies of `windows` with one fault each, cycling through `columns` and the fault kinds
    (dead at 0.0, x10 spike in the last cycle, stuck at the first value, a 1 % offset, the
    cycles reversed, the latest cycle repeated over the last half, the history cut to its last
    12 cycles, the cycles shuffled, Gaussian noise of 3 in-window s.d. on the column): parity of
    every input check and of masking, not only of clean windows."""
    faulty = windows.copy()
    half = windows.shape[1] // 2
    for i, padded in enumerate(faulty):
        column, kind = columns[i % len(columns)], i % FAULT_KINDS
        real = ~np.isnan(padded).all(axis=1)  # the NaN padding rows stay padding
        window = padded[real]
        if kind == 0:
            window[:, column] = 0.0
        elif kind == 1:
            window[-1, column] *= 10.0
        elif kind == 2:
            window[:, column] = window[0, column]
        elif kind == 3:
            window[:, column] *= 1.01
        elif kind == 4:
            window = window[::-1]
        elif kind == 5:
            window[-half:] = window[-1]
        elif kind == 7:
            window = window[np.random.default_rng(i).permutation(len(window))]
        elif kind == 8:
            noise = np.random.default_rng(i).standard_normal(len(window))
            window[:, column] += 3.0 * window[:, column].std() * noise
        padded[real] = window
        if kind == 6:
            padded[:-12] = np.nan
    return faulty
