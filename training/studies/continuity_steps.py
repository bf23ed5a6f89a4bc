"""A first look, not a check: can a step between consecutive cycles tell a stitched window
(another engine's last k cycles appended) from one engine's history? For issue "One engine,
one continuous history"; the checks themselves are still to be designed.

    python -m training.studies.continuity_steps --data-dir ../shared/data/cmapss --models fd001 fd004

Two statistics per window, each the largest over its consecutive real-cycle pairs:
- level step: sum over the read sensors of (change of the robust z-score)^2 / its variance in
  the training units (the checks' z-scores: each cycle against its own operating condition);
- residual step: the same for each sensor's residual from its estimate from the others (the
  relation between sensors).
The threshold of each is its largest value over the training units' windows (every 7th start),
with no margin; the test units' last windows, clean and stitched (a random other test engine's
last k cycles), are then counted over it. Prints one line per model and k.
"""

import argparse
from pathlib import Path

import numpy as np

from service.core.check_sentences import QualityExplainer
from service.core.model_card import ModelCard
from training.data import load_subset
from training.studies.shipped_models import SUBSETS


def _steps(
    explainer: QualityExplainer, imputation: np.ndarray, var: np.ndarray, window: np.ndarray
) -> np.ndarray:
    z = explainer._z(window.astype(np.float64))
    level = np.diff(z, axis=0)
    residual = np.diff(z - z @ imputation.T, axis=0)
    return np.array([(level**2 / var[0]).sum(axis=1).max(), (residual**2 / var[1]).sum(axis=1).max()])


def look(model: str, data_dir: str, rng: np.random.Generator) -> None:
    card = ModelCard.model_validate_json(Path(f"models/{model}.json").read_bytes())
    assert card.quality is not None and card.quality.imputation is not None
    explainer = QualityExplainer(card.quality, card.input_features)
    imputation = np.asarray(card.quality.imputation)
    data = load_subset(SUBSETS[model], data_dir)
    w = card.window_length
    zs = [explainer._z(u.readings.astype(np.float64)) for u in data.train]
    var = np.stack([
        np.concatenate([np.diff(z, axis=0) for z in zs]).var(axis=0),
        np.concatenate([np.diff(z - z @ imputation.T, axis=0) for z in zs]).var(axis=0),
    ])  # fmt: skip
    train = np.array([_steps(explainer, imputation, var, u.readings[s : s + w])
                      for u in data.train for s in range(0, max(len(u.readings) - w, 1), 7)])  # fmt: skip
    threshold = train.max(axis=0)
    units = [u.readings for u in data.test]
    clean = np.array([_steps(explainer, imputation, var, u[-w:]) for u in units])
    print(f"{model}: thresholds (level, residual) {np.round(threshold, 1)}; clean last windows over either: "
          f"{(clean > threshold).any(axis=1).mean():.1%}")  # fmt: skip
    for k in (1, 2, 5):
        stitched = []
        for i, unit in enumerate(units):
            donor = units[(i + 1 + rng.integers(len(units) - 1)) % len(units)]
            window = unit[-w:].copy()
            window[-k:] = donor[-k:]
            stitched.append(_steps(explainer, imputation, var, window))
        over = np.array(stitched) > threshold
        print(f"  k={k}: caught by the level step {over[:, 0].mean():.0%}, by the residual step "
              f"{over[:, 1].mean():.0%}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--models", nargs="+", default=["fd001", "fd004"], choices=list(SUBSETS))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for model in args.models:
        look(model, args.data_dir, rng)


if __name__ == "__main__":
    main()
