"""Preprocessing that lives inside the exported graph: operating-condition assignment,
sensor selection and per-condition z-score normalisation.

Statistics are fitted on training units only (never validation or test) with numpy, then
frozen into a `Preprocessor` module as buffers, so the ONNX file maps raw readings to model
inputs exactly as training did.
"""

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from training.conditions import kmeans
from training.constants import INFORMATIVE_SENSORS, INPUT_FEATURES, SETTING_NAMES
from training.data import Unit

MIN_STD = 1e-4  # a feature that is constant within a condition is left centred, not blown up


@dataclass
class PreprocessingStats:
    """Everything the graph needs; plain lists so it goes into checkpoints and cards as is."""

    feature_names: list[str]  # selected input features, in model-input order
    feature_index: list[int]  # their columns in the raw readings (the data set's features)
    settings_scale: list[float]  # (3,) divides the settings before the nearest-centroid search
    centroids: list[list[float]]  # (K, 3) operating conditions in scaled-settings space
    mean: list[list[float]]  # (K, F) per-condition feature means
    std: list[list[float]]  # (K, F) per-condition feature standard deviations
    # (F, F) row j: least-squares weights that estimate normalised feature j from the others
    # (0 on the diagonal); a masked (faulty) feature is replaced by this estimate. None in
    # checkpoints older than masking: fit_imputation() adds it from the same training units.
    imputation: list[list[float]] | None = None
    # The raw readings' columns (the data set's settings then sensors) and how many of them are
    # settings; absent from checkpoints written before data sets: C-MAPSS's 24 and 3.
    input_features: list[str] = field(default_factory=lambda: list(INPUT_FEATURES))
    n_settings: int = len(SETTING_NAMES)
    # sensors not read and why ("constant", "near-constant"), when chosen from the data
    not_read: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def assign_conditions(settings: np.ndarray, stats: PreprocessingStats) -> np.ndarray:
    """(N, 3) raw settings -> (N,) index of the nearest operating-condition centroid."""
    scaled = settings / np.asarray(stats.settings_scale)
    centroids = np.asarray(stats.centroids)
    return np.argmin(((scaled[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)


SENSOR_CHOICES = ("standard", "varying", "data")
# A sensor is near-constant in a condition when one value holds at least this share of the
# condition's rows (a quantised or parked signal). On C-MAPSS this reads exactly the literature's
# 14 sensors in each subset: the 7 left out hold 35-100 % of their rows at one value in every
# condition, the 14 read at most 27 % (s_17, an integer-valued sensor); measured on the four
# subsets' training units, docs/own-fleet.md.
NEAR_CONSTANT_SHARE = 0.30


def varying_sensors(rows: np.ndarray, condition: np.ndarray, features: tuple[str, ...] = INPUT_FEATURES,
                    n_settings: int = len(SETTING_NAMES)) -> tuple[str, ...]:  # fmt: skip
    """Sensors that are not constant within some operating condition: a sensor constant in
    every condition carries no information about degradation."""
    names = []
    for j, name in enumerate(features[n_settings:], start=n_settings):
        column = rows[:, j]
        if any(np.ptp(column[condition == k]) > 0 for k in np.unique(condition)):
            names.append(name)
    return tuple(names)


def sensors_from_data(
    rows: np.ndarray, condition: np.ndarray, features: tuple[str, ...], n_settings: int
) -> tuple[tuple[str, ...], dict[str, str]]:
    """The sensors to read, and those not read with why: "constant" (one value in every
    operating condition), "near-constant" (in every condition one value holds at least
    NEAR_CONSTANT_SHARE of the rows)."""
    read, not_read = [], {}
    for j, name in enumerate(features[n_settings:], start=n_settings):
        shares, constant = [], True
        for k in np.unique(condition):
            _, counts = np.unique(rows[condition == k, j], return_counts=True)
            shares.append(counts.max() / counts.sum())
            constant = constant and len(counts) == 1
        if constant:
            not_read[name] = "constant"
        elif min(shares) >= NEAR_CONSTANT_SHARE:
            not_read[name] = (
                f"near-constant (one value holds >= {NEAR_CONSTANT_SHARE:.0%} of its rows in every condition)"
            )
        else:
            read.append(name)
    return tuple(read), not_read


def fit_preprocessing(
    units: list[Unit],
    n_conditions: int,
    sensors: str = "standard",
    features: tuple[str, ...] = INPUT_FEATURES,
    n_settings: int = len(SETTING_NAMES),
) -> PreprocessingStats:
    """Fit condition centroids and per-condition statistics on `units` (training units only).

    features: the raw readings' columns (a data set's settings then sensors), the first
    n_settings of them settings. sensors: "standard" keeps the 14 sensors of the literature
    (constants.INFORMATIVE_SENSORS) on C-MAPSS's columns and, on any other data set, decides
    from the data as "data" does; "varying" keeps every sensor that varies within some
    operating condition; "data" leaves out the constant and near-constant ones
    (`sensors_from_data`), said in the card.
    """
    if sensors not in SENSOR_CHOICES:
        raise ValueError(f"unknown sensor selection {sensors!r}; expected one of {', '.join(SENSOR_CHOICES)}")
    rows = np.concatenate([u.readings for u in units]).astype(np.float64)  # (N, F_raw)
    settings = rows[:, :n_settings]
    settings_scale = np.maximum(settings.std(axis=0), MIN_STD)
    centroids = kmeans(settings / settings_scale, n_conditions)
    stats = PreprocessingStats(
        feature_names=[],
        feature_index=[],
        settings_scale=settings_scale.tolist(),
        centroids=centroids.tolist(),
        mean=[],
        std=[],
        input_features=list(features),
        n_settings=n_settings,
    )
    condition = assign_conditions(settings, stats)
    if sensors == "standard" and set(INFORMATIVE_SENSORS) <= set(features[n_settings:]):
        selected = INFORMATIVE_SENSORS
    elif sensors == "varying":
        selected = varying_sensors(rows, condition, features, n_settings)
    else:
        selected, stats.not_read = sensors_from_data(rows, condition, features, n_settings)
    if len(selected) < 2:
        raise ValueError(f"the training data leave {len(selected)} sensor(s) to read ({stats.not_read}); "
                         "a model needs two or more that vary with wear")  # fmt: skip
    feature_index = [features.index(s) for s in selected]
    stats.feature_names, stats.feature_index = list(selected), feature_index
    features_rows = rows[:, feature_index]
    for k in range(n_conditions):
        in_k = features_rows[condition == k]
        if len(in_k) == 0:
            raise ValueError(f"operating condition {k} has no training rows; lower n_conditions")
        stats.mean.append(in_k.mean(axis=0).tolist())
        stats.std.append(np.maximum(in_k.std(axis=0), MIN_STD).tolist())
    return fit_imputation(units, stats)


def normalise(rows: np.ndarray, stats: PreprocessingStats) -> np.ndarray:
    """(N, 24) raw rows -> (N, F) selected features, z-scored per operating condition."""
    condition = assign_conditions(rows[:, : stats.n_settings], stats)
    features = rows[:, stats.feature_index]
    return (features - np.asarray(stats.mean)[condition]) / np.asarray(stats.std)[condition]


def imputation_weights(z: np.ndarray, ridge: float = 1e-3) -> np.ndarray:
    """(N, F) normalised rows -> (F, F) weights: row j regresses feature j on all others
    (ridge least squares, no intercept: the features are centred). The C-MAPSS sensors move
    together as an engine degrades, so one is well estimated from the rest."""
    n_features = z.shape[1]
    weights = np.zeros((n_features, n_features))
    for j in range(n_features):
        others = [i for i in range(n_features) if i != j]
        a = z[:, others]
        weights[j, others] = np.linalg.solve(a.T @ a + ridge * len(a) * np.eye(len(others)), a.T @ z[:, j])
    return weights


def fit_imputation(units: list[Unit], stats: PreprocessingStats) -> PreprocessingStats:
    """`stats` with its imputation weights fitted on `units` (the same training units)."""
    rows = np.concatenate([u.readings for u in units]).astype(np.float64)
    stats.imputation = imputation_weights(normalise(rows, stats)).tolist()
    return stats


class Preprocessor(nn.Module):
    """Raw readings (B, W, 24) -> normalised selected features (B, W, F), ONNX-exportable.
    With a mask (B, F) of faulty features, each masked feature is replaced, in every cycle,
    by its estimate from the unmasked ones (`imputation_weights`)."""

    def __init__(self, stats: PreprocessingStats):
        super().__init__()
        self.stats = stats
        self.n_settings = stats.n_settings
        self.register_buffer("feature_index", torch.tensor(stats.feature_index, dtype=torch.long))
        self.register_buffer("settings_scale", torch.tensor(stats.settings_scale))
        self.register_buffer("centroids", torch.tensor(stats.centroids))  # (K, 3)
        self.register_buffer("mean", torch.tensor(stats.mean))  # (K, F)
        self.register_buffer("std", torch.tensor(stats.std))  # (K, F)
        n_features = len(stats.feature_index)
        imputation = stats.imputation if stats.imputation is not None else [[0.0] * n_features] * n_features
        self.register_buffer("imputation", torch.tensor(imputation, dtype=torch.float32))  # (F, F)

    def forward(self, readings: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.n_settings:
            settings = readings[..., : self.n_settings] / self.settings_scale  # (B, W, S)
            dist = ((settings.unsqueeze(-2) - self.centroids) ** 2).sum(-1)  # (B, W, K)
            condition = dist.argmin(dim=-1)  # (B, W)
        else:  # no setting columns: one operating condition (no zero-size tensors in the graph)
            condition = (readings[..., 0] > float("inf")).long()  # (B, W) zeros, with no shape op
        features = readings.index_select(-1, self.feature_index)  # (B, W, F)
        z = (features - self.mean[condition]) / self.std[condition]  # (B, W, F)
        if mask is None:
            return z
        keep = (~mask).unsqueeze(1)  # (B, 1, F)
        z = torch.where(keep, z, 0.0)  # a faulty value never reaches the network
        estimate = z @ self.imputation.T  # (B, W, F) each feature from the unmasked others
        return torch.where(keep, z, estimate)


def masked_validation_mask(n_windows: int, n_features: int) -> torch.Tensor:
    """(N, F) bool: window i has feature i mod F masked, so each feature is masked equally
    often and the same way in every run (the masked half of the validation criterion)."""
    mask = torch.zeros(n_windows, n_features, dtype=torch.bool)
    mask[torch.arange(n_windows), torch.arange(n_windows) % n_features] = True
    return mask


def random_feature_mask(batch: int, n_features: int, prob: float, generator: torch.Generator) -> torch.Tensor:
    """(B, F) bool: with probability `prob` a window gets one uniformly chosen feature masked."""
    masked = torch.rand(batch, generator=generator) < prob
    column = torch.randint(n_features, (batch,), generator=generator)
    mask = torch.zeros(batch, n_features, dtype=torch.bool)
    mask[masked, column[masked]] = True
    return mask
