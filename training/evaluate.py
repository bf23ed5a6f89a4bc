"""Evaluation on the test protocol: each test unit's last window against the uncapped true
RUL of `RUL_FD00x.txt` (RMSE, PHM08 score, health accuracy and macro-F1, interval coverage),
plus the RMSE over every test window against the capped truth.

    rul-evaluate --checkpoint runs/fd001.pt --data-dir ../shared/data/cmapss --out-dir runs/eval/fd001

writes `metrics.json`, `units.csv` (one row per test unit) and `units.png` (predicted vs
true RUL per unit, sorted by true RUL, with the interval band).
"""

import argparse
import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from training.checkpoint import OUTPUT_NAMES
from training.constants import HEALTH_STATES, PADDING_RULE, RUL_CAP
from training.data import Unit
from training.labels import health_labels
from training.metrics import accuracy, bootstrap_rmse_interval, interval_coverage, macro_f1, phm08_score, rmse
from training.windows import last_windows, stack_windows

# (N, W, 24) float32 raw readings -> {"rul": (N,), "health_probs": (N, 3)[, "rul_lower", "rul_upper"]}
PredictFn = Callable[[np.ndarray], dict[str, np.ndarray]]


def torch_predict_fn(model: torch.nn.Module, batch_size: int = 2048) -> PredictFn:
    """Wrap a RawReadingsModel as a numpy-in, numpy-out function, batched, without gradients."""

    def predict(readings: np.ndarray) -> dict[str, np.ndarray]:
        parts: list[tuple[torch.Tensor, ...]] = []
        model.eval()
        with torch.no_grad():
            for start in range(0, len(readings), batch_size):
                parts.append(model(torch.from_numpy(readings[start : start + batch_size])))
        return {
            name: torch.cat([p[i] for p in parts]).numpy()
            for i, name in enumerate(OUTPUT_NAMES[: len(parts[0])])
        }

    return predict


def protocol_metrics(
    outputs: dict[str, np.ndarray],
    true_rul: np.ndarray,
    health_thresholds: dict[str, float],
    rul_cap: float = RUL_CAP,
) -> dict[str, float | list[float]]:
    """RMSE (and its 90 % bootstrap interval over the units), PHM08, health accuracy and
    macro-F1 (and interval coverage/width, and the share of units below each RUL quantile, if
    present)."""
    rul = outputs["rul"]
    predicted_health = outputs["health_probs"].argmax(axis=1)
    true_health = health_labels(
        true_rul, health_thresholds["critical_max"], health_thresholds["degrading_max"]
    )
    metrics = {
        "n_units": len(true_rul),
        "rmse": rmse(rul, true_rul),
        "phm08_score": phm08_score(rul, true_rul),
        # as much published work computes them: the test truth capped like the target (125)
        "rmse_capped_truth": rmse(rul, np.minimum(true_rul, rul_cap)),
        "phm08_score_capped_truth": phm08_score(rul, np.minimum(true_rul, rul_cap)),
        "rmse_ci90": bootstrap_rmse_interval(rul, true_rul),
        "rmse_capped_truth_ci90": bootstrap_rmse_interval(rul, np.minimum(true_rul, rul_cap)),
        "health_accuracy": accuracy(predicted_health, true_health),
        "health_macro_f1": macro_f1(predicted_health, true_health, len(HEALTH_STATES)),
    }
    if "rul_lower" in outputs:
        lower, upper = outputs["rul_lower"], outputs["rul_upper"]
        metrics["interval_coverage"] = interval_coverage(true_rul, lower, upper)
        metrics["interval_coverage_capped_truth"] = interval_coverage(
            np.minimum(true_rul, rul_cap), lower, upper
        )
        closed = np.isfinite(upper)
        # mean width of the closed intervals; open ones ("at least rul_lower") counted apart
        metrics["interval_mean_width"] = (
            float(np.mean(upper[closed] - lower[closed])) if closed.any() else 0.0
        )
        metrics["interval_open_share"] = float(np.mean(~closed))
    if "rul_quantiles" in outputs:  # per quantile level: the share of units whose truth is below it
        below = true_rul[:, None] < outputs["rul_quantiles"]
        metrics["quantile_share_below"] = np.mean(below, axis=0).tolist()
    return metrics


def evaluate_last_windows(
    predict: PredictFn,
    units: list[Unit],
    window_length: int,
    health_thresholds: dict[str, float],
    rul_cap: float = RUL_CAP,
) -> dict[str, float]:
    """The test-protocol metrics of `predict` on each unit's last window (uncapped truth)."""
    readings, true_rul = last_windows(units, window_length)
    return protocol_metrics(predict(readings), true_rul, health_thresholds, rul_cap)


def rmse_all_windows(
    predict: PredictFn, units: list[Unit], window_length: int, rul_cap: float = RUL_CAP
) -> float:
    """RMSE over every window of `units` against the true RUL capped at `rul_cap`."""
    readings, true_rul = stack_windows(units, window_length, rul_cap, padding=PADDING_RULE)
    return rmse(predict(readings)["rul"], true_rul)


def write_units_csv(
    path: Path, units: list[Unit], true_rul: np.ndarray, outputs: dict[str, np.ndarray]
) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "unit",
                "cycles",
                "true_rul",
                "rul",
                "rul_lower",
                "rul_upper",
                "true_health",
                "health_state",
                *(f"p_{s}" for s in HEALTH_STATES),
            ]
        )
        true_health = health_labels(true_rul)
        for i, unit in enumerate(units):
            writer.writerow(
                [
                    unit.unit_id,
                    len(unit.readings),
                    f"{true_rul[i]:g}",
                    f"{outputs['rul'][i]:.3f}",
                    f"{outputs['rul_lower'][i]:.3f}",
                    f"{outputs['rul_upper'][i]:.3f}",
                    HEALTH_STATES[true_health[i]],
                    HEALTH_STATES[int(outputs["health_probs"][i].argmax())],
                    *(f"{p:.5f}" for p in outputs["health_probs"][i]),
                ]
            )


def plot_units(path: Path, title: str, true_rul: np.ndarray, outputs: dict[str, np.ndarray]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = np.argsort(true_rul, kind="stable")
    x = np.arange(len(order))
    fig, ax = plt.subplots(figsize=(11, 4.5), dpi=110)
    ax.fill_between(
        x,
        outputs["rul_lower"][order],
        np.minimum(
            outputs["rul_upper"][order], 1.2 * max(float(true_rul.max()), RUL_CAP)
        ),  # open: to the top
        color="tab:blue",
        alpha=0.18,
        step="mid",
        label="90 % interval",
    )
    ax.plot(x, true_rul[order], color="black", lw=1.5, label="true RUL")
    ax.plot(x, outputs["rul"][order], "o", ms=3, color="tab:blue", label="predicted RUL")
    ax.set_xlabel("test unit (sorted by true RUL)")
    ax.set_ylabel("RUL (cycles)")
    ax.set_title(title)
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def evaluate_checkpoint(
    checkpoint_path: str, data_dir: str | None, out_dir: str | None = None, dataset: str = ""
) -> dict[str, float]:
    """The test protocol on the checkpoint's data set (or `dataset`, a TOML file: e.g. a C-MAPSS
    subset's spec for a model trained on the mixed fleet), with the graph rul-export would
    build from this checkpoint alone (its checks, and its interval calibrated on its own
    validation windows)."""
    from training.ensemble import build_graph  # it imports this module's torch_predict_fn

    model, (checkpoint,), subset = build_graph([checkpoint_path], data_dir, dataset=dataset)
    if not subset.test:
        raise ValueError(f"{subset.spec.source} names no test files: evaluation needs test histories and "
                         "their true RUL (test, test_rul)")  # fmt: skip
    window_length, rul_cap = checkpoint["window_length"], checkpoint["rul_cap"]
    predict = torch_predict_fn(model)
    readings, true_rul = last_windows(subset.test, window_length)
    outputs = predict(readings)
    metrics = protocol_metrics(outputs, true_rul, checkpoint["health_thresholds"], rul_cap)
    metrics["rmse_all_windows_capped"] = rmse_all_windows(predict, subset.test, window_length, rul_cap)
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        write_units_csv(out / "units.csv", subset.test, true_rul, outputs)
        plot_units(
            out / "units.png",
            f"{subset.name} test units: RMSE {metrics['rmse']:.2f}, "
            f"interval coverage {metrics['interval_coverage']:.0%}",
            true_rul,
            outputs,
        )
    return metrics


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by rul-train")
    parser.add_argument(
        "--data-dir", default=None, help="C-MAPSS directory (default: $CMAPSS_DIR or data/cmapss)"
    )
    parser.add_argument("--out-dir", default=None, help="write metrics.json, units.csv and units.png here")
    parser.add_argument("--dataset", default="",
                        help="a data set's TOML file whose test units to score (default: the "
                             "checkpoint's)")  # fmt: skip
    args = parser.parse_args(argv)
    metrics = evaluate_checkpoint(args.checkpoint, args.data_dir, args.out_dir, args.dataset)
    print(json.dumps({"checkpoint": args.checkpoint, "test": metrics}, indent=2))


if __name__ == "__main__":
    main()
