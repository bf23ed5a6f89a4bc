"""Measured, not asserted: how the shipped models' input checks and masking behave on faulty
and foreign windows (docs/results/faults.md).

    python -m training.studies.fault_eval --data-dir ../shared/data/cmapss --models-dir models \
        --out results/faults

For every model in the models directory, on each test unit's last window (built as the
service builds it: the last window_length cycles, front-padded when shorter):
- clean: the share of windows whose quality is not "ok" (also over every test window), RMSE
  against the capped and the uncapped truth, interval coverage against the uncapped truth;
- one fault at a time in every sensor the model reads (FAULTS): the share of windows in which
  that column is flagged, the share not "ok", and the RMSE before masking (the same networks
  with no checks and no masking) and after (the exported graph, as served);
- every other subset's test windows sent to the model: the share out_of_distribution and the
  RMSE against their own truth.
The quality status is the service's own (service.quality), applied to the ONNX graph's
outputs. Writes summary.json and tables.md. Not a test: about 10 minutes on 2 cores.
"""

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort

from service.model_card import ModelCard
from service.quality import OK, OUT_OF_DISTRIBUTION, QualityExplainer, row_positions
from training.constants import RUL_CAP, SUBSETS
from training.data import Unit, load_subset
from training.ensemble import build_graph
from training.evaluate import torch_predict_fn
from training.metrics import interval_coverage, rmse
from training.windows import last_window, stack_windows

# Each fault changes one column of a unit's last cycles (T, 24) -> (T, 24); `scale` is the
# column's robust scale (1.4826 MAD) in the training units, so the size of the drift and the
# noise is in units of the sensor's own spread.
FAULTS: dict[str, Callable[[np.ndarray, int, float, np.random.Generator], np.ndarray]] = {}


def fault(name: str) -> Callable:
    def register(fn: Callable) -> Callable:
        FAULTS[name] = fn
        return fn

    return register


@fault("dead (reads 0.0)")
def _dead(cycles: np.ndarray, column: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    cycles[:, column] = 0.0
    return cycles


@fault("stuck (first value repeated)")
def _stuck(cycles: np.ndarray, column: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    cycles[:, column] = cycles[0, column]
    return cycles


@fault("spike (last cycle x10)")
def _spike(cycles: np.ndarray, column: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    cycles[-1, column] *= 10.0
    return cycles


@fault("drift (0 to +8 scale over the window)")
def _drift(cycles: np.ndarray, column: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    cycles[:, column] += np.linspace(0.0, 8.0 * scale, len(cycles))
    return cycles


@fault("noise (+3 scale Gaussian)")
def _noise(cycles: np.ndarray, column: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    cycles[:, column] += rng.normal(0.0, 3.0 * scale, len(cycles))
    return cycles


class Served:
    """One exported model as the service runs it, plus its networks without checks or masking."""

    def __init__(self, onnx_path: Path, data_dir: str):
        self.card = ModelCard.model_validate_json(onnx_path.with_suffix(".json").read_bytes())
        assert self.card.quality is not None, f"{onnx_path} has no input checks"
        self.session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        self.explainer = QualityExplainer(self.card.quality, self.card.input_features)
        raw = json.loads(onnx_path.with_suffix(".json").read_text())
        graph, _, _ = build_graph(raw["training"]["checkpoints"], data_dir)
        graph.quality = None  # the same networks, nothing checked or masked: "before masking"
        self.unmasked = torch_predict_fn(graph)
        self.window_length = self.card.window_length

    def windows(self, units: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Each unit's last cycles as the service builds the window, and each row's position."""
        windows = np.stack([last_window(u, self.window_length) for u in units]).astype(np.float32)
        positions = np.stack([row_positions(self.window_length, len(u)) for u in units])
        return windows, positions

    def run(
        self, windows: np.ndarray, positions: np.ndarray
    ) -> tuple[np.ndarray, list, np.ndarray, np.ndarray]:
        """(rul, qualities, rul_lower, rul_upper) as served."""
        names = ["rul", "rul_lower", "rul_upper", "quality_flags", "ood_score"]
        out = dict(zip(names, self.session.run(names, {"readings": windows}), strict=True))
        qualities = [
            self.explainer.assess(
                windows[i], out["quality_flags"][i], float(out["ood_score"][i]), positions[i]
            )
            for i in range(len(windows))
        ]
        return out["rul"], qualities, out["rul_lower"], out["rul_upper"]


def _rmses(predicted: np.ndarray, true: np.ndarray) -> dict[str, float]:
    return {"rmse_capped_truth": rmse(predicted, np.minimum(true, RUL_CAP)), "rmse": rmse(predicted, true)}


def evaluate_model(served: Served, subsets: dict[str, object], own: str, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    test: list[Unit] = subsets[own].test  # type: ignore[attr-defined]
    true = np.array([u.final_rul for u in test])
    readings = [u.readings[-served.window_length :].astype(np.float64) for u in test]
    windows, positions = served.windows(readings)
    rul, qualities, lower, upper = served.run(windows, positions)
    every, _ = stack_windows(test, served.window_length, None)
    every_positions = np.zeros(every.shape[:2], dtype=np.int64)  # padding rows are flagged alike
    _, every_q, _, _ = served.run(every.astype(np.float32), every_positions)
    clean = {
        "windows": len(test),
        "not_ok_share": float(np.mean([q.status != OK for q in qualities])),
        "not_ok_share_every_window": float(np.mean([q.status != OK for q in every_q])),
        "every_windows": len(every),
        **_rmses(rul, true),
        "interval_coverage": interval_coverage(true, lower, upper),
        "interval_open_share": float(np.mean(~np.isfinite(upper))),
    }
    checks = served.card.quality
    faults = {}
    for name, inject in FAULTS.items():
        flagged, not_ok, before, after, truth = [], [], [], [], []
        for c, column in enumerate(checks.column_index):
            scale = float(np.median(np.asarray(checks.scale)[:, c]))
            faulty = [inject(r.copy(), column, scale, rng) for r in readings]
            f_windows, f_positions = served.windows(faulty)
            f_rul, f_q, _, _ = served.run(f_windows, f_positions)
            flagged += [any(f.column == served.card.input_features[column] for f in q.flags) for q in f_q]
            not_ok += [q.status != OK for q in f_q]
            after.append(f_rul)
            before.append(served.unmasked(f_windows)["rul"])
            truth.append(true)
        t = np.concatenate(truth)
        faults[name] = {
            "windows": len(t),
            "column_flagged_share": float(np.mean(flagged)),
            "not_ok_share": float(np.mean(not_ok)),
            "before_masking": _rmses(np.concatenate(before), t),
            "after_masking": _rmses(np.concatenate(after), t),
        }
    foreign = {}
    for other, data in subsets.items():
        if other == own:
            continue
        units = data.test  # type: ignore[attr-defined]
        o_windows, o_positions = served.windows([u.readings[-served.window_length :] for u in units])
        o_rul, o_q, _, _ = served.run(o_windows, o_positions)
        foreign[other] = {
            "windows": len(units),
            "out_of_distribution_share": float(np.mean([q.status == OUT_OF_DISTRIBUTION for q in o_q])),
            "not_ok_share": float(np.mean([q.status != OK for q in o_q])),
            **_rmses(o_rul, np.array([u.final_rul for u in units])),
        }
    return {"model": served.card.name, "version": served.card.version, "subset": own,
            "clean": clean, "faults": faults, "foreign": foreign}  # fmt: skip


def tables_markdown(results: list[dict]) -> str:
    lines = [
        "### Clean test windows",
        "",
        "| model | windows not ok (last) | windows not ok (every window) | RMSE capped | RMSE uncapped | "
        "90 % interval coverage (uncapped truth) | intervals open above |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        c = r["clean"]
        lines.append(
            f"| {r['model']} {r['version']} | {c['not_ok_share']:.1%} of {c['windows']} | "
            f"{c['not_ok_share_every_window']:.2%} of {c['every_windows']} | {c['rmse_capped_truth']:.2f} | "
            f"{c['rmse']:.2f} | {c['interval_coverage']:.1%} | {c['interval_open_share']:.0%} |"
        )
    lines += [
        "",
        "### One faulty sensor (every sensor the model reads, each test unit's last window)",
        "",
        "| model | fault | column flagged | not ok | RMSE capped: before masking → after | "
        "RMSE uncapped: before → after |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        for name, f in r["faults"].items():
            b, a = f["before_masking"], f["after_masking"]
            lines.append(
                f"| {r['model']} | {name} | {f['column_flagged_share']:.1%} | {f['not_ok_share']:.1%} | "
                f"{b['rmse_capped_truth']:.2f} → {a['rmse_capped_truth']:.2f} | "
                f"{b['rmse']:.2f} → {a['rmse']:.2f} |"
            )
    lines += [
        "",
        "### Another subset's test windows sent to the model",
        "",
        "| model | windows of | out_of_distribution | not ok | RMSE capped | RMSE uncapped |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        for other, f in r["foreign"].items():
            lines.append(
                f"| {r['model']} | {other} | {f['out_of_distribution_share']:.1%} | "
                f"{f['not_ok_share']:.1%} | "
                f"{f['rmse_capped_truth']:.2f} | {f['rmse']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--models-dir", default="models")
    parser.add_argument("--out", default="results/faults")
    args = parser.parse_args(argv)
    subsets = {s: load_subset(s, args.data_dir) for s in SUBSETS}
    results = []
    for onnx_path in sorted(Path(args.models_dir).glob("*.onnx")):
        served = Served(onnx_path, args.data_dir)
        results.append(evaluate_model(served, subsets, served.card.subsets[0]))
        print(json.dumps({k: results[-1][k] for k in ("model", "clean")}), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "tables.md").write_text(tables_markdown(results))
    print(tables_markdown(results))


if __name__ == "__main__":
    main()
