"""Export a checkpoint to ONNX with all preprocessing inside the graph, check parity with
PyTorch on real raw windows, measure the exported graph on the test protocol and write the
model card.

    rul-export --checkpoint runs/fd001.pt --name fd001 --data-dir ../shared/data/cmapss

Writes `models/<name>.onnx` and `models/<name>.json`; the card's facts (all but the file's
own sha256) also go into the ONNX `metadata_props`, one JSON value per key.
"""

import argparse
import hashlib
import json
import logging
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

from training.checkpoint import OUTPUT_NAMES, RawReadingsModel, ServingGraph, load_checkpoint
from training.constants import (
    HEALTH_STATES,
    INPUT_FEATURES,
    MIN_CYCLES,
    N_OPERATING_CONDITIONS,
    PADDING_RULE,
)
from training.data import Subset, Unit, load_subset
from training.evaluate import PredictFn, evaluate_last_windows, rmse_all_windows, torch_predict_fn
from training.intervals import IntervalBands, IntervalHead, calibrate_uncapped
from training.preprocessing import Preprocessor, fit_imputation
from training.quality import CHECK_NAMES, QualityCheck, QualityStats, fit_quality
from training.recipes import RECIPES
from training.static_graph import make_static
from training.test_like import window_weights
from training.triton import write_triton_repo
from training.windows import last_windows, stack_windows

CARD_FORMAT = "rul-model-card/1"
PARITY_TOLERANCE_RUL = 1e-3  # cycles
PARITY_TOLERANCE_PROBS = 1e-4
PARITY_TOLERANCE_OOD = 1e-3  # relative


def export_onnx(graph: ServingGraph, example: np.ndarray, path: Path) -> None:
    """Trace `graph` on `example` (B > 1, W, 24) with a dynamic batch axis and write `path`,
    its shape computations folded (training/static_graph.py: nothing left for the CPU when
    it runs on a GPU)."""
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter chatter about LSTM weights and tree specs
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        program = torch.onnx.export(
            graph,
            (torch.from_numpy(example),),
            input_names=["readings"],
            output_names=list(OUTPUT_NAMES),
            dynamic_shapes={"readings": {0: batch}},
            dynamo=True,
            verbose=False,
        )
    program.save(str(path))
    onnx.save(make_static(onnx.load(str(path))), str(path))


def onnx_predict_fn(path: Path) -> PredictFn:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def predict(readings: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(OUTPUT_NAMES, session.run(list(OUTPUT_NAMES), {"readings": readings}), strict=True))

    return predict


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Max |a - b|, where equal infinities (an open upper bound) count as no difference."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    same_inf = np.isinf(a) & (a == b)
    with np.errstate(invalid="ignore"):  # inf - inf, masked just below
        return float(np.max(np.where(same_inf, 0.0, np.abs(a - b)))) if a.size else 0.0


def check_parity(torch_fn: PredictFn, onnx_fn: PredictFn, readings: np.ndarray) -> dict[str, float]:
    """Max |torch - onnxruntime| per output on the same raw windows; raises if over tolerance
    (the quality flags must agree exactly, the OOD score to PARITY_TOLERANCE_OOD relative)."""
    expected, got = torch_fn(readings), onnx_fn(readings)
    parity: dict[str, float] = {"n_windows": len(readings)}
    for name in OUTPUT_NAMES:
        parity[f"max_abs_diff_{name}"] = max_abs_diff(expected[name], got[name])
    worst_rul = max(parity[f"max_abs_diff_{n}"] for n in ("rul", "rul_lower", "rul_upper"))
    ood_scale = max(1.0, float(np.max(np.abs(expected["ood_score"]))))
    if (
        worst_rul > PARITY_TOLERANCE_RUL
        or parity["max_abs_diff_health_probs"] > PARITY_TOLERANCE_PROBS
        or parity["max_abs_diff_quality_flags"] != 0
        or parity["max_abs_diff_ood_score"] > PARITY_TOLERANCE_OOD * ood_scale
    ):
        raise RuntimeError(
            f"ONNX parity check failed: {parity}; tolerances {PARITY_TOLERANCE_RUL} cycles "
            f"and {PARITY_TOLERANCE_PROBS} probability, flags exact, "
            f"OOD score {PARITY_TOLERANCE_OOD} relative"
        )
    return parity


def faulty_copies(windows: np.ndarray, columns: list[int]) -> np.ndarray:
    """Copies of `windows` with one fault each, cycling through `columns` and the fault kinds
    (dead at 0.0, x10 spike in the last cycle, stuck at the first value): parity of the input
    checks and of masking, not only of clean windows."""
    faulty = windows.copy()
    for i, window in enumerate(faulty):
        column, kind = columns[i % len(columns)], i % 3
        if kind == 0:
            window[:, column] = 0.0
        elif kind == 1:
            window[-1, column] *= 10.0
        else:
            window[:, column] = window[0, column]
    return faulty


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


def build_graph(checkpoint_paths: list[str], data_dir: str | None) -> tuple[ServingGraph, list[dict], Subset]:
    """Members from the checkpoints; a single checkpoint keeps its own calibrated interval,
    an ensemble is calibrated anew on held-out units (`calibration_windows`)."""
    loaded = [load_checkpoint(p) for p in checkpoint_paths]
    members, checkpoints = [m for m, _ in loaded], [c for _, c in loaded]
    first = checkpoints[0]
    for path, c in zip(checkpoint_paths, checkpoints, strict=True):
        same = ("subset", "val_fraction", "split_seed", "folds")
        if any(c["train_config"].get(k, 0) != first["train_config"].get(k, 0) for k in same) or (
            c["window_length"] != first["window_length"]
        ):
            raise ValueError(f"{path} differs from {checkpoint_paths[0]} in subset, split or window length; "
                             "an ensemble's members must share them")  # fmt: skip
    subset = load_subset(first["train_config"]["subset"], data_dir)
    members = [with_imputation(m, c, subset, data_dir) for m, c in zip(members, checkpoints, strict=True)]
    window_length = first["window_length"]
    quality = fit_quality(subset.train, N_OPERATING_CONDITIONS[subset.name],
                          first["preprocessing"]["feature_names"], window_length)  # fmt: skip
    check = QualityCheck(quality, window_length)
    if len(members) == 1 and first["interval"].get("open_above") is not None:
        bands = IntervalBands(**first["interval"])
    else:  # against the uncapped truth, open above the cap (intervals.py)
        predicted, truth, weights, calibrated_on = calibration_windows(members, checkpoints, subset)
        bands = calibrate_uncapped(
            predicted, truth, first["interval"]["edges"], first["interval"]["nominal_coverage"],
            first["rul_cap"], calibrated_on, weights,
        )  # fmt: skip
    return ServingGraph(members, IntervalHead(bands), check).eval(), checkpoints, subset


def calibration_windows(
    members: list[RawReadingsModel], checkpoints: list[dict], subset: Subset
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(predicted RUL, true uncapped RUL, weight, description) on windows of units that the
    predicting network never trained on (a single network: its validation units):
    - members that share their validation units (a seed ensemble): the ensemble's mean on them;
    - members with disjoint validation units (a cross-validation ensemble): each member on its
      own fold, i.e. out-of-fold predictions over every training unit. These are single-network
      errors, on average no smaller than the ensemble's, so the interval errs on the wide side.
    Members whose validation units overlap without being equal leave no unit unseen by all of
    them and no fold structure: refused.

    The weights are test-like (training/test_like.py): each unit counts once, and its window
    ending at cycle e weighs as many of the subset's test units as were observed for e cycles
    (+-10); only the test units' lengths are used, never their labels. The every-window set
    over-represents early, easy windows: on fd001's out-of-fold windows an unweighted 90 %
    calibration covered 90.0 % of every window but 87.5 % test-like (RESULTS.md, round 12)."""
    window_length = checkpoints[0]["window_length"]
    by_id = {u.unit_id: u for u in subset.train}

    def windows(ids: set[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        units = [by_id[i] for i in sorted(ids)]
        x, y = stack_windows(units, window_length, None)
        return x, y, window_weights(units, subset.test, window_length)

    val_sets = [set(c["split"]["validation_units"]) for c in checkpoints]
    if all(v == val_sets[0] for v in val_sets):
        x_val, y_val, w_val = windows(val_sets[0])
        uncalibrated = ServingGraph(members, IntervalHead(IntervalBands(**checkpoints[0]["interval"]))).eval()
        calibrated_on = "validation windows, true uncapped RUL, test-like weights"
        return torch_predict_fn(uncalibrated)(x_val)["rul"], y_val, w_val, calibrated_on
    n_units = len(set().union(*val_sets))
    if sum(len(v) for v in val_sets) != n_units:
        raise ValueError("the members' validation units overlap but differ: no calibration set is held out "
                         "from every member; use one split (seed ensemble) or disjoint folds")  # fmt: skip
    predicted, truth, weights = [], [], []
    for member, val_ids in zip(members, val_sets, strict=True):
        x_val, y_val, w_val = windows(val_ids)
        predicted.append(torch_predict_fn(member)(x_val)["rul"])
        truth.append(y_val)
        weights.append(w_val)
    calibrated_on = (f"out-of-fold validation windows of {n_units} training units, true uncapped RUL, "
                     "test-like weights")  # fmt: skip
    return np.concatenate(predicted), np.concatenate(truth), np.concatenate(weights), calibrated_on


def quality_card(stats: QualityStats) -> dict[str, Any]:
    """The card's account of the input checks: what is checked, the thresholds, how they were
    calibrated, and the rule that turns the outputs into a status."""
    return {
        "checks": {
            "out_of_range": "robust z-score |x - median| / (1.4826 MAD) of the cycle's operating condition "
            "above range_z of the column",
            "spike": "|robust z(t) - robust z(t-1)| above jump_z of the column",
            "stuck": "the same value in stuck_run consecutive cycles "
            "(2 more than the longest run in training)",
            "unknown_condition": "an operational setting farther than settings_z (scaled) from every "
            "training operating condition",
            "ood_score": "max(mean per-cycle squared Mahalanobis distance / C of the sensor z-scores, "
            "flagged "
            "columns imputed, / mahalanobis_threshold; settings distance / settings_z)",
        },
        "bits": {name: bit for bit, name in CHECK_NAMES.items()},
        "status_rule": "out_of_distribution if ood_score > 1 or more than max_masked checked columns are "
        "flagged; else degraded if any checked column is flagged (it is masked: replaced by its estimate "
        "from the other sensors in every member); else ok",
        "masking": "a flagged sensor column is replaced, in every cycle of the window, by its least-squares "
        "estimate from the unflagged sensors (weights fitted on each member's training units)",
        **stats.to_dict(),
    }


def write_metadata(path: Path, card: dict[str, Any]) -> None:
    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in card.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    model.producer_name = "rul-service training.export"
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export(
    checkpoint_paths: list[str], name: str, version: str, out_dir: str, data_dir: str | None, recipe: str = ""
) -> dict:
    """Build, check and write `<out_dir>/<name>.onnx` and its card; `recipe`: the name in
    training/recipes.py the checkpoints were trained with, recorded in the card."""
    graph, checkpoints, subset = build_graph(checkpoint_paths, data_dir)
    first = checkpoints[0]
    config, window_length = first["train_config"], first["window_length"]
    test_windows, _ = last_windows(subset.test, window_length)
    # Parity on the test windows, training windows from every operating condition, and
    # faulty copies of the test windows (the checks and the masking they trigger).
    train_windows, _ = stack_windows(subset.train[:5], window_length, None)
    checked = graph.quality.stats.column_index
    parity_windows = np.concatenate([test_windows, train_windows[::7], faulty_copies(test_windows, checked)])

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path, card_path = out / f"{name}.onnx", out / f"{name}.json"
    export_onnx(graph, test_windows[:8], onnx_path)
    onnx_fn = onnx_predict_fn(onnx_path)
    parity = check_parity(torch_predict_fn(graph), onnx_fn, parity_windows)
    test_metrics = evaluate_last_windows(onnx_fn, subset.test, window_length, first["health_thresholds"])
    test_metrics["rmse_all_windows_capped"] = rmse_all_windows(onnx_fn, subset.test, window_length)
    extra = config.get("extra_train_subsets")  # absent from checkpoints older than the flag
    pooled = f" (with those of {extra})" if extra else ""
    card: dict[str, Any] = {
        "format": CARD_FORMAT,
        "name": name,
        "version": version,
        "subsets": [config["subset"]],
        "window_length": window_length,
        "input_name": "readings",
        "input_features": list(INPUT_FEATURES),
        "outputs": {
            "rul": "cycles, >= 0, shape [batch]",
            "health_probs": "probabilities of health_states, shape [batch, 3]",
            "rul_lower": "lower bound of the prediction interval, cycles, >= 0, shape [batch]",
            "rul_upper": "upper bound of the prediction interval, cycles, shape [batch]; +inf where "
            "the interval is open above (predicted rul > interval.open_above): the RUL is at least rul_lower",
            "quality_flags": "int32 bit set per cycle and column, shape [batch, window, 24]: "
            + ", ".join(f"{bit} {name}" for bit, name in CHECK_NAMES.items()),
            "ood_score": "out-of-distribution score, shape [batch]; above 1: not like the training data",
        },
        "quality": quality_card(graph.quality.stats),
        "health_states": list(HEALTH_STATES),
        "health_thresholds": first["health_thresholds"],
        "rul_cap": first["rul_cap"],
        "padding": {
            "rule": PADDING_RULE,
            "min_cycles": MIN_CYCLES,
            "description": "windows shorter than window_length are padded at the front "
            "by repeating their first cycle; fewer than min_cycles is refused",
        },
        "interval": {
            "method": "split-conformal per predicted-RUL band (Mondrian)",
            **graph.interval.bands.to_dict(),
            "test_coverage": test_metrics["interval_coverage"],
            "test_coverage_capped_truth": test_metrics["interval_coverage_capped_truth"],
            "test_mean_width": test_metrics["interval_mean_width"],
        },
        "ensemble": {
            "members": len(checkpoints),
            "seeds": [c["train_config"]["seed"] for c in checkpoints],
            "folds": [c["train_config"]["fold"] for c in checkpoints] if config.get("folds") else None,
            "inference_cost": f"{len(checkpoints)} networks per window, outputs averaged",
        },
        "metrics": {
            "test": {
                **test_metrics,
                "protocol": "last window of each test unit vs the true RUL of "
                f"RUL_{config['subset']}.txt; headline rmse_capped_truth: truth capped at 125 (as "
                "published results), rmse: uncapped; intervals judged against the uncapped truth; "
                "rmse_all_windows_capped: every test window vs the true RUL capped at 125",
            },
            "validation": [c["metrics"]["validation"] for c in checkpoints],
        },
        "preprocessing": {
            "sensors": first["preprocessing"]["feature_names"],
            "operating_conditions": len(first["preprocessing"]["centroids"]),
            "normalisation": "z-score per operating condition, training units only" + pooled,
        },
        "training": {
            **({"recipe": f"{recipe} (training/recipes.py)"} if recipe else {}),
            "config": config,
            "model_config": first["model_config"],
            "checkpoints": list(checkpoint_paths),
            "training_seconds": [c["training_seconds"] for c in checkpoints],
            "torch_version": torch.__version__,
        },
        "parity": parity,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_metadata(onnx_path, card)
    card["sha256"] = sha256_of(onnx_path)
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    return card


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", nargs="+",
                        help="checkpoint(s) written by rul-train; several make an averaged ensemble. "
                             "Without it, --triton-repo packages <out-dir>/<name>.onnx")  # fmt: skip
    parser.add_argument("--name", required=True, help="model name, e.g. fd001 (file stem and URL name)")
    parser.add_argument("--version", default=datetime.now(UTC).strftime("%Y.%m.%d"),
                        help="model version for the card (default: today, YYYY.MM.DD)")  # fmt: skip
    parser.add_argument("--out-dir", default="models",
                        help="where to write <name>.onnx and <name>.json (default: models, where the "
                             "service looks)")  # fmt: skip
    parser.add_argument(
        "--force",
        action="store_true",
        help="overwrite an existing <out-dir>/<name>.onnx (by default a shipped model)",
    )
    parser.add_argument("--recipe", choices=sorted(RECIPES),
                        help="the recipe (training/recipes.py) the checkpoints were trained with: "
                             "the card names it")  # fmt: skip
    parser.add_argument(
        "--data-dir", default=None, help="C-MAPSS directory (default: $CMAPSS_DIR or data/cmapss)"
    )
    parser.add_argument(
        "--triton-repo",
        type=Path,
        help="also write a Triton model repository <dir>/<name>/{config.pbtxt,1/model.onnx}",
    )
    args = parser.parse_args(argv)
    onnx_path, card_path = Path(args.out_dir) / f"{args.name}.onnx", Path(args.out_dir) / f"{args.name}.json"
    if args.checkpoint:
        if onnx_path.exists() and not args.force:
            parser.error(f"{onnx_path} exists (a shipped model, if --out-dir is models): pass --force to "
                         "overwrite it, or choose another --name or --out-dir")  # fmt: skip
        card = export(
            args.checkpoint, args.name, args.version, args.out_dir, args.data_dir, args.recipe or ""
        )
        print(json.dumps({"onnx": str(onnx_path), "sha256": card["sha256"], "parity": card["parity"],
                          "test": card["metrics"]["test"]}, indent=2))  # fmt: skip
    elif not args.triton_repo:
        parser.error("give --checkpoint to export, or --triton-repo to package an exported model")
    else:
        if not card_path.exists():
            parser.error(f"{card_path} not found: export the model first (--checkpoint)")
        card = json.loads(card_path.read_text())
        if sha256_of(onnx_path) != card["sha256"]:
            parser.error(f"{onnx_path} does not match the sha256 in {card_path}")
    if args.triton_repo:
        print(f"Triton model repository: {write_triton_repo(onnx_path, card, args.triton_repo)}")


if __name__ == "__main__":
    main()
