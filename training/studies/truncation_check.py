"""Would a truncation check see the stitched windows no check on the window sees? Measured, not
built: the ensemble's answer on a window against its answer on the same window without its
last m cycles (padded as the graph pads), less m. A wrong join moves the first and not the
second; a clean history moves both alike. In a graph it would run the networks once more per
window for each m (twice the networks' cost for one m), which is why it is measured first.

    python -m training.studies.truncation_check --data-dir ../shared/data/cmapss \
        --checkpoints models/checkpoints/fd002/seed{0,1,2}.pt --out results/truncation_check/fd002.json

For an ensemble whose members share one split (fd002, fd004, the mixed fleet: three seeds),
so that its validation units are held out from every member. Those units are halved (seed 0):
the band, the 99.5th percentile of |disagreement| over the first half's clean windows (each
unit's last cycle and every 10th before it); the second half's clean windows give the share
flagged clean, its stitched windows (training/studies/stitch_training.py's draws, k = 1 ... 25)
the share flagged and, among the windows whose answer moved more than MOVED cycles, the share
flagged (what `ok` would stop hiding).
"""

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from training.ensemble import load_members
from training.evaluate import torch_predict_fn
from training.studies.stitch_training import KS, stitched_windows

MS = (3, 5, 10)
MOVED = 15.0
QUANTILE = 99.5


def disagreement(
    predict: Callable[[np.ndarray], np.ndarray], windows: np.ndarray, m: int
) -> tuple[np.ndarray, np.ndarray]:
    """(answer on the windows, answer minus (answer without the last m cycles, less m)); the
    shorter window is padded in front by its first cycle repeated, as the graph fills padding."""
    full = predict(windows)
    w = windows.shape[1]
    shorter = np.concatenate([np.repeat(windows[:, :1], m, axis=1), windows[:, : w - m]], axis=1)
    return full, full - (predict(np.ascontiguousarray(shorter)) - m)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--checkpoints", nargs="+", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    # load_members refuses members that do not share one split
    members, (facts, *_), subset = load_members([str(p) for p in args.checkpoints], args.data_dir)
    predicts = [torch_predict_fn(member) for member in members]

    def predict(windows: np.ndarray) -> np.ndarray:  # the ensemble's answer
        return np.mean([p(windows)["rul"] for p in predicts], axis=0)

    val_ids = list(facts["split"]["validation_units"])
    order = np.random.default_rng(0).permutation(len(val_ids))
    fit_ids = {val_ids[i] for i in order[: len(order) // 2]}
    fit_units = [u for u in subset.train if u.unit_id in fit_ids]
    judge_units = [u for u in subset.train if u.unit_id in set(val_ids) - fit_ids]
    w, cap = facts["window_length"], facts["rul_cap"]
    result: dict = {
        "checkpoints": [str(p) for p in args.checkpoints],
        "fit_units": len(fit_units),
        "judged_units": len(judge_units),
        "moved": MOVED,
        "quantile": QUANTILE,
        "m": {},
    }
    clean_fit = stitched_windows(fit_units, w, cap, 1)[0]
    judged = {k: stitched_windows(judge_units, w, cap, k)[:2] for k in KS}  # (clean, stitched) per k
    for m in MS:
        band = float(np.percentile(np.abs(disagreement(predict, clean_fit, m)[1]), QUANTILE))
        answer_clean, d_clean = disagreement(predict, judged[KS[0]][0], m)  # the clean windows of every k
        rows = {}
        for k in KS:
            answer, d = disagreement(predict, judged[k][1], m)
            flagged, moved = np.abs(d) > band, np.abs(answer - answer_clean) > MOVED
            rows[str(k)] = {
                "windows": len(d),
                "clean_flagged": round(float(np.mean(np.abs(d_clean) > band)), 4),
                "stitched_flagged": round(float(flagged.mean()), 3),
                "moved": int(moved.sum()),
                "moved_flagged": round(float(flagged[moved].mean()), 3) if moved.any() else None,
            }
        result["m"][str(m)] = {"band": round(band, 2), "per_k": rows}
        print(m, round(band, 2), json.dumps(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
