"""Evaluation on the test protocol: each test unit's last window against the uncapped true
RUL of `RUL_FD00x.txt` (RMSE, PHM08 score, health accuracy and macro-F1, interval coverage).

    rul-evaluate --checkpoint runs/fd001.pt --data-dir ../shared/data/cmapss
"""

import argparse
import json
from collections.abc import Callable

import numpy as np
import torch

from training.checkpoint import load_checkpoint
from training.constants import HEALTH_STATES
from training.data import Unit, load_subset
from training.labels import health_labels
from training.metrics import accuracy, interval_coverage, macro_f1, phm08_score, rmse
from training.windows import last_windows

# (N, W, 24) float32 raw readings -> (rul (N,), health_probs (N, 3)), both numpy
PredictFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def torch_predict_fn(model: torch.nn.Module, batch_size: int = 1024) -> PredictFn:
    """Wrap a RawReadingsModel as a numpy-in, numpy-out function, batched, without gradients."""

    def predict(readings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ruls, probs = [], []
        model.eval()
        with torch.no_grad():
            for start in range(0, len(readings), batch_size):
                rul, prob = model(torch.from_numpy(readings[start : start + batch_size]))
                ruls.append(rul.numpy())
                probs.append(prob.numpy())
        return np.concatenate(ruls), np.concatenate(probs)

    return predict


def evaluate_last_windows(
    predict: PredictFn,
    units: list[Unit],
    window_length: int,
    health_thresholds: dict[str, float],
    interval_half_width: float | None = None,
) -> dict[str, float]:
    """The test-protocol metrics of `predict` on each unit's last window (uncapped truth)."""
    readings, true_rul = last_windows(units, window_length)
    rul, probs = predict(readings)
    true_health = health_labels(
        true_rul, health_thresholds["critical_max"], health_thresholds["degrading_max"]
    )
    metrics = {
        "n_units": len(units),
        "rmse": rmse(rul, true_rul),
        "phm08_score": phm08_score(rul, true_rul),
        "health_accuracy": accuracy(probs.argmax(axis=1), true_health),
        "health_macro_f1": macro_f1(probs.argmax(axis=1), true_health, len(HEALTH_STATES)),
    }
    if interval_half_width is not None:
        lower = np.maximum(rul - interval_half_width, 0.0)
        metrics["interval_coverage"] = interval_coverage(true_rul, lower, rul + interval_half_width)
        metrics["interval_mean_width"] = float(np.mean(rul + interval_half_width - lower))
    return metrics


def evaluate_checkpoint(checkpoint_path: str, data_dir: str | None) -> dict[str, float]:
    model, checkpoint = load_checkpoint(checkpoint_path)
    subset = load_subset(checkpoint["train_config"]["subset"], data_dir)
    return evaluate_last_windows(
        torch_predict_fn(model),
        subset.test,
        checkpoint["window_length"],
        checkpoint["health_thresholds"],
        checkpoint["interval"]["half_width"],
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by rul-train")
    parser.add_argument(
        "--data-dir", default=None, help="C-MAPSS directory (default: $CMAPSS_DIR or data/cmapss)"
    )
    args = parser.parse_args(argv)
    metrics = evaluate_checkpoint(args.checkpoint, args.data_dir)
    print(json.dumps({"checkpoint": args.checkpoint, "test": metrics}, indent=2))


if __name__ == "__main__":
    main()
