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
    WithJsonSchema,
)

from service.quality import Quality

# A real request: the last 30 cycles of test_FD001 units 1 (true RUL 112) and 34 (true RUL 7).
EXAMPLE_REQUEST = json.loads((resources.files("service") / "examples" / "predict_fd001.json").read_text())


def _first_non_number(value: Any) -> str | None:
    """The first place where `value` is not a list of lists of numbers, described; None when
    it is one. Stops at the first problem: a million bad values cost one error, not a million."""
    if not isinstance(value, list):
        return f"Input should be a valid list of cycles (got {value!r:.40})"
    for cycle, row in enumerate(value):
        if not isinstance(row, list):
            return f"cycle {cycle}: Input should be a valid list (got {row!r:.40})"
        for column, x in enumerate(row):
            where = f"cycle {cycle}, column {column}: Input should be a valid number"
            if isinstance(x, bool) or not isinstance(x, str | int | float):
                return f"{where} (got {x!r:.40})"
            try:
                float(x)
            except ValueError:
                return f"{where}, unable to parse string as a number (got {x!r:.40})"
            except OverflowError:
                return f"{where}, too large for a float (got {str(x)[:20]}...)"
    return None


def readings_array(value: Any) -> np.ndarray | list[list[float]]:
    """Validate one window's readings: a list of cycles, each a list of numbers.

    The common case, a rectangular table of finite numbers, becomes a float32 array (T, C) in
    one numpy call, several times faster than validating a million JSON numbers one by one
    (bench/README.md). Anything else is walked once to name the cycle and column of the first
    value that is not a number; what passes (uneven rows, NaN or infinite values) goes on, and
    the predictor names the problem against the model.
    """
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
    return array if array is not None and array.ndim == 2 else value


Readings = Annotated[
    Any,
    PlainValidator(readings_array),
    WithJsonSchema({"type": "array", "items": {"type": "array", "items": {"type": "number"}}}),
]


class Window(BaseModel):
    id: str | None = Field(default=None, max_length=200, description="your label for the window, echoed back")
    readings: Readings = Field(
        description="cycles oldest first; per cycle 24 numbers: setting_1..3 then s_1..s_21 "
        "(C-MAPSS column order, raw units)"
    )


class PredictRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_REQUEST]})

    windows: list[Window] = Field(min_length=1)


class Answer(BaseModel):
    """One window's answer, the same on every path (service/answers.py builds it)."""

    rul: float = Field(description="remaining useful life in cycles, >= 0")
    rul_lower: float | None = Field(description="lower bound of the model's 90 % prediction interval")
    rul_upper: float | None = Field(
        description="upper bound of the interval; null when the model cannot bound the RUL from above "
        "(near the training cap): the RUL is at least rul_lower"
    )
    health_state: str = Field(description="normal | degrading | critical")
    health_probabilities: dict[str, float]
    cycles_used: int = Field(description="cycles of the window the model read")
    padded: bool = Field(description="true when the window was shorter than the model's and was padded")
    quality: Quality = Field(description="how far to trust this answer")


class Prediction(Answer):
    """A predicted window: its id (first in the JSON), then its answer."""

    id: str | None = Field(description="the window's id as sent")


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


class Readiness(BaseModel):
    status: str
    execution_provider: str = Field(description="the provider every model runs on, or 'mixed'")
    models: dict[str, str] = Field(description="model name -> execution provider in use")


def card_summary(card: dict[str, Any], provider: str) -> ModelSummary:
    return ModelSummary.model_validate({**card, "execution_provider": provider})
