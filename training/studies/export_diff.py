"""Measured, not asserted: what a re-export changed in the shipped models' answers.

    git show HEAD~1:models/fd001.onnx > before/fd001.onnx   # ... one per model
    python -m training.studies.export_diff --before before --after models \
        --data-dir ../shared/data/cmapss --out results/export_diff.json

For each model present in both folders, every test window of its subset (a window ending at
every cycle, padded as served, and each unit's last window) is run through both ONNX files on
the CPU. Reported per output: whether it is identical to the bit on the windows whose flags
(quality_flags and window_flags) the new graph leaves as they were, and, on those whose flags
changed, how many there are, which checks newly fire on them, and how the served RUL moved (new
minus old): a flagged sensor column is masked, and a window whose order is in doubt is read in
order of wear (training/wear_order.py). A few minutes.
"""

import argparse
import json
from pathlib import Path

import numpy as np

from training.data import load_subset
from training.parity import onnx_predict_fn
from training.quality_stats import CHECK_NAMES, WINDOW_CHECK_NAMES
from training.studies.shipped_models import SUBSETS
from training.windows import last_windows, stack_windows


def compare(before: Path, after: Path, data_dir: str) -> dict:
    card = json.loads(after.with_suffix(".json").read_text())
    window_length = card["window_length"]
    subset = load_subset(SUBSETS.get(after.stem, card["subsets"][0]), data_dir)  # the mixed fleet: FD004
    every, _ = stack_windows(subset.test, window_length, None, window_length, "nan")
    last, _ = last_windows(subset.test, window_length)
    windows = np.concatenate([every, last]).astype(np.float32)
    old, new = _in_pieces(onnx_predict_fn(before), windows), _in_pieces(onnx_predict_fn(after), windows)
    column_changed = (new["quality_flags"] != old["quality_flags"]).any(axis=(1, 2))
    changed = (new["window_flags"] != old["window_flags"]) | column_changed
    moved = new["rul"][changed] - old["rul"][changed]
    newly = {}
    for bit, name in WINDOW_CHECK_NAMES.items():
        newly[name] = int((((new["window_flags"] & bit) > 0) & ((old["window_flags"] & bit) == 0)).sum())
    for bit, name in CHECK_NAMES.items():
        had, has = (((f & bit) > 0).any(axis=(1, 2)) for f in (old["quality_flags"], new["quality_flags"]))
        newly[name] = int((has & ~had).sum())
    return {
        "windows": len(windows),
        "identical_where_no_flag_changed": {
            name: bool(np.array_equal(old[name][~changed], new[name][~changed], equal_nan=True))
            for name in new
        },
        "flags_changed": int(changed.sum()),
        "windows_newly_flagged_by_check": {name: count for name, count in newly.items() if count},
        "rul_moved_where_flags_changed": {
            "mean": float(moved.mean()) if moved.size else 0.0,
            "min": float(moved.min()) if moved.size else 0.0,
            "max": float(moved.max()) if moved.size else 0.0,
        },
    }


def _in_pieces(predict, windows: np.ndarray, piece: int = 2048) -> dict[str, np.ndarray]:
    """`predict` over `windows` in pieces (all of fd004's 31 725 windows in one run took 17 GB)."""
    parts = [predict(windows[start : start + piece]) for start in range(0, len(windows), piece)]
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", required=True, help="folder with the earlier <name>.onnx files")
    parser.add_argument("--after", default="models", help="folder with the new <name>.onnx and cards")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args(argv)
    report = {}
    for path in sorted(Path(args.after).glob("*.onnx")):
        earlier = Path(args.before) / path.name
        if earlier.exists():
            report[path.stem] = compare(earlier, path, args.data_dir)
            print(path.stem, json.dumps(report[path.stem]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
