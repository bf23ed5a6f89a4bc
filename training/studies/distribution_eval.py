"""Measured, not asserted: how well the shipped models' predictive distribution is calibrated
(docs/results/distribution.md).

    python -m training.studies.distribution_eval --data-dir ../shared/data/cmapss --models-dir models \
        --out results/distribution

For every model in the models directory, on each test unit's last window and on every test
window (built as the service builds them, NaN-padded short histories included), against the
true, uncapped RUL, with the service's own arithmetic (service/core/planning.py) on the ONNX
graph's rul_quantiles:
- quantile calibration: for each risk in RISKS, the share of windows whose true RUL is below
  rul_at_risk, beside the 90 % binomial band of the risk (for the last windows; every window
  is a correlated sample, its band is only indicative);
- failure probabilities for each horizon in HORIZONS: a reliability table (mean predicted vs
  observed share per bin of the prediction) and the Brier score, and for h = 30 the same for
  the health head's P(critical) (by definition an estimate of P(RUL <= 30));
- the safety-first operating point: NASA/PHM08 score (capped and uncapped truth) and the share
  of units over-estimated by more than 10 cycles, planning on rul_at_risk at risk 0.05 and 0.1
  against the point estimate `rul`.
Writes summary.json and tables.md. Not a test: about a minute per model on 2 cores.
"""

import argparse
import json
import math
from pathlib import Path

import numpy as np

from service.core.model_card import ModelCard
from service.core.planning import failure_probabilities, rul_at_risk
from training.constants import PADDING_RULE, RUL_CAP
from training.data import load_subset
from training.metrics import phm08_score
from training.parity import onnx_predict_fn
from training.windows import last_windows, stack_windows

RISKS = (0.01, 0.05, 0.1, 0.25, 0.5)
HORIZONS = (10, 20, 30, 50, 80)
BINS = (0.0, 0.05, 0.2, 0.4, 0.6, 0.8, 0.95, 1.0)  # reliability bins of a predicted probability
BIN_EDGES = list(zip(BINS[:-1], BINS[1:], strict=True))
OVER_ESTIMATE = 10  # cycles: a plan this much later than the truth is the costly error


def binomial_band(n: int, p: float, mass: float = 0.9) -> tuple[float, float]:
    """The central `mass` band of Binomial(n, p) / n: the shares a calibrated quantile at
    level p gives on n independent windows (exact, from the log-pmf)."""
    log_pmf = [math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
               + k * math.log(p) + (n - k) * math.log1p(-p) for k in range(n + 1)]  # fmt: skip
    cdf = np.cumsum(np.exp(np.asarray(log_pmf) - max(log_pmf)))
    cdf /= cdf[-1]
    tail = (1 - mass) / 2
    return float(np.searchsorted(cdf, tail) / n), float(np.searchsorted(cdf, 1 - tail) / n)


def reliability(predicted: np.ndarray, happened: np.ndarray) -> list[dict]:
    """Per bin of predicted probability: count, mean predicted, observed share."""
    rows = []
    index = np.clip(np.digitize(predicted, BINS[1:-1]), 0, len(BINS) - 2)
    for b in range(len(BINS) - 1):
        at = index == b
        if at.any():
            mean_predicted, observed = float(predicted[at].mean()), float(happened[at].mean())
            rows.append({"bin": [BINS[b], BINS[b + 1]], "n": int(at.sum()),
                         "predicted": mean_predicted, "observed": observed})  # fmt: skip
    return rows


def calibration(outputs: dict[str, np.ndarray], truth: np.ndarray, card: ModelCard) -> dict:
    """Every measure of the module docstring on one set of windows."""
    assert card.distribution is not None
    levels, cap = card.distribution.levels, card.rul_cap
    quantiles = outputs["rul_quantiles"]
    n = len(truth)
    risks = {}
    for risk in RISKS:
        share = float(np.mean(truth < rul_at_risk(quantiles, levels, risk, cap)))
        low, high = binomial_band(n, risk)
        risks[str(risk)] = {"share_below": share, "band90": [low, high], "within": low <= share <= high}
    probabilities = failure_probabilities(quantiles, levels, HORIZONS, cap)
    horizons = {}
    for j, h in enumerate(HORIZONS):
        happened = (truth <= h).astype(np.float64)
        horizons[str(h)] = {
            "brier": float(np.mean((probabilities[:, j] - happened) ** 2)),
            "base_rate": float(happened.mean()),
            "reliability": reliability(probabilities[:, j], happened),
        }
    critical = outputs["health_probs"][:, card.health_states.index("critical")].astype(np.float64)
    happened = (truth <= card.health_thresholds["critical_max"]).astype(np.float64)
    health = {
        "brier": float(np.mean((critical - happened) ** 2)),
        "reliability": reliability(critical, happened),
    }
    plans = {"point estimate": outputs["rul"].astype(np.float64)}
    for risk in (0.05, 0.1):
        plans[f"rul_at_risk {risk}"] = rul_at_risk(quantiles, levels, risk, cap)
    safety = {
        name: {
            "phm08_capped_truth": phm08_score(plan, np.minimum(truth, RUL_CAP)),
            "phm08": phm08_score(plan, truth),
            "over_estimated_by_more_than_10": float(np.mean(plan - truth > OVER_ESTIMATE)),
            "mean_plan_minus_truth": float(np.mean(plan - truth)),
        }
        for name, plan in plans.items()
    }
    return {"n": n, "risks": risks, "horizons": horizons, "health_p_critical_30": health, "safety": safety}


def evaluate_model(onnx_path: Path, data_dir: str | None) -> dict:
    card = ModelCard.model_validate_json(onnx_path.with_suffix(".json").read_bytes())
    predict = onnx_predict_fn(onnx_path)
    subset = load_subset(card.subsets[0], data_dir)
    x_last, y_last = last_windows(subset.test, card.window_length)
    x_all, y_all = stack_windows(subset.test, card.window_length, None, padding=PADDING_RULE)
    return {
        "model": card.name,
        "version": card.version,
        "last_windows": calibration(predict(x_last), y_last, card),
        "every_window": calibration(predict(x_all), y_all, card),
    }


def bin_cell(row: dict | None) -> str:
    return "–" if row is None else f"{row['predicted']:.2f} / {row['observed']:.2f} ({row['n']})"


def tables_markdown(results: list[dict]) -> str:
    """The tables of docs/results/distribution.md."""
    out = ["## Quantile calibration: share of windows whose true RUL is below rul_at_risk\n",
           "| model | windows | n | " + " | ".join(f"risk {r}" for r in RISKS) + " |",
           "|---|---|---|" + "---|" * len(RISKS)]  # fmt: skip
    for r in results:
        for where in ("last_windows", "every_window"):
            m = r[where]
            cells = [f"{m['risks'][str(k)]['share_below']:.3f} [{m['risks'][str(k)]['band90'][0]:.3f}–"
                     f"{m['risks'][str(k)]['band90'][1]:.3f}]{'' if m['risks'][str(k)]['within'] else ' ✗'}"
                     for k in RISKS]  # fmt: skip
            out.append(f"| {r['model']} | {where.replace('_', ' ')} | {m['n']} | " + " | ".join(cells) + " |")
    out += ["\n## Failure probabilities: Brier score (base rate); the health head's P(critical) at h = 30\n",
            "| model | windows | " + " | ".join(f"h = {h}" for h in HORIZONS) + " | P(critical), h = 30 |",
            "|---|---|" + "---|" * (len(HORIZONS) + 1)]  # fmt: skip
    for r in results:
        for where in ("last_windows", "every_window"):
            m = r[where]
            cells = [f"{m['horizons'][str(h)]['brier']:.4f} ({m['horizons'][str(h)]['base_rate']:.2f})"
                     for h in HORIZONS]  # fmt: skip
            critical = m["health_p_critical_30"]["brier"]
            out.append(
                f"| {r['model']} | {where.replace('_', ' ')} | " + " | ".join(cells) + f" | {critical:.4f} |"
            )
    out += ["\n## Reliability at h = 30, every test window: mean predicted / observed (windows)\n",
            "| model | source | " + " | ".join(f"{a:g}–{b:g}" for a, b in BIN_EDGES) + " |",
            "|---|---|" + "---|" * (len(BINS) - 1)]  # fmt: skip
    for r in results:
        m = r["every_window"]
        for source, rows in (("distribution", m["horizons"]["30"]["reliability"]),
                             ("P(critical)", m["health_p_critical_30"]["reliability"])):  # fmt: skip
            by_bin = {tuple(row["bin"]): row for row in rows}
            cells = [bin_cell(by_bin.get((a, b))) for a, b in BIN_EDGES]
            out.append(f"| {r['model']} | {source} | " + " | ".join(cells) + " |")
    out += ["\n## Safety-first operating point, test units' last windows\n",
            "| model | plan on | NASA (capped truth) | NASA (uncapped) | over-estimated > 10 cycles | "
            "mean plan − truth |", "|---|---|---|---|---|---|"]  # fmt: skip
    for r in results:
        for plan, m in r["last_windows"]["safety"].items():
            over, bias = m["over_estimated_by_more_than_10"], m["mean_plan_minus_truth"]
            out.append(f"| {r['model']} | {plan} | {m['phm08_capped_truth']:.0f} | {m['phm08']:.0f} | "
                       f"{over:.1%} | {bias:+.1f} |")  # fmt: skip
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir", default=None, help="C-MAPSS directory (default: $CMAPSS_DIR or data/cmapss)"
    )
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--out", type=Path, default=Path("results/distribution"))
    args = parser.parse_args(argv)
    results = [evaluate_model(path, args.data_dir) for path in sorted(args.models_dir.glob("*.onnx"))]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "tables.md").write_text(tables_markdown(results))
    print(tables_markdown(results))


if __name__ == "__main__":
    main()
