"""Batch scoring of a whole fleet: one prediction per unit at its last cycle, or the RUL
trajectory of every unit (a prediction at every cycle from the model's minimum on).

Used by `POST /v1/models/{model}/score` and by the offline `rul-score` command; knows
nothing of FastAPI.
"""

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from service.predictor import Predictor, upper_bound
from service.quality import OUT_OF_DISTRIBUTION, Quality, row_positions

BATCH_WINDOWS = 2048  # windows per ONNX Runtime run when scoring trajectories


class ScoringCancelled(RuntimeError):
    """The caller asked to stop (its client went away): no more work is done."""


@dataclass
class UnitScore:
    unit: int
    cycle: int  # the cycle number the prediction is for (the unit's last, or each one)
    cycles_used: int
    padded: bool
    rul: float
    rul_lower: float | None
    rul_upper: float | None
    health_state: str
    health_probabilities: dict[str, float]
    quality: Quality  # flags name the file's cycle numbers


@dataclass
class FleetScore:
    predictions: list[UnitScore]  # one per unit, at its last cycle
    trajectories: dict[int, list[UnitScore]] = field(default_factory=dict)  # with all_cycles
    skipped: list[dict[str, object]] = field(default_factory=list)  # units too short, with why

    def as_json(self) -> dict[str, object]:
        body: dict[str, object] = {
            "units": len(self.predictions),
            "predictions": [asdict(p) for p in self.predictions],
            "skipped": self.skipped,
        }
        if self.trajectories:
            body["trajectories"] = [
                {"unit": unit, "points": [asdict(p) for p in points]}
                for unit, points in self.trajectories.items()
            ]
        return body

    def csv_rows(self, health_states: list[str]) -> list[list[object]]:
        """Header + a row per trajectory point (all_cycles) or per unit."""
        points = [p for unit_points in self.trajectories.values() for p in unit_points]
        return to_csv_rows(points or self.predictions, health_states)


def _positions(cycles: np.ndarray, window_length: int, n_cycles: int) -> np.ndarray:
    """(W,) the file's cycle number of each row of the window ending at the unit's n-th
    reading, -1 for front padding."""
    rows = row_positions(window_length, n_cycles)
    return np.where(rows >= 0, cycles[np.maximum(rows, 0)], -1)


def _scores(
    predictor: Predictor,
    units: np.ndarray,
    cycles: np.ndarray,
    used: np.ndarray,
    windows: np.ndarray,
    positions: np.ndarray,
) -> list[UnitScore]:
    """One ONNX Runtime run over windows (N, W, 24); units, cycles, used: (N,) each;
    positions (N, W): the cycle number of each window row (-1: padding)."""
    out = predictor.run(windows)
    states = predictor.card.health_states
    has_interval = "rul_lower" in out
    return [
        UnitScore(
            unit=int(units[i]),
            cycle=int(cycles[i]),
            cycles_used=int(used[i]),
            padded=bool(used[i] < predictor.window_length),
            rul=float(out["rul"][i]),
            rul_lower=float(out["rul_lower"][i]) if has_interval else None,
            rul_upper=upper_bound(out["rul_upper"][i]) if has_interval else None,
            health_state=states[int(np.argmax(out["health_probs"][i]))],
            health_probabilities={s: float(v) for s, v in zip(states, out["health_probs"][i], strict=True)},
            quality=predictor.quality(windows[i], out, i, positions[i]),
        )
        for i in range(len(windows))
    ]


def _trajectory_windows(readings: np.ndarray, window_length: int, min_cycles: int) -> np.ndarray:
    """A window ending at every cycle from `min_cycles` on, front-padded (edge) when short."""
    padded = np.pad(readings, ((window_length - min_cycles, 0), (0, 0)), mode="edge")
    views = np.lib.stride_tricks.sliding_window_view(padded, window_length, axis=0)  # (N, C, W)
    return np.ascontiguousarray(views.transpose(0, 2, 1))  # (N, W, C)


def score_fleet(
    predictor: Predictor,
    fleet: dict[int, tuple[np.ndarray, np.ndarray]],
    all_cycles: bool = False,
    progress: Callable[[int], None] | None = None,
    reject_out_of_distribution: bool = False,
    cancelled: Callable[[], bool] = lambda: False,
) -> FleetScore:
    """Score every unit of `fleet` ({unit: (cycles, readings (T, 24))}). Blocking. With
    `reject_out_of_distribution`, a unit whose last window is out of distribution is listed
    under `skipped` with the reason instead of predicted. `cancelled` is asked before every
    unit and every run of windows; when it says True, ScoringCancelled is raised."""

    def check() -> None:
        if cancelled():
            raise ScoringCancelled("scoring stopped: the client went away")

    min_cycles, window_length = predictor.card.padding.min_cycles, predictor.window_length
    result = FleetScore(predictions=[])
    last_windows: list[np.ndarray] = []
    last_positions: list[np.ndarray] = []
    last_meta: list[tuple[int, int, int]] = []  # unit, last cycle, cycles used
    for unit, (cycles, readings) in fleet.items():
        check()
        if len(readings) < min_cycles:
            reason = (f"unit {unit} has {len(readings)} cycles; "
                      f"model {predictor.card.name} needs at least {min_cycles}")  # fmt: skip
            result.skipped.append({"unit": unit, "cycles": len(readings), "reason": reason})
        else:
            window, used, _, _ = predictor.prepare(len(last_meta), f"unit {unit}", readings)
            last_windows.append(window)
            last_positions.append(_positions(cycles, window_length, len(readings)))
            last_meta.append((unit, int(cycles[-1]), used))
            if all_cycles:
                windows = _trajectory_windows(readings, window_length, min_cycles)
                ends = np.arange(min_cycles, len(readings) + 1)  # readings each window holds
                used_per = np.minimum(ends, window_length)
                positions = np.stack([_positions(cycles, window_length, int(n)) for n in ends])
                points = []
                for start in range(0, len(windows), BATCH_WINDOWS):
                    check()
                    stop = start + BATCH_WINDOWS
                    points += _scores(predictor, np.full(len(windows[start:stop]), unit),
                                      cycles[min_cycles - 1 :][start:stop], used_per[start:stop],
                                      windows[start:stop], positions[start:stop])  # fmt: skip
                result.trajectories[unit] = points
        if progress:
            progress(1)
    meta = np.array(last_meta, dtype=np.int64).reshape(-1, 3)  # (units, 3): unit, cycle, cycles used
    for start in range(0, len(last_windows), BATCH_WINDOWS):
        check()
        part = meta[start : start + BATCH_WINDOWS]
        windows = np.stack(last_windows[start : start + BATCH_WINDOWS])
        positions = np.stack(last_positions[start : start + BATCH_WINDOWS])
        result.predictions += _scores(predictor, part[:, 0], part[:, 1], part[:, 2], windows, positions)
    if reject_out_of_distribution:
        _withhold_out_of_distribution(result)
    return result


def _withhold_out_of_distribution(result: FleetScore) -> None:
    """Move units whose last window is out of distribution from predictions to skipped."""
    refused = {p.unit for p in result.predictions if p.quality.status == OUT_OF_DISTRIBUTION}
    for p in result.predictions:
        if p.unit in refused:
            reason = f"unit {p.unit} is {p.quality.why_out_of_distribution()}"
            result.skipped.append({"unit": p.unit, "cycles": p.cycle, "reason": reason})
    result.predictions = [p for p in result.predictions if p.unit not in refused]
    for unit in refused:
        result.trajectories.pop(unit, None)


CSV_FIELDS = ["unit", "cycle", "cycles_used", "padded", "rul", "rul_lower", "rul_upper", "health_state"]
QUALITY_CSV_FIELDS = ["quality_status", "ood_score", "flagged_columns"]


def to_csv_rows(scores: list[UnitScore], health_states: list[str]) -> list[list[object]]:
    """Header + one row per score: the fields above, p_<state> per health state, then the
    quality status, OOD score and the flagged columns (';'-separated). An empty rul_upper:
    open above, the RUL is at least rul_lower."""
    rows: list[list[object]] = [[*CSV_FIELDS, *(f"p_{s}" for s in health_states), *QUALITY_CSV_FIELDS]]
    for s in scores:
        rows.append([s.unit, s.cycle, s.cycles_used, s.padded, f"{s.rul:.3f}",
                     "" if s.rul_lower is None else f"{s.rul_lower:.3f}",
                     "" if s.rul_upper is None else f"{s.rul_upper:.3f}", s.health_state,
                     *(f"{s.health_probabilities[h]:.5f}" for h in health_states),
                     s.quality.status, f"{s.quality.ood_score:.4f}",
                     ";".join(f.column for f in s.quality.flags)])  # fmt: skip
    return rows
