"""The model card (`models/<name>.json`) as the service reads it.

Only the facts the service acts on are typed; everything else in the card (metrics,
training config, ...) is kept as is and returned by GET /v1/models/{model}.
"""

from pydantic import BaseModel, ConfigDict, Field


class Padding(BaseModel):
    model_config = ConfigDict(extra="allow")

    rule: str = Field(pattern="^edge$")  # repeat the first cycle at the front
    min_cycles: int = Field(ge=1)


class Interval(BaseModel):
    """How the graph's rul_lower/rul_upper outputs were calibrated (the service reads the
    bounds from the graph, not from here)."""

    model_config = ConfigDict(extra="allow")

    method: str
    nominal_coverage: float


class ModelCard(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    version: str
    subsets: list[str]
    window_length: int = Field(ge=1)
    input_name: str = "readings"
    input_features: list[str] = Field(min_length=1)
    health_states: list[str] = Field(min_length=1)
    health_thresholds: dict[str, float]
    rul_cap: float
    padding: Padding
    interval: Interval | None = None
    sha256: str = Field(pattern="^[0-9a-f]{64}$")
