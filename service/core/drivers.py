"""Why this RUL: each read sensor's effect on the answer, in cycles, made by the graph itself.

For a window and each sensor column the checks read (the card's `quality.columns`), the graph
runs once more on the window with that column dead: 0.0 in every real cycle, a fault its
out_of_range check flags in every cycle, so the graph masks the column and every member reads
it as its estimate from the other sensors (the card's `quality.masking`). The column's effect
is the RUL as read minus the RUL so masked:

    effect(s) = RUL(window) - RUL(window with s dead)

so sending the window with that sensor dead moves the RUL by minus its effect, exactly: it is
the same run. Negative: this sensor makes the engine look more worn than the others say.
`reads` says on which side of its estimate from the other sensors the sensor reads, on
average over the window's real cycles (the checks' estimate, check_sentences.QualityExplainer).

What it is not: the effects do not add up to the RUL (each is one sensor replaced with the
others as read; replacing two at once is not the sum of the two), and a column the checks
already masked (a faulty sensor) has no effect of its own: it is no driver, and the answer
says so. A window that is not `ok` gets drivers under the same warning as its RUL.

Why extra runs and not outputs of the graph fetched on demand: ONNX Runtime's inference
sessions run every node whatever outputs are fetched (onnxruntime issues 16483 and 27615), so
explanation outputs in the graph would be paid by every request. Here a request that does not
ask runs exactly the graph it ran before; one that asks runs K + 1 windows per window (K read
sensors: 14 for fd001).
"""

from dataclasses import dataclass

import numpy as np

DEAD = 0.0  # the reading of a dead sensor: out of range for every checked column of every model
LISTED = 5  # drivers listed per answer, largest |effect| first


@dataclass(frozen=True)
class Explanation:
    """What the drivers of N windows need: the runs with each read column dead."""

    columns: tuple[str, ...]  # the card's names of the K read (checked) columns
    effects: np.ndarray  # (N, K) cycles; NaN where the column was already masked (no driver)
    reads: np.ndarray  # (N, K) mean residual from the column's estimate, robust s.d.


def too_many_to_explain(
    windows: int, read_columns: int, max_windows: int, what: str = "windows"
) -> str | None:
    """Why `windows` windows (a fleet's units: `what`) cannot be explained in one request, or
    None: each runs the model once more per read column, and the runs count against the
    windows a request may hold."""
    runs = windows * (read_columns + 1)
    if runs <= max_windows:
        return None
    per = read_columns + 1
    return (
        f"explain runs the model {per} times per window ({read_columns} read sensors): {windows} "
        f"{what} would be {runs} runs, over the {max_windows} windows a request may hold "
        f"(RUL_MAX_WINDOWS_PER_REQUEST); explain at most {max_windows // per} {what} per request"
    )


def with_each_column_dead(windows: np.ndarray, column_index: list[int]) -> np.ndarray:
    """(N, W, C) -> (N * K, W, C): window i with read column k dead at row i * K + k; front
    padding rows stay NaN (the graph counts them as padding)."""
    n, w, c = windows.shape
    k = len(column_index)
    real = ~np.isnan(windows).all(axis=2)  # (N, W)
    copies = np.repeat(windows[:, None], k, axis=1)  # (N, K, W, C)
    for position, column in enumerate(column_index):
        copies[:, position, :, column] = np.where(real, DEAD, np.nan)
    return copies.reshape(n * k, w, c)


def effects(
    rul: np.ndarray,
    dead_rul: np.ndarray,
    dead_flags: np.ndarray,
    flags: np.ndarray,
    real: np.ndarray,
    column_index: list[int],
) -> np.ndarray:
    """(N, K) effect of each read column: `rul` (N,) as read, `dead_rul` (N * K,) with each
    column dead, `dead_flags` (N * K, W, C) and `flags` (N, W, C) the quality flags of both
    runs, `real` (N, W) the real (not padding) rows. NaN where the column was already flagged
    as read (masked: no driver) or where its death was not flagged in every real cycle (then the
    graph did not mask it, and the change would not be the estimate's)."""
    n, k = len(rul), len(column_index)
    dead_flags = dead_flags.reshape(n, k, *dead_flags.shape[1:])
    out = rul[:, None] - dead_rul.reshape(n, k)
    for position, column in enumerate(column_index):
        already = (flags[:, :, column] != 0).any(axis=1)  # (N,)
        masked = ((dead_flags[:, position, :, column] != 0) | ~real).all(axis=1)  # (N,)
        out[already | ~masked, position] = np.nan
    return out


def records(explanation: Explanation, index: int) -> list[dict]:
    """The LISTED drivers of window `index`, largest |effect| first: column, effect (cycles,
    rounded to 0.1) and reads (high or low against its estimate)."""
    effect = explanation.effects[index]
    order = sorted(np.flatnonzero(~np.isnan(effect)), key=lambda k: -abs(effect[k]))
    return [
        {
            "column": explanation.columns[k],
            "effect": round(float(effect[k]), 1),
            "reads": "high" if explanation.reads[index, k] > 0 else "low",
        }
        for k in order[:LISTED]
    ]


def not_drivers(explanation: Explanation, index: int) -> list[str]:
    """The read columns of window `index` that have no effect of their own (masked as faulty)."""
    return [explanation.columns[k] for k in np.flatnonzero(np.isnan(explanation.effects[index]))]
