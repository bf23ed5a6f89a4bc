"""Measured, not asserted: where reading a window in order of wear helps, and where it hurts
(docs/results/faults.md, "What holds and what does not").

    python -m training.studies.wear_order_spread --data-dir ../shared/data/cmapss \
        --models fd001,fd004 --out results/wear_order_spread.json

For each model, the graph of its card's checkpoints (PyTorch, the shipped learned order check)
is run on: every full test window in order, and every seventh of them reversed and shuffled.
On the windows whose order the checks doubt (window_flags `direction` or `out_of_order`), the
error against the capped truth of the networks' answer to the window as sent and to its cycles
in order of wear (what the graph serves, training/wear_order.py), by band of the spread of the
health index over the window (its standard deviation, cycles of RUL; a healthy engine's index
spreads by its noise alone). Test windows: a measurement of the shipped rule and of one
alternative (sorting only above a spread), not a selection. About 8 minutes for two models on
2 cores.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from training.constants import RUL_CAP
from training.ensemble import build_graph
from training.order_check import read_fit
from training.padding import fill_padding, real_rows
from training.quality_stats import DIRECTION, OUT_OF_ORDER
from training.windows import stack_windows

SPREAD_BANDS = [(0, 2), (2, 4), (4, 6), (6, 10), (10, 20), (20, 1e9)]
BATCH = 2048


def answers(graph, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(RUL as served, RUL of the window as sent, window_flags, health index (N, W))."""
    parts = []
    with torch.no_grad():
        for i in range(0, len(windows), BATCH):
            x = torch.from_numpy(np.ascontiguousarray(windows[i : i + BATCH], dtype=np.float32))
            served = graph(x)
            real = real_rows(x)
            filled = fill_padding(x, real)
            mask = graph.quality(filled, real)[1]
            as_sent = torch.stack([m(filled, mask)[0] for m in graph.members]).mean(0)
            index = graph.quality.window_statistics(x)[0]
            parts.append([served[0].numpy(), as_sent.numpy(), served[6].numpy(), index.numpy()])
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(4))  # type: ignore[return-value]


def study(name: str, data_dir: str) -> dict:
    card = json.loads(Path(f"models/{name}.json").read_text())
    order_fit = read_fit(Path(card["training"]["order_check"]))
    graph, _, subset = build_graph(card["training"]["checkpoints"], data_dir, order_fit)
    w = card["window_length"]
    windows, truth = stack_windows(subset.test, w, RUL_CAP, w, "nan")
    full = ~np.isnan(windows[:, 0, 0])
    windows, truth = windows[full], truth[full]
    rng = np.random.default_rng(3)
    sample = np.arange(0, len(windows), 7)
    faults = {
        "in order": (windows, truth),
        "reversed": (windows[sample, ::-1], truth[sample]),
        "shuffled": (np.stack([windows[i][rng.permutation(w)] for i in sample]), truth[sample]),
    }
    report = {}
    for fault, (x, t) in faults.items():
        served, as_sent, flags, index = answers(graph, x)
        doubt = (flags & (DIRECTION | OUT_OF_ORDER)) > 0
        spread = index.std(axis=1)
        bands = {}
        for lo, hi in SPREAD_BANDS:
            m = doubt & (spread >= lo) & (spread < hi)
            if m.any():
                bands[f"{lo}-{hi:g}"] = {
                    "windows": int(m.sum()),
                    "rmse_as_sent": float(np.sqrt(np.mean((as_sent[m] - t[m]) ** 2))),
                    "rmse_in_order_of_wear": float(np.sqrt(np.mean((served[m] - t[m]) ** 2))),
                }
        report[fault] = {"windows": len(x), "in_doubt": int(doubt.sum()), "by_spread": bands}
        print(name, fault, json.dumps(report[fault]), flush=True)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--models", default="fd001,fd004", help="comma-separated shipped model names")
    parser.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args(argv)
    report = {name: study(name, args.data_dir) for name in args.models.split(",")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
