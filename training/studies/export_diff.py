"""Measured, not asserted: what a re-export changed in the shipped models' answers.

    git show HEAD~1:models/fd001.onnx > before/fd001.onnx   # ... one per model
    python -m training.studies.export_diff --before before --after models \
        --data-dir ../shared/data/cmapss --out results/export_diff.json

For each model present in both folders, every test window of its subset (a window ending at
every cycle, padded as served, and each unit's last window) is run through both ONNX files on
the CPU. Reported per output: whether it is identical to the bit on the windows whose order the
new graph does not doubt (window_flags `direction` or `out_of_order`), and, on those it doubts,
how many there are and how the served RUL moved (new minus old): a window whose order is in
doubt is read in order of wear since 2026.12.04.2 (training/wear_order.py). A few minutes.
"""

import argparse
import json
from pathlib import Path

import numpy as np

from training.data import load_subset
from training.parity import onnx_predict_fn
from training.quality_stats import DIRECTION, OUT_OF_ORDER
from training.windows import last_windows, stack_windows


def compare(before: Path, after: Path, data_dir: str) -> dict:
    card = json.loads(after.with_suffix(".json").read_text())
    window_length = card["window_length"]
    subset = load_subset(card["subsets"][0], data_dir)
    every, _ = stack_windows(subset.test, window_length, None, window_length, "nan")
    last, _ = last_windows(subset.test, window_length)
    windows = np.concatenate([every, last]).astype(np.float32)
    old, new = onnx_predict_fn(before)(windows), onnx_predict_fn(after)(windows)
    in_doubt = (new["window_flags"] & (DIRECTION | OUT_OF_ORDER)) > 0
    moved = new["rul"][in_doubt] - old["rul"][in_doubt]
    return {
        "windows": len(windows),
        "identical_where_order_not_in_doubt": {
            name: bool(np.array_equal(old[name][~in_doubt], new[name][~in_doubt], equal_nan=True))
            for name in new
        },
        "order_in_doubt": int(in_doubt.sum()),
        "rul_moved_where_in_doubt": {
            "mean": float(moved.mean()) if moved.size else 0.0,
            "min": float(moved.min()) if moved.size else 0.0,
            "max": float(moved.max()) if moved.size else 0.0,
        },
    }


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
