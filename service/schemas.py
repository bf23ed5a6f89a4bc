"""Request and response bodies of the v1 API (DESIGN.md, "The service API")."""

import json
from importlib import resources
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# A real request: the last 30 cycles of test_FD001 units 1 (true RUL 112) and 34 (true RUL 7).
EXAMPLE_REQUEST = json.loads((resources.files("service") / "examples" / "predict_fd001.json").read_text())


class Window(BaseModel):
    id: str | None = Field(default=None, max_length=200, description="your label for the window, echoed back")
    readings: list[list[float]] = Field(
        description="cycles oldest first; per cycle 24 numbers: setting_1..3 then s_1..s_21 "
        "(C-MAPSS column order, raw units)"
    )


class PredictRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_REQUEST]})

    windows: list[Window] = Field(min_length=1)


class Prediction(BaseModel):
    id: str | None
    rul: float = Field(description="remaining useful life in cycles, >= 0")
    rul_lower: float | None = Field(description="lower bound of the model's prediction interval")
    rul_upper: float | None = Field(description="upper bound of the model's prediction interval")
    health_state: str = Field(description="normal | degrading | critical")
    health_probabilities: dict[str, float]
    cycles_used: int = Field(description="cycles of the window the model read")
    padded: bool = Field(description="true when the window was shorter than the model's and was padded")


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
