"""Request and response bodies of the v1 API (DESIGN.md, "The service API")."""

import json
from importlib import resources
from typing import Annotated, Any

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictInt,
    StrictStr,
    WithJsonSchema,
    model_validator,
)

from service.core.fleet_file import FEATURES
from service.core.planning import MAX_HORIZONS, MAX_RISK
from service.core.window_quality import Quality

# A real request: the last 50 cycles of test_FD001 units 9 (true RUL 111) and 34 (true RUL 7),
# with their cycle numbers.
EXAMPLE_REQUEST = json.loads((resources.files("service") / "examples" / "predict_fd001.json").read_text())


def _kind(value: Any) -> str:
    """What a value is, without echoing a container: the offending scalar itself, bounded."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return f"{value!r:.40}"


def _column(column: int) -> str:
    return f"column {column} ({FEATURES[column]})" if column < len(FEATURES) else f"column {column}"


def _first_non_number(value: Any) -> str | None:
    """The first place where `value` is not a list of lists of numbers, described; None when
    it is one. Stops at the first problem: a million bad values cost one error, not a million."""
    if not isinstance(value, list):
        return f"Input should be a valid list of cycles, or an object of named columns (got {_kind(value)})"
    for cycle, row in enumerate(value):
        if not isinstance(row, list):
            return f"cycle {cycle}: Input should be a valid list (got {_kind(row)})"
        for column, x in enumerate(row):
            where = f"cycle {cycle}, {_column(column)}: Input should be a valid number"
            if isinstance(x, bool) or not isinstance(x, str | int | float):
                return f"{where} (got {_kind(x)})"
            try:
                float(x)
            except ValueError:
                return f"{where}, unable to parse string as a number (got {x!r:.40})"
            except OverflowError:
                return f"{where}, too large for a float (got {str(x)[:20]}...)"
    return None


def _by_name(names: list[str]) -> dict[str, int]:
    """{feature: its position in `names`} ('S_1 ' and 's_1' alike), or ValueError naming the
    unknown, repeated and missing columns."""
    normal = [str(n).strip().lower() for n in names]
    unknown = [n for n in names if str(n).strip().lower() not in FEATURES]
    repeated = sorted({n for n in normal if normal.count(n) > 1})
    missing = [f for f in FEATURES if f not in normal]
    more = " ..." if len(missing) > 6 else ""
    problems = [f"unknown {', '.join(repr(str(n)[:30]) for n in unknown[:5])}" if unknown else "",
                f"repeated {', '.join(repeated[:5])}" if repeated else "",
                f"missing {', '.join(missing[:6])}{more}" if missing else ""]  # fmt: skip
    if any(problems):
        raise ValueError(f"named columns: {'; '.join(p for p in problems if p)}; expected each of "
                         "setting_1..setting_3 and s_1..s_21 once")  # fmt: skip
    return {feature: normal.index(feature) for feature in FEATURES}


def named_columns(value: dict[str, Any] | list[Any]) -> list[list[Any]]:
    """Readings sent by name -> cycles of 24 values in C-MAPSS order. Two shapes, any column
    order, names case-insensitive: an object of columns {"setting_1": [v, ...], ..., "s_21":
    [...]} (each one value per cycle, oldest first) or a list of cycles [{"setting_1": v, ...}]."""
    if isinstance(value, dict):
        position = _by_name(list(value))
        columns = list(value.values())
        lengths = {}
        for feature, i in position.items():
            if not isinstance(columns[i], list):
                raise ValueError(f"named column {feature}: Input should be a valid list of values, one "
                                 f"per cycle (got {_kind(columns[i])})")  # fmt: skip
            lengths[feature] = len(columns[i])
        if len(set(lengths.values())) > 1:
            first = FEATURES[0]
            odd = next(f for f in FEATURES if lengths[f] != lengths[first])
            raise ValueError(f"named columns differ in length: {odd} has {lengths[odd]} values, "
                             f"{first} has {lengths[first]}; send one value per cycle in each")  # fmt: skip
        ordered = [columns[position[f]] for f in FEATURES]
        return [list(cycle) for cycle in zip(*ordered, strict=True)]
    rows = []
    for cycle, row in enumerate(value):
        if not isinstance(row, dict):
            raise ValueError(f"cycle {cycle}: Input should be an object of named values like cycle 0 "
                             f"(got {_kind(row)})")  # fmt: skip
        try:
            position = _by_name(list(row))
        except ValueError as exc:
            raise ValueError(f"cycle {cycle}: {exc}") from None
        values = list(row.values())
        rows.append([values[position[f]] for f in FEATURES])
    return rows


def readings_array(value: Any) -> np.ndarray | list[list[float]]:
    """Validate one window's readings: a list of cycles, each a list of numbers, or the same
    by column name (`named_columns`).

    The common case, a rectangular table of finite numbers, becomes a float32 array (T, C) in
    one numpy call, several times faster than validating a million JSON numbers one by one
    (bench/README.md). Anything else is walked once to name the cycle and column of the first
    value that is not a number; what passes (uneven rows, NaN or infinite values) goes on, and
    the predictor names the problem against the model.
    """
    if isinstance(value, dict) or (isinstance(value, list) and value and isinstance(value[0], dict)):
        value = named_columns(value)
    try:
        with np.errstate(over="ignore"):  # a huge number becomes inf and is refused below
            array = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError, OverflowError):
        array = None
    if array is not None and array.ndim == 2 and np.isfinite(array).all():
        return array
    problem = _first_non_number(value)
    if problem:
        raise ValueError(problem)
    if array is not None and array.ndim == 2 and not _overflowed(value, array):
        return array
    return value  # as sent: the predictor's error then names the number that overflowed float32


def _overflowed(value: Any, array: np.ndarray) -> bool:
    """Whether a finite number sent became inf in float32 (1e300)."""
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            sent = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return False
    return bool((np.isinf(array) & np.isfinite(sent)).any())


Readings = Annotated[
    Any,
    PlainValidator(readings_array),
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "array",
                    "items": {"type": "array", "items": {"type": "number"}},
                    "description": "cycles, oldest first, each 24 numbers in C-MAPSS order",
                },
                {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "number"}},
                    "description": "named columns setting_1..3, s_1..s_21 (any order), a value per cycle",
                },
                {
                    "type": "array",
                    "items": {"type": "object", "additionalProperties": {"type": "number"}},
                    "description": "cycles, oldest first, each an object of the 24 named values",
                },
            ]
        }
    ),  # fmt: skip
]


class RequestBody(BaseModel):
    """An object of a request body: a field it does not know is refused (422 naming the field
    and the fields allowed), never silently ignored: `{"model": "fd003", ...}` sent to
    /v1/predict, or a typo `"horizon"`, would otherwise be answered as if it were not there."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = [key for key in data if key not in cls.model_fields]
            if unknown:
                raise ValueError(
                    f"unknown field {str(unknown[0])[:60]!r}; the fields allowed here are "
                    f"{', '.join(cls.model_fields)}"
                )
        return data


WindowId = Annotated[StrictStr, Field(max_length=200)] | StrictInt


class Window(RequestBody):
    id: WindowId | None = Field(
        default=None, description="your label for the window (text or an integer), echoed back as sent"
    )
    readings: Readings = Field(
        description="cycles oldest first; per cycle 24 numbers: setting_1..3 then s_1..s_21 "
        "(C-MAPSS column order, raw units)"
    )
    cycles: list[StrictInt] | None = Field(
        default=None,
        description="optional: the engine's cycle number of each reading, one per cycle of `readings`. "
        "Numbers that decrease or repeat are refused (422 naming the position); missing cycles are "
        "flagged in `quality` (cycle_gap, status degraded); quality flags then name these numbers",
    )


Horizons = Annotated[
    list[Annotated[StrictInt, Field(ge=1)]] | None,
    Field(
        default=None,
        max_length=MAX_HORIZONS,
        description="optional: horizons in cycles; each answer gives P(failure within each). "
        "Whole numbers >= 1, each once, at most the model's rul_cap; default RUL_DEFAULT_HORIZONS",
    ),
]
Risk = Annotated[
    float | None,
    Field(
        default=None,
        gt=0,
        le=MAX_RISK,
        description="optional: the risk the caller accepts, in (0, 0.5]; each answer gives the RUL "
        "left with probability at least 1 - risk (rul_at_risk); default RUL_DEFAULT_RISK",
    ),
]


class PredictRequest(RequestBody):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE_REQUEST]})

    windows: list[Window] = Field(min_length=1)
    horizons: Horizons
    risk: Risk


class FailureProbability(BaseModel):
    within_cycles: int = Field(description="the horizon asked, cycles")
    probability: float = Field(description="P(true RUL <= within_cycles), from the calibrated distribution")


class RulAtRisk(BaseModel):
    risk: float = Field(description="the risk asked")
    rul: float = Field(
        description="the engine has at least this many cycles left, with probability >= 1 - risk"
    )


class Answer(BaseModel):
    """One window's answer, the same on every path (service/core/answers.py builds it)."""

    rul: float = Field(description="remaining useful life in cycles, >= 0")
    rul_lower: float | None = Field(description="lower bound of the model's 90 % prediction interval")
    rul_upper: float | None = Field(
        description="upper bound of the interval; null when the model cannot bound the RUL from above "
        "(near the training cap): the RUL is at least rul_lower"
    )
    health_state: str = Field(description="normal | degrading | critical")
    health_probabilities: dict[str, float]
    failure_probabilities: list[FailureProbability] = Field(description="one per horizon asked, in order")
    rul_at_risk: RulAtRisk
    cycles_used: int = Field(description="cycles of the window the model read")
    padded: bool = Field(description="true when the window was shorter than the model's and was padded")
    quality: Quality = Field(description="how far to trust this answer")


class Prediction(Answer):
    """A predicted window: its id (first in the JSON), then its answer."""

    id: str | int | None = Field(description="the window's id as sent")


class UnitScore(Answer):
    """A scored unit (or one point of its trajectory): an answer plus its unit and cycle."""

    unit: int
    cycle: int = Field(description="the file's cycle number the answer is for")


class PredictResponse(BaseModel):
    model: str
    model_version: str
    predictions: list[Prediction]


class ModelSummary(BaseModel):
    """A model card as served: the card's own fields plus the provider actually in use."""

    model_config = ConfigDict(extra="allow")

    name: str
    version: str
    execution_provider: str


class ModelList(BaseModel):
    default_model: str | None
    models: list[ModelSummary]
    unavailable: dict[str, str] = Field(description="models that failed to load, with the reason")
    default_horizons: list[int] = Field(description="failure_probabilities' horizons when none are asked")
    default_risk: float = Field(description="rul_at_risk's risk when none is asked")


class Readiness(BaseModel):
    status: str
    execution_provider: str = Field(description="the provider every model runs on, or 'mixed'")
    models: dict[str, str] = Field(description="model name -> execution provider in use")


def card_summary(card: dict[str, Any], provider: str) -> ModelSummary:
    return ModelSummary.model_validate({**card, "execution_provider": provider})
