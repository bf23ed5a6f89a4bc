"""One model for a mixed fleet: the four C-MAPSS training sets as one data set
(training/datasets/cmapss/cmapss.toml: 709 engines, six operating conditions, two fault modes)
against a specialist per subset, trained with the same flags, compared on the same validation
units (docs/results/mixed_fleet.md states the rule, written before the runs).

    python -m training.studies.mixed_fleet --data-dir ../shared/data/cmapss --out-dir runs/mixed
    python -m training.studies.mixed_fleet --data-dir ../shared/data/cmapss --out-dir runs/mixed --evaluate

The first trains what is missing (one network a run, `--threads 1`; two runs side by side with
`--jobs 2`); `--evaluate` scores every checkpoint on each subset's validation units (the
criterion) and test units (recorded after the decision), applies the rule and writes
results/mixed_fleet.json.
"""

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from training.checkpoint import MembersMean, load_checkpoint
from training.data import load_data
from training.evaluate import evaluate_last_windows, rmse_all_windows, torch_predict_fn
from training.parity import onnx_predict_fn

SPECS = Path(__file__).resolve().parents[1] / "datasets" / "cmapss"
SUBSETS = ("fd001", "fd002", "fd003", "fd004")
SEEDS = (0, 1, 2)
# The same flags for every run (the rest are TrainConfig's defaults: window 30, the 14
# standard sensors, 20 % of each file's units held out with split seed 0)
FLAGS = ["--epochs", "40", "--train-stride", "4", "--threads", "1"]
MARGIN = 1.0  # cycles of validation RMSE: the most the mixed model may lose (docs/results/mixed_fleet.md)


def runs(out_dir: Path) -> list[tuple[str, int, Path]]:
    """(data set, seed, checkpoint) of every run of the study."""
    names = ("cmapss", *SUBSETS)
    return [(name, seed, out_dir / f"{name}_seed{seed}.pt") for seed in SEEDS for name in names]


def train_missing(out_dir: Path, data_dir: str, jobs: int) -> None:
    def one(run: tuple[str, int, Path]) -> None:
        name, seed, checkpoint = run
        if checkpoint.exists():
            return
        command = ["rul-train", "--dataset", str(SPECS / f"{name}.toml"), "--data-dir", data_dir,
                   "--seed", str(seed), "--out-dir", str(out_dir), *FLAGS]  # fmt: skip
        with open(out_dir / f"{name}_seed{seed}.log", "w") as log:
            subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True)

    out_dir.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, runs(out_dir)))


def scores(checkpoint: Path, subset: str, data_dir: str) -> dict[str, float]:
    """Validation RMSE (every window of the subset's validation units, capped) and the test
    protocol's figures, of one checkpoint on one subset."""
    member, facts = load_checkpoint(str(checkpoint))
    model = MembersMean([member])  # the network alone: nothing checked, masked or calibrated
    data = load_data("", str(SPECS / f"{subset}.toml"), data_dir)
    held_out = {str(u) for u in facts["split"]["validation_units"]}
    stem = f"train_{subset.upper()}/"
    val = [u for u in data.train if str(u.unit_id) in held_out or f"{stem}{u.unit_id}" in held_out]
    predict, window = torch_predict_fn(model), facts["window_length"]
    test = evaluate_last_windows(predict, data.test, window, facts["health_thresholds"])
    return {
        "validation_rmse": rmse_all_windows(predict, val, window),
        "validation_units": len(val),
        "test_rmse_capped_truth": test["rmse_capped_truth"],
        "test_rmse": test["rmse"],
    }


def evaluate(out_dir: Path, data_dir: str) -> dict:
    table: dict[str, dict] = {}
    for subset in SUBSETS:
        rows = {name: [scores(out_dir / f"{name}_seed{s}.pt", subset, data_dir) for s in SEEDS]
                for name in ("cmapss", subset)}  # fmt: skip
        sizes = {r["validation_units"] for rs in rows.values() for r in rs}
        assert len(sizes) == 1, f"{subset}: the two models were validated on different units ({sizes})"
        pairs = zip(rows["cmapss"], rows[subset], strict=True)
        d = np.array([mixed["validation_rmse"] - alone["validation_rmse"] for mixed, alone in pairs])
        se = float(d.std(ddof=1) / np.sqrt(len(d)))
        table[subset] = {
            "mixed": rows["cmapss"],
            "specialist": rows[subset],
            "paired_difference_mean": float(d.mean()),
            "paired_difference_se": se,
            "within_margin": bool(d.mean() + 2 * se < MARGIN),
        }
    return {"flags": FLAGS, "seeds": list(SEEDS), "margin": MARGIN, "subsets": table,
            "ship_cmapss": all(t["within_margin"] for t in table.values())}  # fmt: skip


def exported_test(onnx: Path, data_dir: str) -> dict[str, dict[str, float]]:
    """The exported model (an ensemble of the mixed networks) on each subset's test units: the
    test protocol, beside the shipped specialists' cards."""
    card = json.loads(onnx.with_suffix(".json").read_text())
    predict = onnx_predict_fn(onnx)
    figures = {}
    for subset in SUBSETS:
        data = load_data("", str(SPECS / f"{subset}.toml"), data_dir)
        test = evaluate_last_windows(predict, data.test, card["window_length"], card["health_thresholds"])
        figures[subset] = {k: test[k] for k in ("rmse_capped_truth", "rmse", "phm08_score_capped_truth",
                                                 "health_accuracy", "interval_coverage")}  # fmt: skip
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out-dir", type=Path, default=Path("runs/mixed"))
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side (one thread each)")
    parser.add_argument("--evaluate", action="store_true", help="score the checkpoints and apply the rule")
    parser.add_argument("--result", type=Path, default=Path("results/mixed_fleet.json"))
    parser.add_argument(
        "--exported", type=Path, help="with --evaluate: also the exported model's test figures"
    )
    args = parser.parse_args(argv)
    if not args.evaluate:
        train_missing(args.out_dir, args.data_dir, args.jobs)
        return
    result = evaluate(args.out_dir, args.data_dir)
    if args.exported:
        result["exported"] = {
            "model": str(args.exported),
            "test": exported_test(args.exported, args.data_dir),
        }
    args.result.write_text(json.dumps(result, indent=2) + "\n")
    json.dump(result, sys.stdout, indent=2)


if __name__ == "__main__":
    main()
