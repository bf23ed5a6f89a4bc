"""Measured, not asserted: how the shipped models' input checks and masking behave on faulty
and foreign windows (docs/results/faults.md).

    python -m training.studies.fault_eval --data-dir ../shared/data/cmapss --models-dir models \
        --out results/faults

For every model of one C-MAPSS subset in the models directory (not the mixed-fleet model:
docs/results/mixed_fleet.md), on each test unit's last window (built as the
service builds it: the last window_length cycles, front-padded with NaN rows when shorter):
- clean: the share of windows whose quality is not "ok", over the last windows and over every
  test window with a full history (a shorter one is short_history, degraded by design), RMSE
  against the capped and the uncapped truth, interval coverage against the uncapped truth,
  and the coverage of each history band's interval on the full last windows cut to every
  length of the band;
- one fault at a time in every sensor the model reads (FAULTS): the share of windows in which
  that column is flagged, the share not "ok", the RMSE before masking (the same networks with
  no checks and no masking) and after (the exported graph, as served), and the RMSE of the
  windows answered "ok";
- faults of the whole window (WINDOW_FAULTS: the cycles' order, repeated cycles, short
  histories): the share with the expected check flagged, the share not "ok", the RMSE as
  served and of the windows answered "ok";
- for every fault, the windows of engines with true RUL <= 30 answered "normal" with status ok
  (the one answer that must never happen);
- every other subset's test windows sent to the model: the share out_of_distribution and the
  RMSE against their own truth.
The quality status is the service's own (service.core.check_sentences), applied to the ONNX graph's
outputs. Writes summary.json and tables.md. Not a test: about 20 minutes on 2 cores.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort

from service.core.check_sentences import QualityExplainer
from service.core.model_card import ModelCard
from service.core.pipeline import row_positions
from service.core.window_quality import OK, OUT_OF_DISTRIBUTION
from training.checkpoint import OUTPUT_NAMES, MembersMean
from training.constants import RUL_CAP, SUBSETS
from training.data import Unit, load_subset
from training.ensemble import load_members
from training.evaluate import torch_predict_fn
from training.intervals import history_bands
from training.metrics import interval_coverage, rmse
from training.studies.fault_kinds import FAULTS, WINDOW_FAULTS
from training.studies.fault_tables import tables_markdown
from training.windows import last_window, real_cycles, stack_windows

CRITICAL_RUL = 30  # true RUL at or below which "normal" with status ok is never acceptable


class Served:
    """One exported model as the service runs it, plus its networks without checks or masking."""

    def __init__(self, onnx_path: Path, data_dir: str):
        self.card = ModelCard.model_validate_json(onnx_path.with_suffix(".json").read_bytes())
        assert self.card.quality is not None, f"{onnx_path} has no input checks"
        self.session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        self.explainer = QualityExplainer(self.card.quality, self.card.input_features)
        raw = json.loads(onnx_path.with_suffix(".json").read_text())
        members, checkpoints, _ = load_members(raw["training"]["checkpoints"], data_dir)
        # the same networks, nothing checked or masked: "before masking"
        self.unmasked = torch_predict_fn(MembersMean(members).eval())
        self.window_length = self.card.window_length

    def windows(self, units: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Each unit's last cycles as the service builds the window, and each row's position."""
        windows = np.stack([last_window(u, self.window_length) for u in units]).astype(np.float32)
        positions = np.stack([row_positions(self.window_length, len(u)) for u in units])
        return windows, positions

    def run(self, windows: np.ndarray, positions: np.ndarray) -> dict:
        """The graph's outputs as served, plus "quality" (the service's, per window) and
        "normal" (health_state normal, bool per window)."""
        names = list(OUTPUT_NAMES)
        out = dict(zip(names, self.session.run(names, {"readings": windows}), strict=True))
        out["quality"] = self.explainer.assess_batch(
            windows, out["quality_flags"], out["ood_score"], positions, out["window_flags"]
        )
        out["normal"] = np.argmax(out["health_probs"], axis=1) == self.card.health_states.index("normal")
        return out


def _rmses(predicted: np.ndarray, true: np.ndarray) -> dict[str, float]:
    return {"rmse_capped_truth": rmse(predicted, np.minimum(true, RUL_CAP)), "rmse": rmse(predicted, true)}


def _not_ok(out: dict) -> np.ndarray:
    return np.array([q.status != OK for q in out["quality"]])


def _flagged_share(out: dict, check: str) -> float:
    """The share of windows with a flag of `check`."""
    return float(np.mean([any(f.check == check for f in q.flags) for q in out["quality"]]))


def _answered(out: dict, true: np.ndarray) -> dict:
    """What the windows' answers were worth: RMSE as served, RMSE of the windows answered ok,
    and how many windows of engines near failure were answered normal with status ok."""
    ok = ~_not_ok(out)
    critical = true <= CRITICAL_RUL
    return {
        "not_ok_share": float(np.mean(~ok)),
        "served": _rmses(out["rul"], true),
        "ok_windows": int(ok.sum()),
        "ok_rmse_capped_truth": rmse(out["rul"][ok], np.minimum(true[ok], RUL_CAP)) if ok.any() else None,
        "critical_windows": int(critical.sum()),
        "critical_answered_normal_ok": int((critical & ok & out["normal"]).sum()),
    }


def _history_coverage(served: Served, test: list[Unit]) -> dict[str, dict]:
    """Per history band: the interval coverage (uncapped truth) of the full last windows cut to
    every length of the band, pooled, and the mean width."""
    full = [u for u in test if len(u.readings) >= served.window_length]
    true = np.array([u.final_rul for u in full])
    bands = {}
    for first, last in [*history_bands(served.window_length), (served.window_length, served.window_length)]:
        covered, widths, n_windows = [], [], 0
        for n in range(first, last + 1):
            windows, positions = served.windows([u.readings[-n:] for u in full])
            out = served.run(windows, positions)
            covered.append(interval_coverage(true, out["rul_lower"], out["rul_upper"]) * len(full))
            finite = np.isfinite(out["rul_upper"])
            widths += (out["rul_upper"] - out["rul_lower"])[finite].tolist()
            n_windows += len(full)
        bands[f"{first}-{last}"] = {
            "windows": n_windows,
            "units": len(full),
            "coverage": float(sum(covered) / n_windows),
            "mean_width_bounded": float(np.mean(widths)) if widths else None,
        }
    return bands


def evaluate_model(served: Served, subsets: dict[str, object], own: str, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    test: list[Unit] = subsets[own].test  # type: ignore[attr-defined]
    true = np.array([u.final_rul for u in test])
    readings = [u.readings[-served.window_length :].astype(np.float64) for u in test]
    windows, positions = served.windows(readings)
    out = served.run(windows, positions)
    every, every_rul = stack_windows(test, served.window_length, None, padding="nan")
    full_history = real_cycles(every) == served.window_length
    every_positions = np.where(np.isnan(every).all(axis=2), -1, np.arange(served.window_length))
    every_out = served.run(every.astype(np.float32), every_positions)
    every_not_ok = _not_ok(every_out)
    last_full = np.array([len(u.readings) >= served.window_length for u in test])
    clean = {
        "windows": len(test),
        "short_history_windows": int((~last_full).sum()),
        **_answered(out, true),
        "not_ok_share_full_history": float(np.mean(_not_ok(out)[last_full])),
        "every_windows_full_history": int(full_history.sum()),
        "not_ok_share_every_window_full_history": float(every_not_ok[full_history].mean()),
        "every_windows_short_history": int((~full_history).sum()),
        "every_window": _answered(every_out, every_rul),
        **_rmses(out["rul"], true),
        "interval_coverage": interval_coverage(true, out["rul_lower"], out["rul_upper"]),
        "interval_open_share": float(np.mean(~np.isfinite(out["rul_upper"]))),
        "history_bands": _history_coverage(served, test),
    }
    checks = served.card.quality
    faults = {}
    for name, inject in FAULTS.items():
        flagged, before, after, truth, parts = [], [], [], [], []
        for c, column in enumerate(checks.column_index):
            scale = float(np.median(np.asarray(checks.scale)[:, c]))
            faulty = [inject(r.copy(), column, scale, rng) for r in readings]
            f_windows, f_positions = served.windows(faulty)
            f_out = served.run(f_windows, f_positions)
            flagged += [
                any(f.column == served.card.input_features[column] for f in q.flags) for q in f_out["quality"]
            ]
            parts.append(f_out)
            after.append(f_out["rul"])
            before.append(served.unmasked(f_windows)["rul"])
            truth.append(true)
        t = np.concatenate(truth)
        pooled = {k: np.concatenate([p[k] for p in parts]) for k in ("rul", "normal")}
        pooled["quality"] = [q for p in parts for q in p["quality"]]
        faults[name] = {
            "windows": len(t),
            "column_flagged_share": float(np.mean(flagged)),
            **_answered(pooled, t),
            "before_masking": _rmses(np.concatenate(before), t),
            "after_masking": _rmses(np.concatenate(after), t),
        }
    window_faults = {}
    for name, (inject, check) in WINDOW_FAULTS.items():
        faulty = [inject(r.copy(), rng) for r in readings]
        f_windows, f_positions = served.windows(faulty)
        f_out = served.run(f_windows, f_positions)
        window_faults[name] = {
            "windows": len(faulty),
            "expected_check": check,
            "check_flagged_share": _flagged_share(f_out, check),
            **_answered(f_out, true),
        }
    foreign = {}
    for other, data in subsets.items():
        if other == own:
            continue
        units = data.test  # type: ignore[attr-defined]
        o_windows, o_positions = served.windows([u.readings[-served.window_length :] for u in units])
        o_out = served.run(o_windows, o_positions)
        foreign[other] = {
            "windows": len(units),
            "out_of_distribution_share": float(
                np.mean([q.status == OUT_OF_DISTRIBUTION for q in o_out["quality"]])
            ),
            "not_ok_share": float(np.mean([q.status != OK for q in o_out["quality"]])),
            **_rmses(o_out["rul"], np.array([u.final_rul for u in units])),
        }
    return {
        "model": served.card.name,
        "version": served.card.version,
        "subset": own,
        "clean": clean,
        "faults": faults,
        "window_faults": window_faults,
        "foreign": foreign,
    }


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
        if served.card.subsets[0] not in SUBSETS:  # the mixed fleet: docs/results/mixed_fleet.md
            print(f"{onnx_path.stem}: not one C-MAPSS subset's model, skipped", flush=True)
            continue
        results.append(evaluate_model(served, subsets, served.card.subsets[0]))
        print(json.dumps({k: results[-1][k] for k in ("model", "clean")}), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "tables.md").write_text(tables_markdown(results))
    print(tables_markdown(results))


if __name__ == "__main__":
    main()
