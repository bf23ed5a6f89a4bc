"""Batch scoring of a whole fleet: one prediction per unit at its last cycle, or the RUL
trajectory of every unit (a prediction at every cycle from the model's minimum on).

Used by `POST /v1/models/{model}/score` and by the offline `rul-score` command; knows
nothing of FastAPI.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from service.core import pipeline
from service.core.answers import UnitAnswers, UnitId, column_names, concat_units, json_array, unit_array
from service.core.pipeline import Prepared
from service.core.planning import DEFAULT_PLANNING, Planning
from service.core.predictor import Predictor
from service.core.window_quality import OUT_OF_DISTRIBUTION

BATCH_WINDOWS = 2048  # windows per ONNX Runtime run when scoring trajectories


class ScoringCancelled(RuntimeError):
    """The caller asked to stop (its client went away): no more work is done."""


@dataclass
class FleetScore:
    predictions: UnitAnswers  # one per unit, at its last cycle
    trajectories: dict[UnitId, UnitAnswers] = field(default_factory=dict)  # with all_cycles
    skipped: list[dict[str, object]] = field(default_factory=list)  # units too short, with why

    def json(self, head: Mapping[str, object]) -> bytes:
        """The answer as one JSON object: `head`'s members (model, version), then units,
        predictions, skipped and, where scored, trajectories; the predictions made in pieces
        (answers.json_array)."""
        predictions = self.predictions
        parts = [orjson.dumps({**head, "units": len(predictions)})[:-1], b',"predictions":',
                 *json_array(len(predictions), lambda piece: predictions.select(piece).records()),
                 b',"skipped":', orjson.dumps(self.skipped)]  # fmt: skip
        if self.trajectories:
            trajectories = [{"unit": u, "points": p.records()} for u, p in self.trajectories.items()]
            parts += [b',"trajectories":', orjson.dumps(trajectories)]
        return b"".join([*parts, b"}"])  # one copy of the whole answer

    def scored(self) -> UnitAnswers:
        """Every trajectory point (all_cycles), else every unit's last-cycle answer."""
        if self.trajectories:
            none = self.predictions.answers.select(np.zeros(len(self.predictions), bool))
            return concat_units(list(self.trajectories.values()), none)
        return self.predictions

    def csv_rows(self) -> list[list[object]]:
        """Header + a row per trajectory point (all_cycles) or per unit (`csv_rows`)."""
        return csv_rows(self.scored())


def csv_rows(scored: UnitAnswers, header: bool = True) -> list[list[object]]:
    """[header +] a row per answer: `column_names`, numbers rounded (RUL 3 decimals,
    probabilities 5, OOD score 4); an empty rul_upper: open above, the RUL is at least rul_lower."""
    names = column_names(scored.answers.health_states, scored.answers.planning)
    columns = scored.columns()
    for name, digits in CSV_DIGITS.items():
        columns[name] = ["" if v is None else f"{v:.{digits}f}" for v in columns[name]]
    probabilities = [f"p_{state}" for state in scored.answers.health_states]
    probabilities += [f"failure_probability_{h}" for h in scored.answers.planning.horizons]
    for name in probabilities:
        columns[name] = [f"{v:.5f}" for v in columns[name]]
    rows = [list(row) for row in zip(*(columns[name] for name in names), strict=True)]
    return [[*names], *rows] if header else rows


CSV_DIGITS = {"rul": 3, "rul_lower": 3, "rul_upper": 3, "rul_at_risk": 3, "ood_score": 4}


def _scores(predictor: Predictor, prepared: Prepared, cycles: np.ndarray, planning: Planning) -> UnitAnswers:
    """The answers of prepared windows of units (their ids), each for the cycle in `cycles` (N,)."""
    answers = pipeline.answer_now(predictor, prepared, planning)
    return UnitAnswers(unit_array(prepared.ids), np.asarray(cycles, dtype=np.int64), answers)


def score_trajectory(
    predictor: Predictor,
    unit: UnitId,
    cycles: np.ndarray,
    readings: np.ndarray,
    check: Callable[[], None] = lambda: None,
    planning: Planning = DEFAULT_PLANNING,
) -> UnitAnswers:
    """One unit's answer at every cycle from the model's minimum on (a unit at least that long),
    made and answered BATCH_WINDOWS windows at a time (`trajectory_pieces`); `check` is called
    before each piece (it raises to stop)."""
    parts = []
    for piece in trajectory_pieces(predictor, readings):
        check()
        parts.append(trajectory_piece(predictor, unit, cycles, readings, piece, planning))
    return concat_units(parts, pipeline.no_answers(predictor, planning))


def trajectory_pieces(predictor: Predictor, readings: np.ndarray) -> list[slice]:
    """A unit's trajectory in pieces of BATCH_WINDOWS windows: a piece's windows, outputs and
    answers are all that is alive at once, whatever the unit's length (a unit of 150 000 cycles
    made whole held 2 GB)."""
    count = pipeline.trajectory_length(predictor, readings)
    return [slice(start, start + BATCH_WINDOWS) for start in range(0, count, BATCH_WINDOWS)]


def trajectory_piece(
    predictor: Predictor,
    unit: UnitId,
    cycles: np.ndarray,
    readings: np.ndarray,
    piece: slice,
    planning: Planning = DEFAULT_PLANNING,
) -> UnitAnswers:
    """The answers of one piece of a unit's trajectory, each for the cycle its window ends at."""
    prepared = pipeline.trajectory(predictor, unit, cycles, readings, piece)
    answered = cycles[predictor.card.padding.min_cycles - 1 :][piece]  # the cycle each window ends at
    return _scores(predictor, prepared, answered, planning)


def score_fleet(
    predictor: Predictor,
    fleet: Mapping[Any, tuple[np.ndarray, np.ndarray]],
    all_cycles: bool = False,
    progress: Callable[[int], None] | None = None,
    reject_out_of_distribution: bool = False,
    cancelled: Callable[[], bool] = lambda: False,
    planning: Planning = DEFAULT_PLANNING,
) -> FleetScore:
    """Score every unit of `fleet` ({unit: (cycles, readings (T, F))}; a fleet_file.Fleet's
    refused units are listed under `skipped` with their reason). Blocking. With
    `reject_out_of_distribution`, a unit whose last window is out of distribution is listed
    under `skipped` with the reason instead of predicted. `cancelled` is asked before every
    unit and every run of windows; when it says True, ScoringCancelled is raised. `planning`:
    the horizons and risk every answer is for."""

    def check() -> None:
        if cancelled():
            raise ScoringCancelled("scoring stopped: the client went away")

    min_cycles, window_length = predictor.card.padding.min_cycles, predictor.window_length
    skipped: list[dict[str, object]] = list(getattr(fleet, "refused", []))
    trajectories: dict[UnitId, UnitAnswers] = {}
    last_windows: list[np.ndarray] = []
    last_cycles: list[np.ndarray] = []  # each unit's last (up to W) cycle numbers
    last_units: list[UnitId] = []
    last_cycle: list[int] = []
    for unit, (cycles, readings) in fleet.items():
        check()
        if len(readings) < min_cycles:
            reason = (f"unit {unit} has {len(readings)} cycles; "
                      f"model {predictor.card.name} needs at least {min_cycles}")  # fmt: skip
            skipped.append({"unit": unit, "cycles": len(readings), "reason": reason})
        else:
            window, _ = predictor.prepare(len(last_units), f"unit {unit}", readings, cycles)
            last_windows.append(window)
            last_cycles.append(cycles[-window_length:])
            last_units.append(unit)
            last_cycle.append(int(cycles[-1]))
            if all_cycles:
                trajectories[unit] = score_trajectory(predictor, unit, cycles, readings, check, planning)
        if progress:
            progress(1)
    parts = []
    for start in range(0, len(last_windows), BATCH_WINDOWS):
        check()
        part = slice(start, start + BATCH_WINDOWS)
        prepared = pipeline.from_units(predictor, last_units[part], last_windows[part], last_cycles[part])
        parts.append(_scores(predictor, prepared, np.asarray(last_cycle[part]), planning))
    result = FleetScore(concat_units(parts, pipeline.no_answers(predictor, planning)), trajectories, skipped)
    if reject_out_of_distribution:
        _withhold_out_of_distribution(result)
    return result


def _withhold_out_of_distribution(result: FleetScore) -> None:
    """Move units whose last window is out of distribution from predictions to skipped."""
    scores = result.predictions
    refused = np.array([q.status == OUT_OF_DISTRIBUTION for q in scores.answers.quality], dtype=bool)
    units = scores.units.tolist()
    for i in np.flatnonzero(refused):
        unit, quality = units[i], scores.answers.quality[i]
        reason = f"unit {unit} is {quality.why_out_of_distribution()}"
        result.skipped.append({"unit": unit, "cycles": int(scores.cycles[i]), "reason": reason})
        result.trajectories.pop(unit, None)
    result.predictions = scores.select(~refused)
