"""Request and response bodies of the v1 API (DESIGN.md, "The service API")."""

import json
from importlib import resources
from typing import Annotated, Any, Literal

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

from service.core.planning import MAX_HORIZONS, MAX_RISK
from service.core.window_input import NamedReadings, first_non_list, first_non_number
from service.core.window_quality import Quality

# A real request: the last 50 cycles of test_FD001 units 9 (true RUL 111) and 34 (true RUL 7),
# with their cycle numbers.
EXAMPLE_REQUEST = json.loads((resources.files("service") / "examples" / "predict_fd001.json").read_text())


def readings_array(value: Any) -> np.ndarray | list[list[float]] | NamedReadings:
    """Validate one window's readings: a list of cycles, each a list of numbers, or the same
    by column name (`named_columns`).

    The common case, a rectangular table of finite numbers, becomes a float32 array (T, C) in
    one numpy call, several times faster than validating a million JSON numbers one by one
    (bench/README.md). Anything that is not a list of cycles, each a list, is refused here;
    what else passes (uneven rows, a value that is not a number, NaN or infinite values) goes
    on, and the predictor names the problem against the model's columns.
    """
    if isinstance(value, dict) or (isinstance(value, list) and value and isinstance(value[0], dict)):
        return NamedReadings(value)  # put in the model's order, and checked, by the predictor
    try:
        with np.errstate(over="ignore"):  # a huge number becomes inf and is refused below
            array = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError, OverflowError):
        array = None
    if array is not None and array.ndim == 2 and np.isfinite(array).all():
        return array
    problem = first_non_list(value)
    if problem:
        raise ValueError(problem)
    # None and the like would pass as NaN, an overflow as inf
    if (
        array is not None
        and array.ndim == 2
        and not _overflowed(value, array)
        and not first_non_number(value, ())
    ):
        return array
    # as sent: the predictor names a value that is not a number, or overflowed float32, by the
    # model's column names (which only the model knows)
    return value


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
    explain: bool = Field(
        default=False,
        description="optional: also say which sensors drive each RUL (drivers); each window then runs "
        "the model once more per sensor it reads",
    )


class FailureProbability(BaseModel):
    within_cycles: int = Field(description="the horizon asked, cycles")
    probability: float = Field(description="P(true RUL <= within_cycles), from the calibrated distribution")


class RulAtRisk(BaseModel):
    risk: float = Field(description="the risk asked")
    rul: float = Field(
        description="the engine has at least this many cycles left, with probability >= 1 - risk"
    )


class Driver(BaseModel):
    column: str = Field(description="the sensor, by the model card's name")
    effect: float = Field(
        description="cycles: the RUL as read minus the RUL with this sensor replaced by its estimate from "
        "the others (sending it dead moves the RUL by minus this); negative: it makes the engine look "
        "more worn"
    )
    reads: Literal["high", "low"] = Field(description="which side of its estimate from the others it reads")


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
    drivers: list[Driver] | None = Field(
        default=None,
        description="with explain: the sensors that move this RUL most, largest |effect| first (at most "
        "5); the effects do not add up to the RUL",
    )
    drivers_note: str | None = Field(
        default=None,
        description="with explain: sensors masked as faulty (no driver), and the window's warning if it "
        "is not ok",
    )


class Prediction(Answer):
    """A predicted window: its id (first in the JSON), then its answer."""

    id: str | int | None = Field(description="the window's id as sent")


class UnitScore(Answer):
    """A scored unit (or one point of its trajectory): an answer plus its unit and cycle."""

    unit: int | str = Field(description="the unit as the fleet file names it: an integer, or text")
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
