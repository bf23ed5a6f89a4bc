"""The served ensemble built from checkpoints: every member with its preprocessing, the input
checks fitted on the members' training units, and the interval and the predictive
distribution calibrated on their held-out windows against the true, uncapped RUL, for full
windows and for each band of shorter history (what rul-export exports and the studies
evaluate)."""

from typing import NamedTuple

import numpy as np

from training import stitch_check
from training.calibration_weights import window_weights
from training.checkpoint import MembersMean, RawReadingsModel, ServingGraph, load_checkpoint
from training.constants import PADDING_RULE
from training.data import Subset, Unit, load_data, load_subset
from training.distribution import QuantileBands, QuantileHead, calibrate_quantiles
from training.evaluate import torch_predict_fn
from training.input_checks import QualityCheck
from training.intervals import (
    IntervalBands,
    IntervalHead,
    calibrate_uncapped,
    history_bands,
    with_short_history,
)
from training.order_check import OrderFit, beside, read_fit
from training.preprocessing import Preprocessor, fit_imputation
from training.quality_fit import fit_quality
from training.windows import cut_history, real_cycles, stack_windows

CUT_SEED = 0  # the lengths validation windows are cut to, per history band


class Calibration(NamedTuple):
    """Held-out windows' predictions, one entry per window (`calibration_windows`)."""

    predicted: np.ndarray  # RUL, cycles
    truth: np.ndarray  # true, uncapped RUL
    weights: np.ndarray  # test-like
    cycles_used: np.ndarray  # real cycles in the window
    cut: np.ndarray  # bool: a copy of a full window cut to a shorter history (`with_cuts`)
    calibrated_on: str


def with_imputation(
    member: RawReadingsModel, checkpoint: dict, subset: Subset, data_dir: str | None
) -> RawReadingsModel:
    """A member from a checkpoint older than masking gets imputation weights fitted on its
    own training units (and those pooled from other subsets), as rul-train fits them now."""
    stats = member.preprocessor.stats
    if stats.imputation is not None:
        return member
    ids = set(checkpoint["split"]["train_units"])
    units: list[Unit] = [u for u in subset.train if u.unit_id in ids]
    for name, extra_ids in checkpoint["split"].get("extra_train_units", {}).items():
        wanted = set(extra_ids)
        units += [u for u in load_subset(name, data_dir).train if u.unit_id in wanted]
    member.preprocessor = Preprocessor(fit_imputation(units, stats))
    return member


def load_members(
    checkpoint_paths: list[str], data_dir: str | None, dataset: str = ""
) -> tuple[list[RawReadingsModel], list[dict], Subset]:
    """The members of an ensemble, their checkpoints and their subset; refuses members that
    differ in subset, split or window length."""
    loaded = [load_checkpoint(p) for p in checkpoint_paths]
    members, checkpoints = [m for m, _ in loaded], [c for _, c in loaded]
    first = checkpoints[0]
    for path, c in zip(checkpoint_paths, checkpoints, strict=True):
        same = ("subset", "dataset", "val_fraction", "split_seed", "folds")
        if any(c["train_config"].get(k, 0) != first["train_config"].get(k, 0) for k in same) or (
            c["window_length"] != first["window_length"]
        ):
            raise ValueError(f"{path} differs from {checkpoint_paths[0]} in subset, split or window length; "
                             "an ensemble's members must share them")  # fmt: skip
    config = first["train_config"]
    subset = load_data(config["subset"], dataset or config.get("dataset", ""), data_dir)
    members = [with_imputation(m, c, subset, data_dir) for m, c in zip(members, checkpoints, strict=True)]
    return members, checkpoints, subset


def build_graph(
    checkpoint_paths: list[str],
    data_dir: str | None,
    order_fit: OrderFit | None = None,
    dataset: str = "",
    stitch_fit: OrderFit | None = None,
) -> tuple[ServingGraph, list[dict], Subset]:
    """The graph rul-export exports, from the checkpoints: the members, the input checks fitted
    on their training units with the learned checks rul-train wrote (`order_fit`, `stitch_fit`;
    by default the files beside the first checkpoint: training/learned_checks.py), and the interval and
    predictive distribution calibrated here, once, on held-out windows (`calibration_windows`),
    for full windows and each band of shorter history. Nothing is trained here."""
    members, checkpoints, subset = load_members(checkpoint_paths, data_dir, dataset)
    first = checkpoints[0]
    window_length, spec = first["window_length"], subset.spec
    checked = first["preprocessing"]["feature_names"]
    order_fit = order_fit or saved_order_check(checkpoint_paths[0])
    stitch_fit = stitch_fit or saved_stitch_check(checkpoint_paths[0])
    quality = fit_quality(subset.train, spec.operating_conditions, checked, window_length, order_fit,
                          spec.features, len(spec.settings), first["rul_cap"], stitch_fit)  # fmt: skip
    held_out = calibration_windows(members, checkpoints, subset)
    bands, quantiles = calibrated(held_out, window_length, first["interval"], first["rul_cap"])
    check = QualityCheck(quality, window_length)
    graph = ServingGraph(members, IntervalHead(bands), check, QuantileHead(quantiles))
    return graph.eval(), checkpoints, subset


def calibrated(
    held_out: "Calibration", window_length: int, interval: dict, rul_cap: float
) -> tuple[IntervalBands, QuantileBands]:
    """The interval (`interval`: the band edges and nominal coverage rul-train was told) and
    the predictive distribution, calibrated against the uncapped truth of held-out windows,
    open above the cap (intervals.py, distribution.py)."""
    p, truth, weights, used = held_out.predicted, held_out.truth, held_out.weights, held_out.cycles_used
    full = used == window_length
    bands = calibrate_uncapped(p[full], truth[full], interval["edges"], interval["nominal_coverage"], rul_cap,
                               held_out.calibrated_on, weights[full])  # fmt: skip
    bands = with_short_history(bands, p, truth, used, weights, window_length)
    quantiles = calibrate_quantiles(p, truth, weights, used, window_length, bands.edges, rul_cap,
                                    held_out.calibrated_on)  # fmt: skip
    return bands, quantiles


def saved_order_check(checkpoint: str) -> OrderFit:
    """The learned order check rul-train wrote beside `checkpoint`."""
    path = beside(checkpoint)
    if not path.exists():
        raise ValueError(f"no learned order check at {path}: rul-train writes it beside the checkpoints "
                         "it trains (checkpoints from elsewhere: rul-export --order-check FILE)")  # fmt: skip
    return read_fit(path)


def saved_stitch_check(checkpoint: str) -> OrderFit:
    """The learned stitch check rul-train wrote beside `checkpoint`."""
    path = stitch_check.beside(checkpoint)
    if not path.exists():
        raise ValueError(f"no learned stitch check at {path}: rul-train writes it beside the checkpoints it "
                         f"trains; for a checkpoint trained before it existed: python -m "
                         f"training.learned_checks --checkpoint {checkpoint} (checkpoints from elsewhere: "
                         "rul-export --stitch-check FILE)")  # fmt: skip
    return read_fit(path)


def calibration_windows(
    members: list[RawReadingsModel], checkpoints: list[dict], subset: Subset
) -> Calibration:
    """Predicted RUL, true uncapped RUL, weight and cycles used of windows of units
    that the predicting network never trained on (a single network: its validation units),
    padded as served, each full window also cut to a length in every history band
    (`with_cuts`):
    - members that share their validation units (a seed ensemble): the ensemble's mean on them;
    - members with disjoint validation units (a cross-validation ensemble): each member on its
      own fold, i.e. out-of-fold predictions over every training unit. These are single-network
      errors, on average no smaller than the ensemble's, so the interval errs on the wide side.
    Members whose validation units overlap without being equal leave no unit unseen by all of
    them and no fold structure: refused.

    The weights are test-like (training/calibration_weights.py): each unit counts once, and its window
    ending at cycle e weighs as many of the subset's test units as were observed for e cycles
    (+-10); only the test units' lengths are used, never their labels. The every-window set
    over-represents early, easy windows: on fd001's out-of-fold windows an unweighted 90 %
    calibration covered 90.0 % of every window but 87.5 % test-like (RESULTS.md, round 12)."""
    window_length = checkpoints[0]["window_length"]
    by_id = {u.unit_id: u for u in subset.train}

    def windows(ids: set[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        units = [by_id[i] for i in sorted(ids)]
        x, y = stack_windows(units, window_length, None, padding=PADDING_RULE)
        return with_cuts(x, y, window_weights(units, subset.test, window_length))

    val_sets = [set(c["split"]["validation_units"]) for c in checkpoints]
    if all(v == val_sets[0] for v in val_sets):
        x_val, y_val, w_val, cut = windows(val_sets[0])
        return Calibration(
            torch_predict_fn(MembersMean(members))(x_val)["rul"],
            y_val,
            w_val,
            real_cycles(x_val),
            cut,
            "validation windows, true uncapped RUL, test-like weights",
        )
    n_units = len(set().union(*val_sets))
    if sum(len(v) for v in val_sets) != n_units:
        raise ValueError("the members' validation units overlap but differ: no calibration set is held out "
                         "from every member; use one split (seed ensemble) or disjoint folds")  # fmt: skip
    parts = []
    for member, val_ids in zip(members, val_sets, strict=True):
        x_val, y_val, w_val, cut = windows(val_ids)
        parts.append((torch_predict_fn(member)(x_val)["rul"], y_val, w_val, real_cycles(x_val), cut))
    calibrated_on = (f"out-of-fold validation windows of {n_units} training units, true uncapped RUL, "
                     "test-like weights")  # fmt: skip
    return Calibration(*(np.concatenate([p[k] for p in parts]) for k in range(5)), calibrated_on)


def with_cuts(
    x: np.ndarray, y: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Windows (N, W, 24), truth, weights -> the same followed, per history band
    (intervals.history_bands), by a copy of every full window cut to a length drawn uniformly
    in the band (what a client with that much history sends), and which are cut copies. A cut
    window keeps its truth and its weight (the end cycle is the same)."""
    window_length = x.shape[1]
    full = np.flatnonzero(real_cycles(x) == window_length)
    rng = np.random.default_rng(CUT_SEED)
    xs, ys, ws = [x], [y], [w]
    for first, last in history_bands(window_length):
        lengths = rng.integers(first, last + 1, size=len(full))
        xs.append(cut_history(x[full], lengths))
        ys.append(y[full])
        ws.append(w[full])
    cut = np.arange(sum(len(part) for part in xs)) >= len(x)
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ws), cut
