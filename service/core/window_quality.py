"""What a prediction says about how far to trust it: the `quality` of the API (its status,
its flags and the OOD score; DESIGN.md, the API contract) and the plain tuples the service
builds and passes around for it. service/core/check_sentences.py decides the status and writes the flags'
sentences."""

from typing import Literal, NamedTuple

from pydantic import BaseModel, Field

Status = Literal["ok", "degraded", "out_of_distribution"]
OK: Status = "ok"
DEGRADED: Status = "degraded"
OUT_OF_DISTRIBUTION: Status = "out_of_distribution"


class QualityFlag(BaseModel):
    column: str | None = Field(description="the input column, e.g. s_4 or setting_1; null: the whole window")
    check: str = Field(
        description="a column's: out_of_range | spike | stuck | noisy | unknown_condition | drifting | "
        "inconsistent (the first that fired); the window's: direction | out_of_order | repeated_cycles | "
        "discontinuity | short_history | cycle_gap"
    )
    problem: str = Field(description="what is wrong, with the values involved")
    cycles: list[int] = Field(description="flagged cycles: positions in the readings sent (0 = first), or "
                              "the cycle numbers sent in `cycles`; in scoring, the file's")  # fmt: skip


class Quality(BaseModel):
    """How far to trust one answer (the API's `quality`; the same object on every path)."""

    status: Status = Field(
        description="ok: every reading within what training shows, alone and against the other sensors, "
        "the cycles in order with none repeated or missing, a full window of history; degraded: a sensor "
        "was flagged and masked (replaced by its estimate from the others), the history is short (the "
        "interval is that history's) or cycles are missing; out_of_distribution: the window is not like "
        "the training data, its cycles run backwards or repeat (the RUL is still returned, and should "
        "not be trusted)"
    )
    flags: list[QualityFlag] = Field(default_factory=list)
    ood_score: float = Field(
        default=0.0, description="out-of-distribution score; above 1: not like the training data"
    )


# What the service builds and passes around: the fields of QualityFlag and Quality (the API's
# schema, above) in tuples. The garbage collector stops tracking a plain tuple of strings and
# numbers after its first pass (not a NamedTuple, nor a pydantic model): as pydantic models,
# the qualities of a 20 000-unit fleet were 1.4 million tracked objects, and each full
# collection walked them all while holding the interpreter (up to 1.2 s in which no request
# was answered, bench/README.md). So a window's flags are kept as plain tuples and read as Flags.
class Flag(NamedTuple):
    column: str | None
    check: str
    problem: str
    cycles: tuple[int, ...]


class WindowQuality(NamedTuple):
    status: Status
    flag_rows: tuple[tuple, ...] = ()  # each flag's fields, in Flag's order, as a plain tuple
    ood_score: float = 0.0

    @property
    def flags(self) -> tuple[Flag, ...]:
        return tuple(Flag._make(row) for row in self.flag_rows)

    def why_out_of_distribution(self) -> str:
        """One sentence for a refusal: the score and the first flags' problems."""
        why = "; ".join(f"{f.column or 'the window'} {f.problem}" for f in self.flags[:3])
        return f"out of distribution (ood_score {self.ood_score:g}): {why or 'unlike the training data'}"


def flag_subject(column: str | None, check: str) -> str:
    """What a flag is about, in one word: its column, or a whole window's check (column null)."""
    return column or check
