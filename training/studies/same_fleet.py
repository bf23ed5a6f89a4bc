"""Two models of one fleet written two ways (docs/own-fleet.md): each model's RUL on the last
window of every test unit of its own data set, units matched in order, and how far apart.

    python -m training.studies.same_fleet --data-dir ../shared/data/cmapss \\
        --a runs/own/models/fd001-spec.onnx training/datasets/cmapss/fd001.toml \\
        --b runs/own/models/fleet-a.onnx runs/fleet-a/fleet.toml
"""

import argparse
import json
from pathlib import Path

import numpy as np

from training.data import load_data
from training.metrics import rmse
from training.parity import onnx_predict_fn
from training.windows import last_windows


def last_window_rul(
    model: str, dataset: str, data_dir: str | None, window_length: int
) -> tuple[np.ndarray, np.ndarray]:
    """The model's RUL on each test unit's last window, and the true RUL."""
    subset = load_data("", dataset, data_dir)
    windows, truth = last_windows(subset.test, window_length)
    return onnx_predict_fn(model)(windows)["rul"], truth


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--a", nargs=2, required=True, metavar=("ONNX", "DATASET"))
    parser.add_argument("--b", nargs=2, required=True, metavar=("ONNX", "DATASET"))
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    cards = [json.loads(Path(m).with_suffix(".json").read_text()) for m, _ in (args.a, args.b)]
    (rul_a, truth_a), (rul_b, truth_b) = (
        last_window_rul(m, d, args.data_dir, c["window_length"])
        for (m, d), c in zip((args.a, args.b), cards, strict=True)
    )
    assert np.array_equal(truth_a, truth_b), "the two data sets' test units differ"
    gap = np.abs(rul_a - rul_b)
    capped = np.minimum(truth_a, cards[0]["rul_cap"])
    print(json.dumps({
        "units": len(gap),
        "rmse_capped_truth": {"a": rmse(rul_a, capped), "b": rmse(rul_b, capped)},
        "rul_gap_cycles": {"mean": float(gap.mean()), "p95": float(np.quantile(gap, 0.95)),
                           "max": float(gap.max())},
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
