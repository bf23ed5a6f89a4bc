"""Measured, not asserted: are the drivers (service/core/drivers.py) faithful, stable and
physically sensible? docs/results/drivers.md.

    python -m training.studies.drivers_eval --data-dir ../shared/data/cmapss --models-dir models \
        --out results/drivers

For every shipped model, on its own subset's test units (the mixed-fleet model `cmapss` on
FD004's, its hardest), through the service's own pipeline (service/core/pipeline.py):
- deletion curves, on each unit's last window: the mean |change of RUL| when the window's top-k
  drivers (largest |effect|) are sent dead at once, against k read sensors drawn at random
  (RANDOM_DRAWS draws, the masked ones excluded from neither), k = 1..5;
- stability, on each unit's last STABILITY_CYCLES windows (one per cycle): how often the
  leading driver is the same as the cycle before, and the mean overlap of consecutive top-3
  sets (|A and B| / 3);
- physics, on the last windows of engines with true RUL <= 30: how often each sensor leads
  (top-1) and is among the top 3, and its mean effect; for FD003 (two fault modes, HPC and fan,
  no labels) the near-failure engines' effect vectors split in two by k-means, with each
  group's leading sensors.
Writes summary.json and tables.md. Not a test: a few minutes on 2 cores.
"""

from collections import Counter
from pathlib import Path

import numpy as np

from service.core import pipeline
from service.core.drivers import DEAD
from service.core.planning import Planning
from service.core.predictor import Predictor
from service.core.providers import SessionConfig
from training.data import load_subset
from training.studies import shipped_models
from training.windows import last_window

MODELS = shipped_models.SUBSETS
TOP_K = 5
RANDOM_DRAWS = 5
STABILITY_CYCLES = 30
NEAR_FAILURE = 30


def _prepared(predictor: Predictor, windows: np.ndarray) -> pipeline.Prepared:
    """NaN-padded windows sent as a client sends them: their real rows."""
    return pipeline.from_requests(
        predictor, [(i, w[~np.isnan(w).all(axis=1)]) for i, w in enumerate(windows)]
    )


def _rul(predictor: Predictor, windows: np.ndarray) -> np.ndarray:
    prepared = _prepared(predictor, windows)
    return pipeline.answer_now(predictor, prepared).outputs["rul"].astype(np.float64)


def _explained(predictor: Predictor, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N,) RUL and (N, K) effects of `windows` (windows shorter than W front-padded)."""
    prepared = _prepared(predictor, windows)
    answers = pipeline.answer_now(predictor, prepared, Planning(explain=True))
    assert answers.explanation is not None
    return answers.outputs["rul"].astype(np.float64), answers.explanation.effects


def _dead(windows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Each window i with the raw columns columns[i] (a row of indices) dead."""
    out = windows.copy()
    for i, cols in enumerate(columns):
        real = np.flatnonzero(~np.isnan(windows[i]).all(axis=1))
        out[i][np.ix_(real, cols)] = DEAD
    return out


def deletion_curves(predictor: Predictor, windows: np.ndarray, rng: np.random.Generator) -> dict:
    checks = predictor.card.quality
    assert checks is not None
    index = np.asarray(checks.column_index)
    rul, effects = _explained(predictor, windows)
    order = np.argsort(-np.abs(np.nan_to_num(effects, nan=0.0)), axis=1)  # (N, K) largest first
    top, random = [], []
    for k in range(1, TOP_K + 1):
        top.append(float(np.abs(_rul(predictor, _dead(windows, index[order[:, :k]])) - rul).mean()))
        draws = []
        for _ in range(RANDOM_DRAWS):
            picks = np.stack([rng.choice(len(index), k, replace=False) for _ in windows])
            draws.append(np.abs(_rul(predictor, _dead(windows, index[picks])) - rul).mean())
        random.append(float(np.mean(draws)))
    return {"k": list(range(1, TOP_K + 1)), "top_drivers": top, "random_sensors": random}


def stability(predictor: Predictor, units: list[np.ndarray]) -> dict:
    w = predictor.window_length
    same_top, overlap = [], []
    for unit in units:
        ends = range(max(len(unit) - STABILITY_CYCLES, predictor.card.padding.min_cycles), len(unit) + 1)
        windows = np.stack([last_window(unit[:end], w) for end in ends]).astype(np.float32)
        _, effects = _explained(predictor, windows)
        ranked = np.argsort(-np.abs(np.nan_to_num(effects, nan=0.0)), axis=1)
        for before, after in zip(ranked[:-1], ranked[1:], strict=True):
            same_top.append(before[0] == after[0])
            overlap.append(len(set(before[:3]) & set(after[:3])) / 3)
    return {"same_leading_driver": float(np.mean(same_top)), "top3_overlap": float(np.mean(overlap)),
            "pairs": len(same_top)}  # fmt: skip


def physics(
    predictor: Predictor, windows: np.ndarray, true_rul: np.ndarray, rng: np.random.Generator
) -> dict:
    checks = predictor.card.quality
    assert checks is not None
    near = true_rul <= NEAR_FAILURE
    _, effects = _explained(predictor, windows[near])
    ranked = np.argsort(-np.abs(np.nan_to_num(effects, nan=0.0)), axis=1)
    lead = Counter(checks.columns[r[0]] for r in ranked)
    top3 = Counter(checks.columns[c] for r in ranked for c in r[:3])
    mean_effect = {c: round(float(np.nanmean(effects[:, k])), 2) for k, c in enumerate(checks.columns)}
    result = {
        "engines": int(near.sum()),
        "leading": dict(lead.most_common()),
        "in_top3": dict(top3.most_common()),
        "mean_effect": mean_effect,
    }
    if len(effects) >= 4:
        result["two_groups"] = _two_groups(np.nan_to_num(effects), list(checks.columns), rng)
    return result


def _two_groups(effects: np.ndarray, columns: list[str], rng: np.random.Generator) -> list[dict]:
    """k-means (k = 2, 20 restarts) on the effect vectors scaled to unit length: each group's
    size and its three sensors of largest mean |effect|, with their mean effect."""
    x = effects / np.maximum(np.linalg.norm(effects, axis=1, keepdims=True), 1e-9)
    best, best_cost = None, np.inf
    for _ in range(20):
        centers = x[rng.choice(len(x), 2, replace=False)]
        for _ in range(50):
            labels = ((x[:, None] - centers[None]) ** 2).sum(-1).argmin(1)
            centers = np.stack(
                [x[labels == j].mean(0) if (labels == j).any() else centers[j] for j in range(2)]
            )
        cost = ((x - centers[labels]) ** 2).sum()
        if cost < best_cost:
            best, best_cost = labels, cost
    assert best is not None
    groups = []
    for j in range(2):
        mean = effects[best == j].mean(0)
        lead = np.argsort(-np.abs(mean))[:3]
        groups.append({"engines": int((best == j).sum()),
                       "leading": {columns[k]: round(float(mean[k]), 2) for k in lead}})  # fmt: skip
    return groups


def evaluate(model: str, models_dir: Path, data_dir: str) -> dict:
    predictor = Predictor.load(models_dir / f"{model}.onnx", SessionConfig("cpu"))
    subset = load_subset(MODELS[model], data_dir)
    units = [u.readings for u in subset.test]
    true_rul = np.asarray([u.final_rul for u in subset.test], dtype=np.float64)
    rng = np.random.default_rng(0)
    windows = np.stack([last_window(u, predictor.window_length) for u in units]).astype(np.float32)
    return {
        "subset": MODELS[model],
        "deletion": deletion_curves(predictor, windows, rng),
        "stability": stability(predictor, units),
        "physics": physics(predictor, windows, true_rul, rng),
    }


def _table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(str(cell) for cell in row) + " |" for row in rows
    ]


def _curves(deletion: dict) -> tuple[list[float], list[float]]:
    return deletion["top_drivers"], deletion["random_sensors"]


def tables(summary: dict) -> str:
    deletion = [
        [model, r["subset"], *(f"{t:.1f} / {x:.1f}" for t, x in zip(*_curves(r["deletion"]), strict=True))]
        for model, r in summary.items()
    ]
    stability = [
        [model, f"{s['same_leading_driver']:.0%}", f"{s['top3_overlap']:.0%}", s["pairs"]]
        for model, s in ((m, r["stability"]) for m, r in summary.items())
    ]
    physics = [
        [model, p["engines"], ", ".join(f"{c} {n}" for c, n in list(p["leading"].items())[:4]),
         ", ".join(f"{c} {n}" for c, n in list(p["in_top3"].items())[:5])]
        for model, p in ((m, r["physics"]) for m, r in summary.items())
    ]  # fmt: skip
    lines = _table(["model", "test units", *(f"k={k}" for k in range(1, TOP_K + 1))], deletion)
    lines += [
        "",
        *_table(["model", "same leading driver as the cycle before", "top-3 overlap", "pairs"], stability),
    ]
    lines += [
        "",
        *_table(["model", "engines RUL <= 30", "leading driver (times)", "most often in the top 3"], physics),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    shipped_models.run(__doc__, "results/drivers", evaluate, tables)


if __name__ == "__main__":
    main()
