"""Batch scoring of a whole fleet: one prediction per unit at its last cycle, or the RUL
trajectory of every unit (a prediction at every cycle from the model's minimum on).

Used by `POST /v1/models/{model}/score` and by the offline `rul-score` command; knows
nothing of FastAPI.
"""

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from service.predictor import Predictor

BATCH_WINDOWS = 2048  # windows per ONNX Runtime run when scoring trajectories


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


def _scores(
    predictor: Predictor, units: np.ndarray, cycles: np.ndarray, used: np.ndarray, windows: np.ndarray
) -> list[UnitScore]:
    """One ONNX Runtime run over windows (N, W, 24); units, cycles, used: (N,) each."""
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
            rul_upper=float(out["rul_upper"][i]) if has_interval else None,
            health_state=states[int(np.argmax(out["health_probs"][i]))],
            health_probabilities={s: float(v) for s, v in zip(states, out["health_probs"][i], strict=True)},
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
) -> FleetScore:
    """Score every unit of `fleet` ({unit: (cycles, readings (T, 24))}). Blocking."""
    min_cycles, window_length = predictor.card.padding.min_cycles, predictor.window_length
    result = FleetScore(predictions=[])
    last_windows: list[np.ndarray] = []
    last_meta: list[tuple[int, int, int]] = []  # unit, last cycle, cycles used
    for unit, (cycles, readings) in fleet.items():
        if len(readings) < min_cycles:
            reason = (f"unit {unit} has {len(readings)} cycles; "
                      f"model {predictor.card.name} needs at least {min_cycles}")  # fmt: skip
            result.skipped.append({"unit": unit, "cycles": len(readings), "reason": reason})
        else:
            window, used, _ = predictor.prepare(len(last_meta), f"unit {unit}", readings)
            last_windows.append(window)
            last_meta.append((unit, int(cycles[-1]), used))
            if all_cycles:
                windows = _trajectory_windows(readings, window_length, min_cycles)
                used_per = np.minimum(np.arange(min_cycles, len(readings) + 1), window_length)
                points = []
                for start in range(0, len(windows), BATCH_WINDOWS):
                    stop = start + BATCH_WINDOWS
                    points += _scores(predictor, np.full(len(windows[start:stop]), unit),
                                      cycles[min_cycles - 1 :][start:stop], used_per[start:stop],
                                      windows[start:stop])  # fmt: skip
                result.trajectories[unit] = points
        if progress:
            progress(1)
    meta = np.array(last_meta, dtype=np.int64).reshape(-1, 3)  # (units, 3): unit, cycle, cycles used
    for start in range(0, len(last_windows), BATCH_WINDOWS):
        part = meta[start : start + BATCH_WINDOWS]
        windows = np.stack(last_windows[start : start + BATCH_WINDOWS])
        result.predictions += _scores(predictor, part[:, 0], part[:, 1], part[:, 2], windows)
    return result


CSV_FIELDS = ["unit", "cycle", "cycles_used", "padded", "rul", "rul_lower", "rul_upper", "health_state"]


def to_csv_rows(scores: list[UnitScore], health_states: list[str]) -> list[list[object]]:
    """Header + one row per score: the fields above, then p_<state> per health state."""
    rows: list[list[object]] = [[*CSV_FIELDS, *(f"p_{s}" for s in health_states)]]
    for s in scores:
        rows.append([s.unit, s.cycle, s.cycles_used, s.padded, f"{s.rul:.3f}",
                     "" if s.rul_lower is None else f"{s.rul_lower:.3f}",
                     "" if s.rul_upper is None else f"{s.rul_upper:.3f}", s.health_state,
                     *(f"{s.health_probabilities[h]:.5f}" for h in health_states)])  # fmt: skip
    return rows
