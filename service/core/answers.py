"""Graph outputs -> answers, in one place, column by column.

Every path that answers (JSON predict, fleet scoring and its CSV, the Open Inference
Protocol's `quality` output, `rul-score`, the Spark job) turns a model's outputs into the same
fields here. `Answers` holds the graph's outputs for N windows; `Answers.fields` is the one
function that makes every answer field from them (a list per field, one value per window);
`records` (JSON, `schemas.Answer`) and `columns` (CSV and Spark, `column_names`) are both cut
from it. Adding a field to every answer is a change to `fields` and to `schemas.Answer`.
"""

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import orjson

from service.core import drivers
from service.core.planning import DEFAULT_PLANNING, Planning, failure_probabilities, rul_at_risk
from service.core.window_quality import OK, WindowQuality, flag_subject


@dataclass(frozen=True)
class Answers:
    """The graph's outputs for N windows and what the answers need beside them."""

    health_states: tuple[str, ...]  # the model card's, in the order of health_probs' columns
    outputs: dict[str, np.ndarray]  # the graph's outputs by name, one row per window
    cycles_used: np.ndarray  # (N,) int: real cycles the model read (the rest was front padding)
    quality: list[WindowQuality]  # flags' cycles in the caller's terms
    levels: tuple[float, ...] = ()  # the model card's distribution levels (rul_quantiles' columns)
    cap: float = 125.0  # the model's RUL cap: the distribution is open above it
    planning: Planning = DEFAULT_PLANNING  # the horizons and risk asked, and whether to explain
    explanation: drivers.Explanation | None = None  # the drivers, when planning.explain

    def __len__(self) -> int:
        return len(self.cycles_used)

    def planned(self) -> tuple[np.ndarray, np.ndarray]:
        """(N, H) P(RUL <= horizon), (N,) RUL at the risk asked (service/core/planning.py)."""
        quantiles = self.outputs["rul_quantiles"].reshape(len(self), len(self.levels))
        horizons, risk = self.planning.horizons, self.planning.risk
        return (failure_probabilities(quantiles, self.levels, horizons, self.cap),
                rul_at_risk(quantiles, self.levels, risk, self.cap))  # fmt: skip

    def fields(self) -> dict[str, list]:
        """Every answer field, in the API's order: a JSON-ready list per field."""
        out, n = self.outputs, len(self)
        has_interval = "rul_lower" in out
        probs = out["health_probs"].reshape(n, len(self.health_states))
        upper = np.where(np.isfinite(out["rul_upper"]), out["rul_upper"], np.nan) if has_interval else None
        failure, at_risk = self.planned()
        horizons, risk = self.planning.horizons, self.planning.risk
        return {
            "rul": out["rul"].tolist(),
            "rul_lower": out["rul_lower"].tolist() if has_interval else [None] * n,
            # JSON has no infinity: an open upper bound is null ("at least rul_lower")
            "rul_upper": [None if u != u else u for u in upper.tolist()] if upper is not None else [None] * n,
            "health_state": [self.health_states[k] for k in np.argmax(probs, axis=1).tolist()] if n else [],
            "health_probabilities": [dict(zip(self.health_states, p, strict=True)) for p in probs.tolist()],
            "failure_probabilities": [
                [{"within_cycles": h, "probability": p} for h, p in zip(horizons, row, strict=True)]
                for row in failure.tolist()
            ],
            "rul_at_risk": [{"risk": risk, "rul": r} for r in at_risk.tolist()],
            "cycles_used": self.cycles_used.tolist(),
            "padded": (self.cycles_used < self.window_length()).tolist(),
            "quality": [quality_record(q) for q in self.quality],
        } | (self._drivers() if self.planning.explain else {})

    def _drivers(self) -> dict[str, list]:
        """`drivers` and `drivers_note` of each window (service/core/drivers.py)."""
        found: list[list[dict]] = []
        notes: list[str | None] = []
        if not self.quality:
            return {"drivers": found, "drivers_note": notes}
        assert self.explanation is not None  # made with the answers when planning.explain
        for i, quality in enumerate(self.quality):
            found.append(drivers.records(self.explanation, i))
            masked = drivers.not_drivers(self.explanation, i)
            note = [f"{', '.join(masked)} masked as faulty: no driver"] if masked else []
            if quality.status != OK:
                note.append(f"the window is {quality.status}: the drivers carry the same warning as its RUL")
            notes.append("; ".join(note) or None)
        return {"drivers": found, "drivers_note": notes}

    def window_length(self) -> int:
        """The model's window: quality_flags has one row per cycle of it."""
        return int(self.outputs["quality_flags"].shape[1])

    def records(self) -> list[dict]:
        """One JSON-ready dict per window: the fields of `schemas.Answer`."""
        fields = self.fields()
        return [dict(zip(fields, values, strict=True)) for values in zip(*fields.values(), strict=True)]

    def columns(self) -> dict[str, list]:
        """The flat columns of CSV and Spark: the window's cycles_used and padded first, then
        every other field in its order, the probabilities one column per state (`p_<state>`),
        the failure probabilities one column per horizon (`failure_probability_<h>`), the RUL at
        risk as `rul_at_risk` and `risk`, and the quality as its status, score and flagged
        columns (';'-separated)."""
        fields = self.fields()
        columns = {"cycles_used": fields.pop("cycles_used"), "padded": fields.pop("padded")}
        for name, values in fields.items():
            if name == "health_probabilities":
                columns |= {f"p_{s}": [p[s] for p in values] for s in self.health_states}
            elif name == "failure_probabilities":
                for j, h in enumerate(self.planning.horizons):
                    columns[f"failure_probability_{h}"] = [row[j]["probability"] for row in values]
            elif name == "rul_at_risk":
                columns |= {"rul_at_risk": [v["rul"] for v in values], "risk": [v["risk"] for v in values]}
            elif name == "drivers":
                for j in range(drivers.LISTED):
                    listed = [d[j] if j < len(d) else None for d in values]
                    columns[f"driver_{j + 1}"] = [d and d["column"] for d in listed]
                    columns[f"driver_{j + 1}_effect"] = [d and d["effect"] for d in listed]
                    columns[f"driver_{j + 1}_reads"] = [d and d["reads"] for d in listed]
            elif name == "quality":
                columns |= {
                    "quality_status": [q["status"] for q in values],
                    "ood_score": [q["ood_score"] for q in values],
                    "flagged_columns": [
                        ";".join(flag_subject(f["column"], f["check"]) for f in q["flags"]) for q in values
                    ],
                }
            else:
                columns[name] = values
        return columns

    def release(self) -> None:
        """Free the qualities JSON_PIECE at a time (in a worker thread, once the answer is made):
        freed in one go, wherever the last reference goes (the event loop, for an answer), the
        million objects of 20 000 flagged windows' qualities hold the interpreter ~0.1-0.3 s."""
        while self.quality:
            del self.quality[-JSON_PIECE:]

    def select(self, keep: np.ndarray | slice) -> "Answers":
        """The windows where `keep` (N,) bool is true, or those of a slice."""
        if isinstance(keep, slice):
            quality = self.quality[keep]
        else:
            quality = [q for q, k in zip(self.quality, keep.tolist(), strict=True) if k]
        outputs = {name: value[keep] for name, value in self.outputs.items()}
        explanation = self.explanation and replace(
            self.explanation, effects=self.explanation.effects[keep], reads=self.explanation.reads[keep]
        )
        return replace(self, outputs=outputs, cycles_used=self.cycles_used[keep], quality=quality,
                       explanation=explanation)  # fmt: skip


JSON_PIECE = 500  # records turned into JSON at a time


def json_array(count: int, records: Callable[[slice], list[dict]]) -> list[bytes]:
    """A JSON array of `count` records, as the parts to join (once, with what surrounds it),
    made JSON_PIECE at a time (`records(piece)`: the dicts of that slice): only one piece's
    dicts are alive at once. Made whole, the records of 20 000 answers were ~400 000
    containers that each full garbage collection walked while holding the interpreter."""
    parts = [b"["]
    for start in range(0, count, JSON_PIECE):
        parts += [b","] if start else []
        parts.append(orjson.dumps(records(slice(start, start + JSON_PIECE)))[1:-1])
    return [*parts, b"]"]


def quality_record(quality: WindowQuality) -> dict:
    """`schemas.Quality` as a JSON-ready dict (cheaper than a model dump for the common, clean case)."""
    flags = [
        {"column": f.column, "check": f.check, "problem": f.problem, "cycles": f.cycles}
        for f in quality.flags
    ]
    return {"status": quality.status, "flags": flags, "ood_score": quality.ood_score}


def column_names(
    health_states: list[str] | tuple[str, ...], planning: Planning = DEFAULT_PLANNING
) -> list[str]:
    """The columns of a scored fleet (CSV, `rul-score`, Spark), in order: unit, cycle, then
    `Answers.columns` (those of no window, so that the two never differ)."""
    none = np.zeros(0, dtype=np.float32)
    outputs = {
        "rul": none,
        "health_probs": np.zeros((0, len(health_states)), np.float32),
        "quality_flags": np.zeros((0, 1, 1), np.int32),
        "rul_quantiles": np.zeros((0, 0), np.float32),
    }
    empty = Answers(tuple(health_states), outputs, np.zeros(0, np.int64), [], planning=planning)
    return ["unit", "cycle", *empty.columns()]


def concat(parts: list[Answers]) -> Answers:
    """Answers of consecutive runs of one model as one."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    return replace(
        first,
        outputs={name: np.concatenate([p.outputs[name] for p in parts]) for name in first.outputs},
        cycles_used=np.concatenate([p.cycles_used for p in parts]),
        quality=[q for p in parts for q in p.quality],
        explanation=first.explanation
        and replace(
            first.explanation,
            effects=np.concatenate([p.explanation.effects for p in parts if p.explanation]),
            reads=np.concatenate([p.explanation.reads for p in parts if p.explanation]),
        ),
    )


@dataclass(frozen=True)
class UnitAnswers:
    """Answers for windows of a fleet's units: a unit score is an answer plus its unit and the
    cycle it is for."""

    units: np.ndarray  # (N,) int64, or object: unit ids as the file has them (text too)
    cycles: np.ndarray  # (N,) int: the file's cycle number each answer is for
    answers: Answers

    def __len__(self) -> int:
        return len(self.units)

    def records(self) -> list[dict]:
        """`schemas.UnitScore` dicts: unit, cycle, then the answer's fields."""
        units, cycles = self.units.tolist(), self.cycles.tolist()
        return [
            {"unit": u, "cycle": c, **answer}
            for u, c, answer in zip(units, cycles, self.answers.records(), strict=True)
        ]

    def columns(self) -> dict[str, list]:
        """`column_names`' columns, in order."""
        return {"unit": self.units.tolist(), "cycle": self.cycles.tolist(), **self.answers.columns()}

    def select(self, keep: np.ndarray | slice) -> "UnitAnswers":
        """The rows where `keep` (N,) bool is true, or those of a slice."""
        return UnitAnswers(self.units[keep], self.cycles[keep], self.answers.select(keep))


UnitId = int | str  # a unit as its fleet file names it: an integer, or text ("ESN-100017")


def unit_array(units: Any) -> np.ndarray:
    """Unit ids as an array: int64 when every one is an integer, else objects (kept as given)."""
    units = list(units)
    if all(isinstance(u, int | np.integer) and not isinstance(u, bool) for u in units):
        return np.asarray(units, dtype=np.int64)
    return np.asarray(units, dtype=object)


def concat_units(parts: list[UnitAnswers], empty: Answers) -> UnitAnswers:
    """Consecutive runs' unit answers as one; `empty`: the answers of no window, for no part."""
    if not parts:
        return UnitAnswers(np.zeros(0, np.int64), np.zeros(0, np.int64), empty)
    return UnitAnswers(
        unit_array([u for p in parts for u in p.units.tolist()]),
        np.concatenate([p.cycles for p in parts]).astype(np.int64),
        concat([p.answers for p in parts]),
    )
