"""The book study's item 4 (docs/results/book.md): does GABA ship on FD001's full recipe?

On the cheap base GABA beat the shipped weighting on FD001's validation units by more than 2
s.e. (-0.38 +- 0.04, 3 seeds), so it is run on FD001's full recipe: the shipped fd001's five
cross-validation networks (training/recipes.py), each trained again with `--loss-weighting
gaba` on the same units, seed and flags:

    for k in 0 1 2 3 4; do
      rul-train --recipe fd001 --member fold$k --loss-weighting gaba --record-test-rmse \
        --out-dir runs/book-full/fd001-gaba --data-dir ../shared/data/cmapss
    done
    python -m training.studies.book_full_recipe --data-dir ../shared/data/cmapss

The rule, fixed before the runs finished (the issue's, with round 12's faulted windows):
paired fold by fold with the shipped network, GABA ships if its clean every-window validation
RMSE is lower by more than 2 s.e. of the paired differences AND its masked validation RMSE
(one feature masked per window, train.masked_validation_mask, imputed in the graph) is lower
on average. Both are measured here in the same way for both networks (mask_round.validation_rmses).
Only after the decision, for the record: the test metrics of the GABA ensemble as rul-export
would build it, and what choosing each network's epoch on the test set would have given.
Writes decision.json and decision.md under --out.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from training.studies.book_losses import book_protocol_figures
from training.studies.experiments import evaluate_ensemble
from training.studies.mask_round import paired, validation_rmses
from training.studies.plans import SHIPPED_CHECKPOINTS

RECORD = ("rmse_capped_truth", "rmse", "phm08_score_capped_truth", "phm08_score", "health_macro_f1")


def decide(data_dir: str, runs_dir: Path) -> dict:
    rows = []
    for k, shipped in enumerate(SHIPPED_CHECKPOINTS["FD001"]):
        candidate = runs_dir / f"fold{k}.pt"
        base, new = validation_rmses(shipped, data_dir), validation_rmses(str(candidate), data_dir)
        rows.append({"network": k, "shipped": shipped, "gaba": str(candidate),
                     "clean": [base[0], new[0]], "masked": [base[1], new[1]]})  # fmt: skip
    clean = paired([r["clean"][1] - r["clean"][0] for r in rows])
    masked = paired([r["masked"][1] - r["masked"][0] for r in rows])
    ships = clean["mean"] < -2 * clean["se"] and masked["mean"] < 0
    return {"networks": rows, "clean_difference": clean, "masked_difference": masked, "ships": bool(ships)}


def for_the_record(data_dir: str, runs_dir: Path) -> dict:
    """After the decision, never used for it: the GABA ensemble's test metrics beside the
    shipped one's, and the book's protocol (each network's epoch chosen on the test set)."""
    paths = [runs_dir / f"fold{k}.pt" for k in range(5)]
    gaba = evaluate_ensemble(paths, data_dir)
    shipped = evaluate_ensemble([Path(p) for p in SHIPPED_CHECKPOINTS["FD001"]], data_dir)
    test_selected = []
    for path in paths:
        history = torch.load(path, map_location="cpu", weights_only=False)["history"]
        test_selected.append(book_protocol_figures(history)["rmse_capped_truth"])
    return {
        "gaba_ensemble": {k: gaba[k] for k in RECORD if k in gaba},
        "shipped_ensemble": {k: shipped[k] for k in RECORD if k in shipped},
        "gaba_networks_test_selected_rmse_capped_truth": test_selected,
    }


def markdown(decision: dict, record: dict) -> str:
    rows, c, m = decision["networks"], decision["clean_difference"], decision["masked_difference"]
    base_c, new_c = np.mean([r["clean"][0] for r in rows]), np.mean([r["clean"][1] for r in rows])
    base_m, new_m = np.mean([r["masked"][0] for r in rows]), np.mean([r["masked"][1] for r in rows])
    lines = [
        "| networks | clean validation RMSE: shipped → GABA | paired difference ± s.e. | masked validation "
        "RMSE: shipped → GABA | paired difference ± s.e. | ships |",
        "|---|---|---|---|---|---|",
        f"| {len(rows)} | {base_c:.2f} → {new_c:.2f} | {c['mean']:+.2f} ± {c['se']:.2f} (lower on "
        f"{c['lower_on']} of {c['n']}) | {base_m:.2f} → {new_m:.2f} | {m['mean']:+.2f} ± {m['se']:.2f} "
        f"(lower on {m['lower_on']} of {m['n']}) | {'yes' if decision['ships'] else 'no'} |",
        "",
        "For the record (after the decision, not used for it), FD001 test units' last windows:",
        "",
        "| ensemble | RMSE (capped truth) | RMSE (uncapped) | NASA (capped truth) | health macro-F1 |",
        "|---|---|---|---|---|",
    ]
    for name in ("shipped_ensemble", "gaba_ensemble"):
        r = record[name]
        lines.append(f"| {name.split('_')[0]} | {r['rmse_capped_truth']:.2f} | {r['rmse']:.2f} | "
                     f"{r['phm08_score_capped_truth']:.0f} | {r['health_macro_f1']:.3f} |")  # fmt: skip
    chosen = record["gaba_networks_test_selected_rmse_capped_truth"]
    lines += ["", f"GABA networks with the epoch chosen on the test set (the book's protocol): "
              f"{', '.join(f'{v:.2f}' for v in chosen)} (mean {np.mean(chosen):.2f})."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--runs-dir", default="runs/book-full/fd001-gaba", type=Path)
    parser.add_argument("--out", default="results/book/full_recipe", type=Path)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    decision = decide(args.data_dir, args.runs_dir)
    record = for_the_record(args.data_dir, args.runs_dir)
    everything = {**decision, "for_the_record": record}
    (args.out / "decision.json").write_text(json.dumps(everything, indent=1) + "\n")
    (args.out / "decision.md").write_text(markdown(decision, record))
    print(markdown(decision, record))


if __name__ == "__main__":
    main()
