"""Do networks trained against stitched windows (`rul-train --stitch-prob`) move their answer less
when another engine's cycles end a window? Judged on each checkpoint's own validation units only,
by the rule written before the runs (results/stitch_training/RULE.md).

    python -m training.studies.stitch_training --data-dir ../shared/data/cmapss \
        --pair models/checkpoints/fd001/fold0.pt /tmp/stitch_train/fold0.pt [--pair ...] \
        --out results/stitch_training/summary.json

Each pair: the control (trained without it) and the candidate, on the same split. Windows: each
validation unit's window ending at its last cycle and at every 10th cycle before it (full
windows only); each stitched with its last k cycles replaced by k consecutive cycles of another
validation unit, ending at a random cycle of that unit (the draws depend on the split and seed
0 only, so both networks of a pair read the same windows). Per k: the mean absolute move of the
answer from the same window clean, and the RMSE against the host's capped truth.
"""

import argparse
import json
from pathlib import Path

import numpy as np

from training.ensemble import load_members
from training.evaluate import torch_predict_fn
from training.labels import rul_per_cycle
from training.metrics import rmse

KS = (1, 2, 3, 5, 7, 10, 25)
EVERY = 10  # window ends: the last cycle and every EVERY-th before it


def stitched_windows(units: list, window_length: int, cap: float, k: int, seed: int = 0) -> tuple:
    """(clean (N, W, C), stitched (N, W, C), capped truth (N,)) for one k."""
    rng = np.random.default_rng([seed, k])
    clean, foreign, truth = [], [], []
    for i, unit in enumerate(units):
        readings = unit.readings
        rul = rul_per_cycle(len(readings), unit.final_rul, cap)
        others = [j for j in range(len(units)) if j != i]
        for end in range(len(readings), window_length - 1, -EVERY):
            window = readings[end - window_length : end]
            donor = units[others[rng.integers(len(others))]].readings
            donor_end = int(rng.integers(k, len(donor) + 1))
            mixed = window.copy()
            mixed[-k:] = donor[donor_end - k : donor_end]
            clean.append(window)
            foreign.append(mixed)
            truth.append(rul[end - 1])
    return _stacked(clean), _stacked(foreign), np.asarray(truth, dtype=np.float64)


def _stacked(windows: list[np.ndarray]) -> np.ndarray:
    return np.ascontiguousarray(np.stack(windows), dtype=np.float32)


def judge(checkpoint: Path, data_dir: str) -> dict:
    """The clean validation RMSE rul-train recorded, and per k the move and the RMSEs."""
    (model,), (facts,), subset = load_members([str(checkpoint)], data_dir)
    val_ids = set(facts["split"]["validation_units"])
    units = [u for u in subset.train if u.unit_id in val_ids]
    predict = torch_predict_fn(model)
    window_length, cap = facts["window_length"], facts["rul_cap"]
    per_k = {}
    for k in KS:
        clean, foreign, truth = stitched_windows(units, window_length, cap, k)
        a, b = predict(clean)["rul"], predict(foreign)["rul"]
        per_k[str(k)] = {
            "windows": len(truth),
            "mean_abs_move": round(float(np.mean(np.abs(b - a))), 3),
            "rmse_clean": round(rmse(a, truth), 3),
            "rmse_stitched": round(rmse(b, truth), 3),
        }
    moves = [per_k[str(k)]["mean_abs_move"] for k in KS if k >= 2]
    return {"checkpoint": str(checkpoint), "val_rmse_recorded": facts["metrics"]["validation"],
            "per_k": per_k, "mean_abs_move_k2_up": round(float(np.mean(moves)), 3)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--pair", nargs=2, action="append", type=Path, required=True,
                        metavar=("CONTROL", "CANDIDATE"))  # fmt: skip
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    pairs = []
    for control, candidate in args.pair:
        a, b = judge(control, args.data_dir), judge(candidate, args.data_dir)
        clean_a = a["val_rmse_recorded"]["rmse_all_windows_capped"]
        clean_b = b["val_rmse_recorded"]["rmse_all_windows_capped"]
        fall = 1 - b["mean_abs_move_k2_up"] / a["mean_abs_move_k2_up"]
        verdict = {"clean_rmse_worse_by": round(clean_b - clean_a, 3), "move_fall_k2_up": round(fall, 3),
                   "kept_by_rule": bool(clean_b - clean_a <= 0.3 and fall >= 0.25)}  # fmt: skip
        pairs.append({"control": a, "candidate": b, "verdict": verdict})
        print(json.dumps(verdict), control, candidate)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"pairs": pairs, "ks": KS, "every": EVERY}, indent=1))


if __name__ == "__main__":
    main()
