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

from training.checkpoint import RawReadingsModel, load_checkpoint
from training.constants import HEALTH_STATES, INPUT_FEATURES, MIN_CYCLES, PADDING_RULE
from training.data import load_subset
from training.evaluate import PredictFn, evaluate_last_windows, torch_predict_fn
from training.windows import last_windows, stack_windows

CARD_FORMAT = "rul-model-card/1"
PARITY_TOLERANCE_RUL = 1e-3  # cycles
PARITY_TOLERANCE_PROBS = 1e-4


def export_onnx(model: RawReadingsModel, example: np.ndarray, path: Path) -> None:
    """Trace `model` on `example` (B > 1, W, 24) with a dynamic batch axis and write `path`."""
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter chatter about LSTM weights and tree specs
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        program = torch.onnx.export(
            model,
            (torch.from_numpy(example),),
            input_names=["readings"],
            output_names=["rul", "health_probs"],
            dynamic_shapes={"readings": {0: batch}},
            dynamo=True,
            verbose=False,
        )
    program.save(str(path))


def onnx_predict_fn(path: Path) -> PredictFn:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def predict(readings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rul, probs = session.run(["rul", "health_probs"], {"readings": readings})
        return rul, probs

    return predict


def check_parity(torch_fn: PredictFn, onnx_fn: PredictFn, readings: np.ndarray) -> dict[str, float]:
    """Max |torch - onnxruntime| on the same raw windows; raises if over tolerance."""
    t_rul, t_probs = torch_fn(readings)
    o_rul, o_probs = onnx_fn(readings)
    parity = {
        "n_windows": len(readings),
        "max_abs_diff_rul": float(np.max(np.abs(t_rul - o_rul))),
        "max_abs_diff_health_probs": float(np.max(np.abs(t_probs - o_probs))),
    }
    if (
        parity["max_abs_diff_rul"] > PARITY_TOLERANCE_RUL
        or parity["max_abs_diff_health_probs"] > PARITY_TOLERANCE_PROBS
    ):
        raise RuntimeError(
            f"ONNX parity check failed: {parity}; tolerances {PARITY_TOLERANCE_RUL} cycles "
            f"and {PARITY_TOLERANCE_PROBS} probability"
        )
    return parity


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_metadata(path: Path, card: dict[str, Any]) -> None:
    model = onnx.load(str(path))
    del model.metadata_props[:]
    for key, value in card.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    model.producer_name = "rul-service training.export"
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def export(
    checkpoint_path: str, name: str, version: str, out_dir: str, data_dir: str | None
) -> dict:
    model, checkpoint = load_checkpoint(checkpoint_path)
    config = checkpoint["train_config"]
    window_length = checkpoint["window_length"]
    subset = load_subset(config["subset"], data_dir)
    test_windows, _ = last_windows(subset.test, window_length)
    # Parity on the test windows plus training windows from every operating condition.
    train_windows, _ = stack_windows(subset.train[:5], window_length, None)
    parity_windows = np.concatenate([test_windows, train_windows[::7]])

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path, card_path = out / f"{name}.onnx", out / f"{name}.json"
    export_onnx(model, test_windows[:8], onnx_path)
    onnx_fn = onnx_predict_fn(onnx_path)
    parity = check_parity(torch_predict_fn(model), onnx_fn, parity_windows)

    half_width = checkpoint["interval"]["half_width"]
    test_metrics = evaluate_last_windows(
        onnx_fn, subset.test, window_length, checkpoint["health_thresholds"], half_width
    )
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
        },
        "health_states": list(HEALTH_STATES),
        "health_thresholds": checkpoint["health_thresholds"],
        "rul_cap": checkpoint["rul_cap"],
        "padding": {
            "rule": PADDING_RULE,
            "min_cycles": MIN_CYCLES,
            "description": "windows shorter than window_length are padded at the front "
            "by repeating their first cycle; fewer than min_cycles is refused",
        },
        "interval": {
            **checkpoint["interval"],
            "test_coverage": test_metrics.get("interval_coverage"),
            "test_mean_width": test_metrics.get("interval_mean_width"),
        },
        "metrics": {
            "test": {
                **test_metrics,
                "protocol": "last window of each test unit vs the uncapped "
                f"true RUL of RUL_{config['subset']}.txt",
            },
            "validation": checkpoint["metrics"]["validation"],
        },
        "preprocessing": {
            "sensors": checkpoint["preprocessing"]["feature_names"],
            "operating_conditions": len(checkpoint["preprocessing"]["centroids"]),
            "normalisation": "z-score per operating condition, training units only",
        },
        "training": {
            "config": config,
            "model_config": checkpoint["model_config"],
            "training_seconds": checkpoint["training_seconds"],
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
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by rul-train")
    parser.add_argument(
        "--name", required=True, help="model name, e.g. fd001 (file stem and URL name)"
    )
    parser.add_argument(
        "--version",
        default=datetime.now(UTC).strftime("%Y.%m.%d"),
        help="model version for the card (default: today, YYYY.MM.DD)",
    )
    parser.add_argument(
        "--out-dir", default="models", help="where to write <name>.onnx and <name>.json"
    )
    parser.add_argument(
        "--data-dir", default=None, help="C-MAPSS directory (default: $CMAPSS_DIR or data/cmapss)"
    )
    args = parser.parse_args(argv)
    card = export(args.checkpoint, args.name, args.version, args.out_dir, args.data_dir)
    print(
        json.dumps(
            {
                "onnx": str(Path(args.out_dir) / f"{args.name}.onnx"),
                "sha256": card["sha256"],
                "parity": card["parity"],
                "test": card["metrics"]["test"],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
