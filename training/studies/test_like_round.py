"""A validation quantity shaped like the test protocol, and the round-8 re-check of past
decisions with it (docs/results/rounds.md, round 8).

Why: early stopping and the window/width/pooling rounds compare networks on the validation
RMSE over *every* window of the validation units (from the 10th cycle on). The test protocol
scores one window per test unit, its last, and the test units are cut short at points that
follow their own distribution: FD001's test units have 31-303 cycles (130 on average) where a
training unit runs 128-362 cycles (206), so the test weighs the middle and end of life more,
and each unit once. Round 7's pooled FD003 won on every-window validation and lost on the
test units; this quantity asks whether validation shaped like the test would have agreed.

The quantity ("test-like validation RMSE"), fixed before it was computed on any run:
each validation unit counts once; within a unit, the window ending at cycle e is weighted by
how many of the subset's **test units were observed for e cycles, within +-BANDWIDTH cycles**
(their lengths are inputs, known at prediction time; no test label is used); the error is
against the truth capped at 125, as the every-window quantity. So
RMSE^2 = mean over units of sum_e w_u(e) (prediction - truth)^2, with sum_e w_u(e) = 1.

    python -m training.studies.test_like_round --data-dir ../shared/data/cmapss --out results/test-like

compares the pairs of fold ensembles in PAIRS (each network against the one holding out the
same fold) on both quantities and writes summary.json and tables.md. Not a test.
"""

import argparse
import functools
import json
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from training.calibration_weights import end_cycle_weights
from training.checkpoint import load_checkpoint
from training.constants import RUL_CAP
from training.data import Subset, Unit, load_subset
from training.evaluate import PredictFn, torch_predict_fn
from training.metrics import bootstrap_rmse_difference_interval, rmse
from training.windows import last_windows, unit_windows


def validation_errors(
    predict: PredictFn, units: list[Unit], window_length: int, test_lengths: np.ndarray
) -> dict[str, float]:
    """Every-window and test-like validation RMSE (truth capped at RUL_CAP) of one network
    on its validation units."""
    squared, weighted = [], []
    for unit in units:
        readings, truth = unit_windows(unit, window_length, RUL_CAP)
        error2 = (predict(readings)["rul"] - truth) ** 2
        squared.append(error2)
        weights = end_cycle_weights(len(unit.readings), test_lengths, window_length)
        weighted.append(float(np.sum(weights * error2)))
    return {
        "every_window": float(np.sqrt(np.mean(np.concatenate(squared)))),
        "test_like": float(np.sqrt(np.mean(weighted))),
    }


# Each pair: (round, subset, baseline, candidate, what the round decided on every-window
# validation). A side is a list of five fold checkpoints of split seed 0, member k holding out
# fold k; "git:REV:" paths are read from that commit (the replaced shipped checkpoints).
def _folds(pattern: str) -> list[str]:
    return [pattern.format(k=k) for k in range(5)]


# The shipped fd001 (2026.11.4, round 6) and fd003 (2026.11.5, round 7) networks: the
# baseline of every later round.
SHIPPED_FD001 = _folds("runs/results/cv5-h128-split0/fd001_seed{k}.pt")
SHIPPED_FD003 = _folds("models/checkpoints/fd003/fold{k}.pt")

PAIRS = [
    ("6", "FD001", "64 LSTM units", _folds("git:1d26bb9:models/checkpoints/fd001/fold{k}.pt"),
     "128 LSTM units", SHIPPED_FD001, "adopted"),
    ("6", "FD003", "64 LSTM units", _folds("git:1d26bb9:models/checkpoints/fd003/fold{k}.pt"),
     "128 LSTM units", _folds("runs/results/cv5-h128-split0/fd003_seed{k}.pt"), "not adopted"),
    ("7", "FD003", "own units (64 LSTM units)", _folds("git:1d26bb9:models/checkpoints/fd003/fold{k}.pt"),
     "+ FD001's units", SHIPPED_FD003, "adopted"),
    ("7", "FD001", "own units (128 LSTM units)", SHIPPED_FD001,
     "+ FD003's units", _folds("runs/results/cv5-h128-pool-split0/fd001_seed{k}.pt"), "not adopted"),
    # round 8 (decided on every-window validation before this quantity was looked at for it)
    ("8", "FD003", "pooled, 64 LSTM units", SHIPPED_FD003,
     "pooled, 128 LSTM units", _folds("runs/results/cv5-h128-pool-split0/fd003_seed{k}.pt"), "not adopted"),
    # round 9 (session 8; likewise decided on every-window validation)
    ("9", "FD003", "pooled, 14 standard sensors", SHIPPED_FD003,
     "pooled, every varying sensor", _folds("runs/results/cv5-pool-varying-split0/fd003_seed{k}.pt"),
     "not adopted"),
    # round 10 (session 9; likewise decided on every-window validation)
    ("10", "FD001", "128 units, 40-epoch schedule", SHIPPED_FD001,
     "15-epoch schedule", _folds("runs/results/cv5-anneal15-split0/fd001_seed{k}.pt"), "not adopted"),
    ("10", "FD003", "pooled, 40-epoch schedule", SHIPPED_FD003,
     "15-epoch schedule", _folds("runs/results/cv5-anneal15-split0/fd003_seed{k}.pt"), "not adopted"),
    # round 11 (session 10; likewise decided on every-window validation)
    ("11", "FD001", "128 units, fixed 0.7 / 0.3", SHIPPED_FD001,
     "uncertainty weighting", _folds("runs/results/cv5-uncertainty-split0/fd001_seed{k}.pt"), "not adopted"),
    ("11", "FD003", "pooled, fixed 0.7 / 0.3", SHIPPED_FD003,
     "uncertainty weighting", _folds("runs/results/cv5-uncertainty-split0/fd003_seed{k}.pt"), "not adopted"),
]  # fmt: skip


def _local(path: str, scratch: Path) -> Path:
    """A checkpoint path on disk; a "git:REV:PATH" one is written out of that commit first."""
    if not path.startswith("git:"):
        return Path(path)
    _, rev, inner = path.split(":", 2)
    out = scratch / rev / inner
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(subprocess.run(["git", "show", f"{rev}:{inner}"], check=True, capture_output=True).stdout)
    return out


@functools.cache
def _subset(name: str, data_dir: str) -> Subset:
    return load_subset(name, data_dir)


def fold_errors(paths: list[str], data_dir: str, scratch: Path) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """Both validation RMSEs of each fold network, on its own validation units; and the
    ensemble's (the members' mean) RUL on the test units' last windows, with their true RUL."""
    rows, test_rul = [], []
    for path in paths:
        model, checkpoint = load_checkpoint(_local(path, scratch))
        subset = _subset(checkpoint["train_config"]["subset"], data_dir)
        test_lengths = np.array([len(u.readings) for u in subset.test])
        by_id = {u.unit_id: u for u in subset.train}
        units = [by_id[i] for i in sorted(checkpoint["split"]["validation_units"])]
        predict = torch_predict_fn(model)
        errors = validation_errors(predict, units, checkpoint["window_length"], test_lengths)
        stored = checkpoint["metrics"]["validation"]["rmse_all_windows_capped"]
        if abs(errors["every_window"] - stored) > 1e-3:
            raise ValueError(
                f"{path}: every-window validation RMSE {errors['every_window']:.4f} differs from the "
                f"checkpoint's {stored:.4f}; the windows do not match training's"
            )
        rows.append({"validation_units": sorted(checkpoint["split"]["validation_units"]), **errors})
        test_windows, test_truth = last_windows(subset.test, checkpoint["window_length"])
        test_rul.append(predict(test_windows)["rul"])
    return rows, np.mean(test_rul, axis=0), test_truth


def paired(base: list[dict], candidate: list[dict], key: str) -> dict[str, float]:
    """Mean and standard error of candidate - baseline over the folds, and the rule's call:
    lower by more than 2 s.e."""
    diff = np.array([c[key] - b[key] for b, c in zip(base, candidate, strict=True)])
    se = float(diff.std(ddof=1) / np.sqrt(len(diff)))
    return {"mean": float(diff.mean()), "se": se, "lower_on": int((diff < 0).sum()),
            "adopt": bool(diff.mean() < -2 * se)}  # fmt: skip


def compare(pair: tuple, score: Callable[[tuple[str, ...]], tuple]) -> dict:
    """One PAIRS entry: both quantities per fold and paired, and the two ensembles' test RMSE
    (capped truth) with the paired bootstrap interval of their difference - the latter after
    the decision, for the record. `score(paths)` is `fold_errors` of those checkpoints."""
    rnd, subset, base_name, base_paths, cand_name, cand_paths, decided = pair
    base, base_test, truth = score(tuple(base_paths))
    cand, cand_test, _ = score(tuple(cand_paths))
    if any(b["validation_units"] != c["validation_units"] for b, c in zip(base, cand, strict=True)):
        raise ValueError(f"round {rnd} {subset}: the fold networks hold out different units")
    capped = np.minimum(truth, RUL_CAP)
    return {
        "round": rnd, "subset": subset, "baseline": base_name, "candidate": cand_name,
        "decided_on_every_window": decided, "baseline_folds": base, "candidate_folds": cand,
        "every_window": paired(base, cand, "every_window"), "test_like": paired(base, cand, "test_like"),
        "test_rmse_capped": {
            "baseline": rmse(base_test, capped),
            "candidate": rmse(cand_test, capped),
            "difference_ci90": bootstrap_rmse_difference_interval(base_test, cand_test, capped),
        },
    }  # fmt: skip


def validation_rows(entry: dict) -> list[str]:
    rows = []
    for key in ("every_window", "test_like"):
        p = entry[key]
        cells = [
            f"| {entry['round']}", entry["subset"], entry["baseline"], entry["candidate"],
            key.replace("_", "-"),
            ", ".join(f"{f[key]:.2f}" for f in entry["baseline_folds"]),
            ", ".join(f"{f[key]:.2f}" for f in entry["candidate_folds"]),
            f"{p['mean']:+.2f} ± {p['se']:.2f}", f"{p['lower_on']} of 5",
            ("adopt" if p["adopt"] else "keep") + " |",
        ]  # fmt: skip
        rows.append(" | ".join(cells))
    return rows


def test_row(entry: dict) -> str:
    test = entry["test_rmse_capped"]
    low, high = test["difference_ci90"]
    return " | ".join([
        f"| {entry['round']}", entry["subset"], f"{entry['baseline']} → {entry['candidate']}",
        f"{test['baseline']:.2f}", f"{test['candidate']:.2f}", f"{test['candidate'] - test['baseline']:+.2f}",
        f"[{low:+.2f}, {high:+.2f}] |",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", default="results/test-like")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    validation = [
        "| round | subset | baseline | candidate | quantity | baseline per fold | candidate per fold | "
        "difference (± s.e.) | lower on | rule says |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    tests = [
        "| round | subset | change | test RMSE before (capped truth) | after | difference | "
        "paired bootstrap 90 % interval of the difference |",
        "|---|---|---|---|---|---|---|",
    ]
    summary = []
    with tempfile.TemporaryDirectory() as scratch:

        @functools.cache  # a side shared by two pairs is scored once
        def score(paths: tuple[str, ...]) -> tuple:
            return fold_errors(list(paths), args.data_dir, Path(scratch))

        for pair in PAIRS:
            entry = compare(pair, score)
            summary.append(entry)
            validation += validation_rows(entry)
            tests.append(test_row(entry))
            print(*validation_rows(entry), test_row(entry), sep="\n", flush=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "tables.md").write_text("\n".join([*validation, "", *tests]) + "\n")


if __name__ == "__main__":
    main()
