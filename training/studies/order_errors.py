"""Measured, not asserted: where the windows sent in the wrong order that are still answered
"ok" go wrong, and whether a check on the level of wear could catch them
(docs/results/faults.md, "Why the order checks miss").

    python -m training.studies.order_errors --data-dir ../shared/data/cmapss --models fd003,fd004 \
        --out results/order_errors.json

For each model, on each test unit's last full window (test windows: a measurement of the
shipped checks, not a selection of anything), the cycles reversed and shuffled (five
permutations each): per band of true RUL, the windows answered "ok" and their mean error
(served RUL minus the capped truth). And one candidate check, "level": a permutation-invariant
RUL estimate g from the window's mean linear health index (quality.wear, scaled by least squares
on the quality-fit training units), flagged when the served RUL exceeds g by more than the
99.5th percentile of that excess on the clean validation units of the quality split. Reported:
what it would leave answered ok, and the share of clean test windows (every full window) it
would flag; and how many test units the clean windows not ok come from. About 4 minutes in all on
2 cores.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from service.core.window_quality import OK
from training.constants import RUL_CAP
from training.data import Unit, load_subset
from training.input_checks import QualityCheck
from training.metrics import rmse
from training.quality_fit import QUALITY_SPLIT
from training.quality_stats import QualityStats
from training.studies.fault_eval import Served
from training.windows import split_by_unit, unit_windows

BANDS = [(0, 30), (30, 60), (60, 90), (90, 125), (125, 10_000)]
PERMUTATIONS = 5


def every_window(
    units: list[Unit], window_length: int, stride: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every full window of `units` (N, W, 24), its true RUL (N,) and its unit's id (N,)."""
    full = [u for u in units if len(u.readings) >= window_length]
    parts = [unit_windows(u, window_length, None, window_length) for u in full]
    windows = [w[::stride] for w, _ in parts]
    truth = np.concatenate([rul[::stride] for _, rul in parts]).astype(float)
    ids = np.concatenate([np.full(len(w), u.unit_id) for u, w in zip(full, windows, strict=True)])
    return np.concatenate(windows).astype(np.float32), truth, ids


class Level:
    """g = a * mean health index + b, fitted on windows of the quality-fit training units."""

    def __init__(self, served: Served, card: dict, train: list[Unit]):
        fields = QualityStats.__dataclass_fields__
        stats = QualityStats(**{k: v for k, v in card["quality"].items() if k in fields})
        self.check = QualityCheck(stats, served.window_length).eval()
        windows, truth, _ = every_window(train, served.window_length, stride=3)
        design = np.c_[self.mean_index(windows), np.ones(len(windows))]
        self.coef = np.linalg.lstsq(design, np.minimum(truth, RUL_CAP), rcond=None)[0]

    def mean_index(self, windows: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            index = self.check.window_statistics(torch.from_numpy(np.ascontiguousarray(windows)))[0]
        return index.numpy().mean(axis=1)

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        return self.coef[0] * self.mean_index(windows) + self.coef[1]


def served_rul(served: Served, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(served RUL, answered ok) for full windows, in pieces."""
    positions = np.tile(np.arange(served.window_length), (len(windows), 1))
    rul, ok = [], []
    for start in range(0, len(windows), 2048):
        out = served.run(np.ascontiguousarray(windows[start : start + 2048]), positions[start : start + 2048])
        rul.append(out["rul"])
        ok.append(np.array([q.status == OK for q in out["quality"]]))
    return np.concatenate(rul), np.concatenate(ok)


def by_band(truth: np.ndarray, error: np.ndarray, keep: np.ndarray) -> dict[str, dict]:
    bands = {}
    for low, high in BANDS:
        inside = (truth >= low) & (truth < high)
        kept = inside & keep
        bands[f"{low}-{high if high < 10_000 else 'inf'}"] = {
            "windows": int(inside.sum()),
            "answered_ok": int(kept.sum()),
            "mean_error_ok": float(error[kept].mean()) if kept.any() else None,
        }
    return bands


def ok_rmse(rul: np.ndarray, capped: np.ndarray, ok: np.ndarray) -> float | None:
    return rmse(rul[ok], capped[ok]) if ok.any() else None


def study(name: str, data_dir: str, models_dir: Path, seed: int = 0) -> dict:
    served = Served(models_dir / f"{name}.onnx", data_dir)
    card = json.loads((models_dir / f"{name}.json").read_text())
    subset = load_subset(name.upper(), data_dir)
    train, val = split_by_unit(subset.train, *QUALITY_SPLIT)
    level = Level(served, card, train)
    w = served.window_length
    val_windows, _, _ = every_window(val, w)
    val_rul, _ = served_rul(served, val_windows)
    threshold = float(np.quantile(val_rul - level(val_windows), 0.995))
    clean_windows, _, clean_units = every_window(subset.test, w)
    clean_rul, clean_ok = served_rul(served, clean_windows)
    clean_flagged = (clean_rul - level(clean_windows)) > threshold
    full = [u for u in subset.test if len(u.readings) >= w]
    last = np.stack([u.readings[-w:].astype(np.float32) for u in full])
    truth = np.array([u.final_rul for u in full], dtype=float)
    rng = np.random.default_rng(seed)
    faults = {
        "reversed": (last[:, ::-1], truth),
        "shuffled": (
            np.concatenate([np.stack([x[rng.permutation(w)] for x in last]) for _ in range(PERMUTATIONS)]),
            np.tile(truth, PERMUTATIONS),
        ),
    }
    result: dict = {
        "level_threshold": threshold,
        "level_fit": level.coef.tolist(),
        "clean_windows": len(clean_windows),
        "clean_not_ok": float(np.mean(~clean_ok)),
        # how concentrated the clean windows not ok are: units with any, and the most from one unit
        "clean_not_ok_units": int(len(np.unique(clean_units[~clean_ok]))),
        "clean_not_ok_most_from_one_unit": int(
            np.unique(clean_units[~clean_ok], return_counts=True)[1].max(initial=0)
        ),
        "test_units": len(subset.test),
        "clean_flagged_by_level": float(np.mean(clean_flagged)),
        "clean_not_ok_with_level": float(np.mean(~clean_ok | clean_flagged)),
    }
    for fault, (windows, fault_truth) in faults.items():
        rul, ok = served_rul(served, windows)
        capped = np.minimum(fault_truth, RUL_CAP)
        error = rul - capped
        caught = (rul - level(windows)) > threshold
        critical = fault_truth <= 30
        result[fault] = {
            "windows": len(windows),
            "as_checked_today": {
                "ok": int(ok.sum()),
                "ok_rmse": ok_rmse(rul, capped, ok),
                "by_true_rul": by_band(fault_truth, error, ok),
            },  # fmt: skip
            "with_level": {
                "ok": int((ok & ~caught).sum()),
                "ok_rmse": ok_rmse(rul, capped, ok & ~caught),
                "critical_ok": int((ok & ~caught & critical).sum()),
                "by_true_rul": by_band(fault_truth, error, ok & ~caught),
            },  # fmt: skip
        }
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--models", default="fd001,fd002,fd003,fd004")
    parser.add_argument("--out", type=Path, default=Path("results/order_errors.json"))
    args = parser.parse_args(argv)
    results = {name: study(name, args.data_dir, args.models_dir) for name in args.models.split(",")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
