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
from training.constants import HEALTH_STATES, INPUT_FEATURES, MIN_CYCLES, PADDING_RULE, RUL_CAP
from training.data import Subset, load_subset
from training.evaluate import PredictFn, evaluate_last_windows, rmse_all_windows, torch_predict_fn
from training.intervals import IntervalBands, IntervalHead, calibrate_bands
from training.triton import write_triton_repo
from training.windows import last_windows, stack_windows

CARD_FORMAT = "rul-model-card/1"
PARITY_TOLERANCE_RUL = 1e-3  # cycles
PARITY_TOLERANCE_PROBS = 1e-4


def export_onnx(graph: ServingGraph, example: np.ndarray, path: Path) -> None:
    """Trace `graph` on `example` (B > 1, W, 24) with a dynamic batch axis and write `path`."""
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


def onnx_predict_fn(path: Path) -> PredictFn:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def predict(readings: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(OUTPUT_NAMES, session.run(list(OUTPUT_NAMES), {"readings": readings}), strict=True))

    return predict


def check_parity(torch_fn: PredictFn, onnx_fn: PredictFn, readings: np.ndarray) -> dict[str, float]:
    """Max |torch - onnxruntime| per output on the same raw windows; raises if over tolerance."""
    expected, got = torch_fn(readings), onnx_fn(readings)
    parity: dict[str, float] = {"n_windows": len(readings)}
    for name in OUTPUT_NAMES:
        parity[f"max_abs_diff_{name}"] = float(np.max(np.abs(expected[name] - got[name])))
    worst_rul = max(parity[f"max_abs_diff_{n}"] for n in ("rul", "rul_lower", "rul_upper"))
    if worst_rul > PARITY_TOLERANCE_RUL or parity["max_abs_diff_health_probs"] > PARITY_TOLERANCE_PROBS:
        raise RuntimeError(
            f"ONNX parity check failed: {parity}; tolerances {PARITY_TOLERANCE_RUL} cycles "
            f"and {PARITY_TOLERANCE_PROBS} probability"
        )
    return parity


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
    if len(members) == 1:
        bands = IntervalBands(**first["interval"])
    else:
        predicted, truth, calibrated_on = calibration_windows(members, checkpoints, subset)
        bands = calibrate_bands(
            predicted, truth, first["interval"]["edges"], first["interval"]["nominal_coverage"], calibrated_on
        )
    return ServingGraph(members, IntervalHead(bands)).eval(), checkpoints, subset


def calibration_windows(
    members: list[RawReadingsModel], checkpoints: list[dict], subset: Subset
) -> tuple[np.ndarray, np.ndarray, str]:
    """(predicted RUL, truth capped at RUL_CAP, description) on windows of units that the
    predicting network never trained on:
    - members that share their validation units (a seed ensemble): the ensemble's mean on them;
    - members with disjoint validation units (a cross-validation ensemble): each member on its
      own fold, i.e. out-of-fold predictions over every training unit. These are single-network
      errors, on average no smaller than the ensemble's, so the interval errs on the wide side.
    Members whose validation units overlap without being equal leave no unit unseen by all of
    them and no fold structure: refused."""
    window_length = checkpoints[0]["window_length"]
    by_id = {u.unit_id: u for u in subset.train}
    val_sets = [set(c["split"]["validation_units"]) for c in checkpoints]
    if all(v == val_sets[0] for v in val_sets):
        x_val, y_val = stack_windows([by_id[i] for i in sorted(val_sets[0])], window_length, RUL_CAP)
        uncalibrated = ServingGraph(members, IntervalHead(IntervalBands(**checkpoints[0]["interval"]))).eval()
        calibrated_on = f"validation windows, truth capped at {RUL_CAP:g}"
        return torch_predict_fn(uncalibrated)(x_val)["rul"], y_val, calibrated_on
    n_units = len(set().union(*val_sets))
    if sum(len(v) for v in val_sets) != n_units:
        raise ValueError("the members' validation units overlap but differ: no calibration set is held out "
                         "from every member; use one split (seed ensemble) or disjoint folds")  # fmt: skip
    predicted, truth = [], []
    for member, val_ids in zip(members, val_sets, strict=True):
        x_val, y_val = stack_windows([by_id[i] for i in sorted(val_ids)], window_length, RUL_CAP)
        predicted.append(torch_predict_fn(member)(x_val)["rul"])
        truth.append(y_val)
    calibrated_on = f"out-of-fold validation windows of {n_units} training units, truth capped at {RUL_CAP:g}"
    return np.concatenate(predicted), np.concatenate(truth), calibrated_on


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


def export(checkpoint_paths: list[str], name: str, version: str, out_dir: str, data_dir: str | None) -> dict:
    graph, checkpoints, subset = build_graph(checkpoint_paths, data_dir)
    first = checkpoints[0]
    config, window_length = first["train_config"], first["window_length"]
    test_windows, _ = last_windows(subset.test, window_length)
    # Parity on the test windows plus training windows from every operating condition.
    train_windows, _ = stack_windows(subset.train[:5], window_length, None)
    parity_windows = np.concatenate([test_windows, train_windows[::7]])

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
            "rul_upper": "upper bound of the prediction interval, cycles, shape [batch]",
        },
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
                "protocol": "last window of each test unit vs the uncapped "
                f"true RUL of RUL_{config['subset']}.txt; rmse_all_windows_capped: every test "
                "window vs the true RUL capped at 125",
            },
            "validation": [c["metrics"]["validation"] for c in checkpoints],
        },
        "preprocessing": {
            "sensors": first["preprocessing"]["feature_names"],
            "operating_conditions": len(first["preprocessing"]["centroids"]),
            "normalisation": "z-score per operating condition, training units only" + pooled,
        },
        "training": {
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
    parser.add_argument("--out-dir", default="models", help="where to write <name>.onnx and <name>.json")
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
        card = export(args.checkpoint, args.name, args.version, args.out_dir, args.data_dir)
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
