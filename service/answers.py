"""Graph outputs -> answers, in one place, column by column.

Every path that answers (JSON predict, fleet scoring and its CSV, the Open Inference
Protocol's `quality` output, `rul-score`, the Spark job) turns a model's outputs into the same
fields here: `Answers` holds them as arrays, one row per window; `records` makes the JSON
answers (`schemas.Answer`), `columns` the flat columns of CSV and Spark (`column_names`).
Adding a field to every answer is a change to this module and to `schemas.Answer`.
"""

from dataclasses import dataclass

import numpy as np

from service.quality import Quality


@dataclass(frozen=True)
class Answers:
    """The answer fields of N windows, in the order of the windows."""

    health_states: tuple[str, ...]  # the model card's, in the order of health_probs' columns
    rul: np.ndarray  # (N,) cycles left
    rul_lower: np.ndarray | None  # (N,) the interval's lower bound; None: the model has no interval
    rul_upper: np.ndarray | None  # (N,) its upper bound, +inf where open above
    health_probs: np.ndarray  # (N, S)
    cycles_used: np.ndarray  # (N,) int: real cycles the model read (the rest was front padding)
    padded: np.ndarray  # (N,) bool
    quality: list[Quality]  # flags' cycles in the caller's terms

    def __len__(self) -> int:
        return len(self.rul)

    def _lists(self) -> dict[str, list]:
        """Each field as a Python list (one numpy call per field, not one per value)."""
        n = len(self)
        states = np.asarray(self.health_states)[np.argmax(self.health_probs, axis=1)] if n else []
        upper = (
            None if self.rul_upper is None else np.where(np.isfinite(self.rul_upper), self.rul_upper, np.nan)
        )
        return {
            "rul": self.rul.tolist(),
            "rul_lower": [None] * n if self.rul_lower is None else self.rul_lower.tolist(),
            # JSON has no infinity: an open upper bound is null ("at least rul_lower")
            "rul_upper": [None] * n if upper is None else [None if u != u else u for u in upper.tolist()],
            "health_state": [str(s) for s in states],
            "health_probs": self.health_probs.tolist(),
            "cycles_used": self.cycles_used.tolist(),
            "padded": self.padded.tolist(),
        }

    def records(self) -> list[dict]:
        """One JSON-ready dict per window: the fields of `schemas.Answer`."""
        lists, states = self._lists(), self.health_states
        return [
            {
                "rul": lists["rul"][i],
                "rul_lower": lists["rul_lower"][i],
                "rul_upper": lists["rul_upper"][i],
                "health_state": lists["health_state"][i],
                "health_probabilities": dict(zip(states, lists["health_probs"][i], strict=True)),
                "cycles_used": lists["cycles_used"][i],
                "padded": lists["padded"][i],
                "quality": quality_record(quality),
            }
            for i, quality in enumerate(self.quality)
        ]

    def columns(self) -> dict[str, list]:
        """The flat columns of CSV and Spark (`column_names` without unit and cycle): an open upper
        bound is None, the flagged columns ';'-separated."""
        lists = self._lists()
        probs = np.asarray(self.health_probs).reshape(len(self), len(self.health_states))
        return {
            "cycles_used": lists["cycles_used"],
            "padded": lists["padded"],
            "rul": lists["rul"],
            "rul_lower": lists["rul_lower"],
            "rul_upper": lists["rul_upper"],
            "health_state": lists["health_state"],
            **{f"p_{state}": probs[:, k].tolist() for k, state in enumerate(self.health_states)},
            "quality_status": [q.status for q in self.quality],
            "ood_score": [q.ood_score for q in self.quality],
            "flagged_columns": [";".join(f.column for f in q.flags) for q in self.quality],
        }


def quality_record(quality: Quality) -> dict:
    """`schemas.Quality` as a JSON-ready dict (cheaper than a model dump for the common, clean case)."""
    flags = [
        {"column": f.column, "check": f.check, "problem": f.problem, "cycles": f.cycles}
        for f in quality.flags
    ]
    return {"status": quality.status, "flags": flags, "ood_score": quality.ood_score}


def column_names(health_states: list[str] | tuple[str, ...]) -> list[str]:
    """The columns of a scored fleet (CSV, `rul-score`, Spark), in order."""
    return [
        "unit", "cycle", "cycles_used", "padded", "rul", "rul_lower", "rul_upper", "health_state",
        *(f"p_{s}" for s in health_states), "quality_status", "ood_score", "flagged_columns",
    ]  # fmt: skip


def concat(parts: list[Answers]) -> Answers:
    """Answers of consecutive runs as one (the same model)."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]

    def joined(name: str) -> np.ndarray | None:
        if getattr(first, name) is None:
            return None
        return np.concatenate([getattr(p, name) for p in parts])

    return Answers(
        first.health_states,
        np.concatenate([p.rul for p in parts]),
        joined("rul_lower"),
        joined("rul_upper"),
        np.concatenate([p.health_probs for p in parts]).reshape(-1, len(first.health_states)),
        np.concatenate([p.cycles_used for p in parts]),
        np.concatenate([p.padded for p in parts]),
        [q for p in parts for q in p.quality],
    )


@dataclass(frozen=True)
class UnitAnswers:
    """Answers for windows of a fleet's units: a unit score is an answer plus its unit and the
    cycle it is for."""

    units: np.ndarray  # (N,) int
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

    def select(self, keep: np.ndarray) -> "UnitAnswers":
        """The rows where `keep` (N,) bool is true."""
        a = self.answers
        return UnitAnswers(
            self.units[keep],
            self.cycles[keep],
            Answers(
                a.health_states,
                a.rul[keep],
                None if a.rul_lower is None else a.rul_lower[keep],
                None if a.rul_upper is None else a.rul_upper[keep],
                a.health_probs[keep],
                a.cycles_used[keep],
                a.padded[keep],
                [q for q, k in zip(a.quality, keep.tolist(), strict=True) if k],
            ),
        )


def no_answers(health_states: tuple[str, ...]) -> Answers:
    """Answers for no window at all (a fleet whose every unit was skipped)."""
    empty = np.zeros(0, dtype=np.float32)
    return Answers(health_states, empty, None, None, np.zeros((0, len(health_states)), np.float32),
                   np.zeros(0, np.int64), np.zeros(0, bool), [])  # fmt: skip


def concat_units(parts: list[UnitAnswers], health_states: tuple[str, ...]) -> UnitAnswers:
    if not parts:
        return UnitAnswers(np.zeros(0, np.int64), np.zeros(0, np.int64), no_answers(health_states))
    return UnitAnswers(
        np.concatenate([p.units for p in parts]).astype(np.int64),
        np.concatenate([p.cycles for p in parts]).astype(np.int64),
        concat([p.answers for p in parts]),
    )
