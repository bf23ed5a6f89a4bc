"""The model card (`models/<name>.json`) as the service reads it.

Only the facts the service acts on are typed; everything else in the card (metrics,
training config, ...) is kept as is and returned by GET /v1/models/{model}.
"""

from pydantic import BaseModel, ConfigDict, Field

# The exported graph's outputs, in order (training/checkpoint.py's OUTPUT_NAMES, which
# rul-export writes; the service, which never imports training, reads them from here).
GRAPH_OUTPUTS = (
    "rul",
    "health_probs",
    "rul_lower",
    "rul_upper",
    "quality_flags",
    "ood_score",
    "window_flags",
    "rul_quantiles",
)


class Padding(BaseModel):
    model_config = ConfigDict(extra="allow")

    # "nan": a short history is sent with leading rows of NaN, which the graph counts and
    # fills; "edge" (exports before 2026-12-02): the first cycle repeated, refused at load
    rule: str = Field(pattern="^(nan|edge)$")
    min_cycles: int = Field(ge=1)


class Interval(BaseModel):
    """How the graph's rul_lower/rul_upper outputs were calibrated (the service reads the
    bounds from the graph, not from here)."""

    model_config = ConfigDict(extra="allow")

    method: str
    nominal_coverage: float


class Distribution(BaseModel):
    """The graph's rul_quantiles output (training/distribution.py): its quantile levels, in
    column order; a quantile above open_above is +inf (the distribution is open there)."""

    model_config = ConfigDict(extra="allow")

    levels: list[float] = Field(min_length=2)
    open_above: float


class QualityChecks(BaseModel):
    """The input checks inside the graph (training/input_checks.py): the statistics the service
    needs to explain a flag in words and the rule that turns the outputs into a status."""

    model_config = ConfigDict(extra="allow")

    bits: dict[str, int]  # check name -> bit of the quality_flags output
    columns: list[str]  # checked sensor columns
    column_index: list[int]  # their positions among the input features
    settings_scale: list[float]
    centroids: list[list[float]]  # (K, 3) scaled settings of the training operating conditions
    center: list[list[float]]  # (K, C)
    scale: list[list[float]]  # (K, C)
    range_z: list[float]
    jump_z: list[float]
    stuck_run: list[int]
    settings_z: list[float]
    max_masked: int = Field(ge=0)
    # The window-level checks (exports since 2026-12-02; absent before, and such a model is
    # refused at load): window_flags bits, and what explains an inconsistent column and a
    # window whose wear runs backwards.
    window_bits: dict[str, int] = Field(default_factory=dict)
    window_length: int = 0
    imputation: list[list[float]] | None = None  # (C, C)
    consistency_z: list[float] | None = None  # (C,)
    wear: list[float] | None = None  # (C,)
    direction_slope: list[float] | None = None  # (W + 1,)
    successive_difference: list[float] | None = None  # (W + 1,)
    repeated_allowed: int = 0
    # the learned order check's summary (exports since 2026-12-03): its threshold explains it
    order_detector: dict | None = None
    noise_mssd: list[list[float]] | None = None  # (W + 1, C) the noisy check (exports since 2026-12-04)
    # the continuity checks (exports since 2026-12-07): per operating condition the health
    # index's per-cycle noise s.d. (K,) and each sensor's noise variance (K, C); the
    # discontinuity thresholds (W + 1,) and the drifting check's (W + 1, C)
    health_noise: list[float] | None = None
    level_noise: list[list[float]] | None = None
    step_threshold: list[float] | None = None
    level_threshold: list[float] | None = None
    drift_slope: list[list[float]] | None = None
    # the learned stitch check's summary (exports since 2026.12.07.2): it also sets discontinuity
    stitch_detector: dict | None = None


class ModelCard(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    version: str
    subsets: list[str]
    window_length: int = Field(ge=1)
    input_name: str = "readings"
    input_features: list[str] = Field(min_length=1)
    # Also kept, untyped: `dataset`, the data set the model was trained on (its unit and cycle
    # columns name a fleet file's: fleet_file.FleetLayout.of); absent from cards written before
    # data sets (C-MAPSS: unit, cycle).
    health_states: list[str] = Field(min_length=1)
    health_thresholds: dict[str, float]
    rul_cap: float
    padding: Padding
    interval: Interval | None = None
    quality: QualityChecks | None = None  # None: a model exported before the checks
    distribution: Distribution | None = None  # None: exports before 2026.12.02.2, refused at load
    sha256: str = Field(pattern="^[0-9a-f]{64}$")
