"""What the input checks are, as data: the bit of each check in the graph's outputs, the
statistics and thresholds they read (`QualityStats`, fitted by training/quality_fit.py and
applied inside the graph by training/input_checks.py), and the model card's account of them
(`quality_card`)."""

from dataclasses import asdict, dataclass
from typing import Any

from training.order_check import OrderFit

# Bits of the `quality_flags` output (B, W, 24), per cycle and column.
OUT_OF_RANGE, SPIKE, STUCK, UNKNOWN_CONDITION, INCONSISTENT, NOISY, DRIFTING = 1, 2, 4, 8, 16, 32, 64
CHECK_NAMES = {
    OUT_OF_RANGE: "out_of_range",
    SPIKE: "spike",
    STUCK: "stuck",
    UNKNOWN_CONDITION: "unknown_condition",
    INCONSISTENT: "inconsistent",
    NOISY: "noisy",
    DRIFTING: "drifting",
}
# Bits of the `window_flags` output (B,), per window.
DIRECTION, REPEATED_CYCLES, SHORT_HISTORY, OUT_OF_ORDER, DISCONTINUITY = 1, 2, 4, 8, 16
WINDOW_CHECK_NAMES = {
    DIRECTION: "direction",
    REPEATED_CYCLES: "repeated_cycles",
    SHORT_HISTORY: "short_history",
    OUT_OF_ORDER: "out_of_order",
    DISCONTINUITY: "discontinuity",
}


@dataclass
class QualityStats:
    """Everything the checks need, as plain lists for the checkpoint and the model card."""

    columns: list[str]  # checked sensor columns, in the model's feature order
    column_index: list[int]  # their positions among the raw columns
    settings_scale: list[float]  # (3,) as in preprocessing
    centroids: list[list[float]]  # (K, 3) operating conditions in scaled-settings space
    center: list[list[float]]  # (K, C) per-condition median of each checked column
    scale: list[list[float]]  # (K, C) per-condition robust scale (1.4826 MAD; std if MAD is 0)
    range_z: list[float]  # (C,) out_of_range threshold on |robust z|
    jump_z: list[float]  # (C,) spike threshold on |robust z(t) - robust z(t-1)|
    stuck_run: list[int]  # (C,) this many equal consecutive values is stuck
    settings_z: list[float]  # (3,) unknown_condition threshold on |setting - nearest centroid| (scaled)
    precision: list[list[float]]  # (C, C) inverse covariance of the robust z-scores (training rows)
    imputation: list[list[float]]  # (C, C) estimates a masked column's z from the others
    mahalanobis_threshold: float  # threshold on the window's mean squared Mahalanobis distance / C
    max_masked: int  # more flagged sensor columns than this: out of distribution
    calibrated_on: str  # which units gave the statistics and which the thresholds
    window_length: int = 0  # the full window the window-level thresholds are stated for
    wear: list[float] | None = None  # (C,) health index = z @ wear (+ a constant): RUL in cycles
    # threshold on the index's slope, cycles of RUL per cycle, by real cycles in the window
    # (index n, 0..window_length; shorter windows are noisier, so never stricter)
    direction_slope: list[float] | None = None
    consistency_z: list[float] | None = None  # (C,) threshold on |mean residual| over a full window
    # threshold on the index's mean squared successive difference, (cycles of RUL)^2, by real
    # cycles in the window (index n, 0..window_length)
    successive_difference: list[float] | None = None
    repeated_allowed: int = 0  # most identical consecutive real cycles in any training window
    # the learned order check (training/order_check.py OrderFit: weights and threshold); the
    # card carries its summary, without the weights
    order_detector: dict | None = None
    # the learned stitch check (training/stitch_check.py, an OrderFit too); None: not fitted,
    # only the step checks judge continuity
    stitch_detector: dict | None = None
    # (W + 1, C) threshold on the mean squared successive difference of each column's residual
    # from its estimate from the others, by real cycles in the window (index n): the noisy check
    noise_mssd: list[list[float]] | None = None
    # the raw readings' width and how many of its first columns are settings (C-MAPSS: 24, 3;
    # absent from statistics fitted before data sets)
    n_columns: int = 24
    n_settings: int = 3
    # The continuity checks (training/continuity.py; absent from statistics fitted before them:
    # never fire): the health index's per-cycle noise s.d. (cycles of RUL) per operating
    # condition, the threshold on the
    # discontinuity statistic by real cycles (W + 1,), and on each column's residual slope
    # (robust s.d. per cycle) by real cycles (W + 1, C)
    health_noise: list[float] | None = None  # (K,) per operating condition
    step_threshold: list[float] | None = None
    drift_slope: list[list[float]] | None = None
    # the discontinuity check's level statistic: each checked column's per-cycle noise
    # variance per operating condition (K, C) and the threshold by real cycles (W + 1,)
    level_noise: list[list[float]] | None = None
    level_threshold: list[float] | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def quality_card(stats: QualityStats) -> dict[str, Any]:
    """The card's account of the input checks: what is checked, the thresholds, how they were
    calibrated, and the rule that turns the outputs into a status."""
    return {
        "checks": {
            "out_of_range": "robust z-score |x - median| / (1.4826 MAD) of the cycle's operating condition "
            "above range_z of the column",
            "spike": "|robust z(t) - robust z(t-1)| above jump_z of the column",
            "stuck": "the same value in stuck_run consecutive cycles "
            "(2 more than the longest run in training); whole cycles repeated are repeated_cycles",
            "unknown_condition": "an operational setting farther than settings_z (scaled) from every "
            "training operating condition",
            "inconsistent": "the column's mean, over the real cycles, of its robust z minus its estimate "
            "from the other sensors (imputation) above consistency_z x sqrt(window_length / cycles used); "
            "the "
            "column blamed is the one whose offset signature best explains the residuals; checked only "
            "when no per-cycle or noisy check fired",
            "noisy": "the mean squared successive difference, over the real cycles, of the column's robust "
            "z minus its estimate from the other sensors (imputation) above noise_mssd[cycles used] "
            "(2 x the largest on validation windows with as many cycles); the column blamed is the one "
            "whose noise signature (the squared column of I - imputation) best explains the excess; checked "
            "only when no per-cycle check fired",
            "drifting": "the least-squares slope, over the real cycles, of the column's robust z minus its "
            "estimate from the other sensors (imputation) above drift_slope[cycles used] (1.25 x the "
            "largest on validation windows with as many cycles); the column blamed is the one whose drift "
            "signature (its column of I - imputation) best explains the slopes; checked only when no "
            "per-cycle or noisy check fired",
            "direction": "the least-squares slope over the real cycles of the health index z @ wear "
            "(RUL in cycles, falls with wear) above direction_slope[cycles used]: cycles newest first "
            "or out of order (window_flags bit)",
            "out_of_order": "the mean squared successive difference of the health index over the real "
            "cycles above successive_difference[cycles used], or, on a full window, the learned order "
            "check's score above order_detector.threshold (a 1-D convolutional network on the sensor "
            "z-scores, flagged columns imputed, trained against reordered windows: "
            "training/order_check.py): cycles shuffled (window_flags bit)",
            "discontinuity": "the largest, over the real cycles j, of the squared least-squares step at j "
            "of the health index (flagged columns imputed; each cycle divided by its condition's "
            "health_noise) on top of a quadratic trend, in standard errors, above step_threshold[cycles "
            "used]; or the largest over j of the mean over the checked sensors of their squared "
            "standardised steps (each cycle divided by the square root of its condition's level_noise) "
            "above level_threshold[cycles used]; or, on a history of at least 10 cycles, the learned stitch "
            "check's score above stitch_detector.threshold (the order check's network, trained against "
            "windows stitched with another engine's cycles: training/stitch_check.py): "
            "the cycles of two engines in one window (window_flags bit; training/continuity.py)",
            "repeated_cycles": "more consecutive real cycles equal in all 24 columns than repeated_allowed "
            "(the most in any training unit) (window_flags bit)",
            "short_history": "fewer real cycles than window_length: the interval is calibrated for that "
            "history band (interval.short_history) (window_flags bit)",
            "ood_score": "max of: mean per-cycle squared Mahalanobis distance / C of the sensor z-scores "
            "over the real cycles, flagged columns imputed, / mahalanobis_threshold; settings distance / "
            "settings_z; direction slope and successive difference / their thresholds (on a full window at "
            "least exp(order score - order_detector.threshold)); repeated cycles / "
            "(repeated_allowed + 0.5); the discontinuity statistic / its threshold (at least "
            "exp(stitch score - stitch_detector.threshold)); the health index with "
            "flagged columns imputed",
        },
        "bits": {name: bit for bit, name in CHECK_NAMES.items()},
        "window_bits": {name: bit for bit, name in WINDOW_CHECK_NAMES.items()},
        "status_rule": "out_of_distribution if ood_score > 1, more than max_masked checked columns are "
        "flagged, or window_flags has direction, out_of_order, repeated_cycles or discontinuity; else "
        "degraded if any checked column is flagged (it is masked: replaced by its estimate from the other "
        "sensors in every member), window_flags has short_history, or the client's cycle numbers have a "
        "gap; else ok",
        "masking": "a flagged sensor column is replaced, in every cycle of the window, by its least-squares "
        "estimate from the unflagged sensors (weights fitted on each member's training units)",
        "wear_order": "a window flagged direction or out_of_order is read by the networks with its real "
        "cycles sorted by the health index, highest (least worn) first, not in the order sent "
        "(training/wear_order.py); every other window as sent",
        **stats.to_dict(),
        "order_detector": OrderFit(**stats.order_detector).summary() if stats.order_detector else None,
        "stitch_detector": OrderFit(**stats.stitch_detector).summary() if stats.stitch_detector else None,
    }
