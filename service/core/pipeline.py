"""The one answer pipeline: prepare -> run -> explain -> answer, for every path that answers.

    prepare   validated windows as one batch (N, W, C) float32, short ones front-padded with
              NaN rows (the card's padding rule 'nan'), and each row's label in the caller's
              terms (-1: padding), so that a quality flag names the cycles the caller knows:
                from_requests  v1 JSON windows (cycle numbers when sent, else row positions)
                from_tensor    an Open Inference Protocol tensor (row positions of the tensor)
                from_units     a fleet's units, their last window each (the file's cycle numbers)
                trajectory     one unit's window at every cycle (the file's cycle numbers)
    run       the graph: `Predictor.run`, through the model's batcher for HTTP requests
              (service/core/batcher.py), straight for files already in a worker thread
    explain   the graph's quality verdicts as flags in words (check_sentences.QualityExplainer)
    answer    `Answers` (service/core/answers.py): the one place every answer field is made;
              JSON records, CSV/Spark columns and OIP tensors are all cut from it

`answer` (HTTP requests: v1 predict, OIP) and `answer_now` (fleet scoring, `rul-score`, Spark)
differ only in how `run` is scheduled; both end in `explained`. Where each step runs (event
loop or worker thread) is decided in service/core/threads.py.
"""

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from service.core import drivers
from service.core.answers import Answers
from service.core.model_card import ModelCard, QualityChecks
from service.core.planning import DEFAULT_PLANNING, Planning
from service.core.predictor import Predictor
from service.core.threads import maybe_in_worker

Outputs = dict[str, np.ndarray]


@dataclass(frozen=True)
class Prepared:
    """Windows validated and shaped for the model, with each row's label."""

    ids: list[Any]  # the caller's label of each window (None: unnamed)
    windows: np.ndarray  # (N, W, C) float32, front-padded with NaN rows where shorter than W
    positions: np.ndarray  # (N, W) int64: each row's cycle in the caller's terms, -1 for padding

    def __len__(self) -> int:
        return len(self.windows)


def front_padded(rows: Sequence[np.ndarray], shape: tuple[int, ...], fill: float, dtype: type) -> np.ndarray:
    """Arrays of shape (n <= shape[0], *shape[1:]) -> one (N, *shape) array, each right-aligned
    with `fill` in front: a batch made in one allocation, not array by array (padding 20 000
    windows one by one stalled the event loop: bench/README.md, "Abuse, second round")."""
    out: np.ndarray = np.full((len(rows), *shape), fill, dtype=dtype)
    for row, values in zip(out, rows, strict=True):
        row[shape[0] - len(values) :] = values
    return out


def stack(predictor: Predictor, windows: Sequence[np.ndarray]) -> np.ndarray:
    """Windows of at most W cycles (`Predictor.prepare`) -> one (N, W, C) float32 batch, a
    shorter one padded as the card's rule 'nan' says: rows of NaN at the front, which the graph
    counts and fills."""
    return front_padded(windows, (predictor.window_length, predictor.n_columns), np.nan, np.float32)


def row_positions(window_length: int, n_cycles: int, first: int = 0) -> np.ndarray:
    """(W,) the label of each row of a window built from `n_cycles` readings: the last W of
    them (positions first + n - W ... first + n - 1), front padding -1."""
    positions = np.arange(window_length) + (n_cycles - window_length)
    return np.where(positions >= 0, positions + first, -1)


def cycle_labels(cycles: np.ndarray, window_length: int, n_cycles: int) -> np.ndarray:
    """(W,) the client's cycle number of each row of the window ending at its n-th reading
    (`cycles` (T,) its cycle numbers), -1 for front padding."""
    rows = row_positions(window_length, n_cycles)
    return np.where(rows >= 0, cycles[np.maximum(rows, 0)], -1)


def padding_rows(batch: np.ndarray) -> np.ndarray:
    """(N, W) bool: the rows of a batch (N, W, C) that are front padding: whole rows of NaN
    before a window's first reading (a NaN row after a reading is no padding)."""
    return np.cumprod(np.isnan(batch).all(axis=2), axis=1).astype(bool)


def from_requests(
    predictor: Predictor, windows: list[tuple[Any, Any]], cycles: list[Any] | None = None
) -> Prepared:
    """v1 windows [(id, readings (T, C) or NamedReadings)], each with its cycle numbers (T,)
    or None. Raises WindowError naming the first bad window."""
    numbers = cycles if cycles is not None else [None] * len(windows)
    w = predictor.window_length
    shaped, positions = [], []
    for i, ((window_id, readings), sent) in enumerate(zip(windows, numbers, strict=True)):
        window, n_cycles = predictor.prepare(i, window_id, readings, sent)
        shaped.append(window)
        labels = np.asarray(sent, np.int64) if sent is not None else None
        positions.append(row_positions(w, n_cycles) if labels is None else cycle_labels(labels, w, n_cycles))
    ids = [window_id for window_id, _ in windows]
    return Prepared(ids, stack(predictor, shaped), np.stack(positions) if positions else _no_rows(w))


def from_tensor(batch: np.ndarray) -> Prepared:
    """An OIP tensor (N, W, C) as sent (input_tensor checked it): rows are labelled by their
    position in the tensor, padding rows -1."""
    positions = np.where(padding_rows(batch), -1, np.arange(batch.shape[1]))
    return Prepared([None] * len(batch), batch, positions)


def from_units(
    predictor: Predictor, units: list[Any], readings: list[np.ndarray], cycles: list[np.ndarray]
) -> Prepared:
    """Units' last windows: `readings` each unit's (n <= W, C) validated last readings
    (Predictor.prepare), `cycles` its cycle numbers; rows labelled by the file's cycle numbers."""
    w = predictor.window_length
    return Prepared(
        units, stack(predictor, readings), front_padded([c[-w:] for c in cycles], (w,), -1, np.int64)
    )


def trajectory(
    predictor: Predictor, unit: Any, cycles: np.ndarray, readings: np.ndarray, piece: slice = slice(None)
) -> Prepared:
    """Windows ending at every cycle of one unit from the model's minimum on (`piece`: a slice
    of them, so that a long unit is made and answered a piece at a time), front-padded with
    NaN rows where short; rows labelled by the file's cycle numbers."""
    min_cycles, w = predictor.card.padding.min_cycles, predictor.window_length
    ends = np.arange(min_cycles, len(readings) + 1)[piece]  # readings each window holds
    rows = ends[:, None] - w + np.arange(w)[None, :]  # (N, W) each row's reading, < 0: padding
    real = rows >= 0
    windows = np.where(real[:, :, None], readings[np.maximum(rows, 0)], np.nan).astype(np.float32)
    positions = np.where(real, cycles[np.maximum(rows, 0)], -1).astype(np.int64)
    return Prepared([unit] * len(windows), windows, positions)


def trajectory_length(predictor: Predictor, readings: np.ndarray) -> int:
    """How many windows `trajectory` makes of a unit: one per cycle from the model's minimum on."""
    return max(len(readings) - predictor.card.padding.min_cycles + 1, 0)


def _no_rows(window_length: int) -> np.ndarray:
    return np.zeros((0, window_length), np.int64)


def to_run(predictor: Predictor, prepared: Prepared, planning: Planning) -> np.ndarray:
    """The batch the graph runs: the windows, then, when the caller asked why (`explain`),
    each window with each read column dead (service/core/drivers.py)."""
    if not planning.explain or not len(prepared):
        return prepared.windows
    dead = drivers.with_each_column_dead(prepared.windows, _checks(predictor).column_index)
    return np.concatenate([prepared.windows, dead])


def explained(predictor: Predictor, prepared: Prepared, outputs: Outputs, planning: Planning) -> Answers:
    """explain -> answer: the graph's outputs for prepared windows (`to_run`'s batch) as their
    answers, with their drivers when asked."""
    n = len(prepared)
    explain = planning.explain and n > 0
    if explain:  # the batch ran the windows, then each with each read column dead (to_run)
        outputs, dead = {k: v[:n] for k, v in outputs.items()}, {k: v[n:] for k, v in outputs.items()}
    quality = predictor.explainer.assess_batch(
        prepared.windows, outputs["quality_flags"], outputs["ood_score"], prepared.positions,
        outputs["window_flags"],
    )  # fmt: skip
    used = (prepared.positions >= 0).sum(axis=1)
    answers = _answers(predictor.card, outputs, used, quality, planning)
    if explain:
        answers = replace(answers, explanation=_explanation(predictor, prepared, outputs, dead))
    return answers


def _explanation(
    predictor: Predictor, prepared: Prepared, outputs: Outputs, dead: Outputs
) -> drivers.Explanation:
    checks, real = _checks(predictor), prepared.positions >= 0
    effects = drivers.effects(
        outputs["rul"],
        dead["rul"],
        dead["quality_flags"],
        outputs["quality_flags"],
        real,
        checks.column_index,
    )
    return drivers.Explanation(
        tuple(checks.columns), effects, predictor.explainer.reads(prepared.windows, real)
    )


def _checks(predictor: Predictor) -> QualityChecks:
    checks = predictor.card.quality
    if checks is None:  # refused at load (model_card.py); here for the type checker
        raise ValueError(f"model {predictor.card.name} has no input checks to explain its answers with")
    return checks


async def answer(
    predictor: Predictor,
    prepared: Prepared,
    planning: Planning,
    run: Callable[[np.ndarray], Awaitable[Outputs]],
) -> Answers:
    """run (awaited: the model's batcher) -> explain -> answer, for an HTTP request; the
    explanation on the loop or in a worker thread as service/core/threads.py says."""
    outputs = await run(to_run(predictor, prepared, planning))
    return await maybe_in_worker(len(prepared), explained, predictor, prepared, outputs, planning)


def answer_now(predictor: Predictor, prepared: Prepared, planning: Planning = DEFAULT_PLANNING) -> Answers:
    """run -> explain -> answer, blocking: for files, already in a worker thread."""
    return explained(predictor, prepared, predictor.run(to_run(predictor, prepared, planning)), planning)


def no_answers(predictor: Predictor, planning: Planning = DEFAULT_PLANNING) -> Answers:
    """The answers of no window (a fleet whose every unit was skipped)."""
    card = predictor.card
    shapes = {
        "health_probs": (0, len(card.health_states)),
        "quality_flags": (0, predictor.window_length, predictor.n_columns),
        "rul_quantiles": (0, len(card.distribution.levels) if card.distribution else 0),
    }
    outputs = {name: np.zeros(shapes.get(name, (0,)), np.float32) for name in predictor.output_names}
    return _answers(card, outputs, np.zeros(0, np.int64), [], planning)


def _answers(
    card: ModelCard, outputs: Outputs, used: np.ndarray, quality: list, planning: Planning
) -> Answers:
    levels = tuple(card.distribution.levels) if card.distribution else ()
    return Answers(tuple(card.health_states), outputs, used, quality, levels, card.rul_cap, planning)


def head(card: ModelCard) -> dict[str, str]:
    """The head of every answer: which model answered, and its version."""
    return {"model": card.name, "model_version": card.version}
