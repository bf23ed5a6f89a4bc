"""Round 12's decision (docs/results/rounds.md, "Round 12"): do networks fine-tuned with random sensor
masking ship? The rule was fixed in training/studies/experiments.py before the runs.

    python -m training.studies.mask_round --data-dir ../shared/data/cmapss --out results/mask-finetune

Pairs every shipped network (experiments.SHIPPED_CHECKPOINTS) with its fine-tuned copy (the
same training and validation units) and computes, for both, in the same way:
- the clean every-window validation RMSE (truth capped at 125, as in every round);
- the masked one: each validation window with one feature masked (window i masks feature
  i mod F, train.masked_validation_mask), the shipped network masked by the same in-graph
  imputation (weights fitted on its own training units).
A subset adopts the fine-tuned networks if the mean paired clean difference is at most 2 s.e.
(not worse beyond noise) and the mean paired masked difference is below 0. Writes
decision.json and decision.md. With --test-for-the-record, after the decision, also the test
metrics of each subset's fine-tuned ensemble (test_for_the_record.json), never used for it.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from training.checkpoint import load_checkpoint
from training.constants import RUL_CAP
from training.data import load_subset
from training.ensemble import with_imputation
from training.metrics import rmse
from training.preprocessing import masked_validation_mask
from training.studies.experiments import SHIPPED_CHECKPOINTS, evaluate_ensemble, mask_finetune_jobs
from training.windows import stack_windows


def validation_rmses(path: str, data_dir: str) -> tuple[float, float]:
    """(clean, masked) every-window validation RMSE of one checkpoint's network."""
    member, checkpoint = load_checkpoint(path)
    subset = load_subset(checkpoint["train_config"]["subset"], data_dir)
    member = with_imputation(member, checkpoint, subset, data_dir).eval()
    ids = set(checkpoint["split"]["validation_units"])
    x, y = stack_windows([u for u in subset.train if u.unit_id in ids], checkpoint["window_length"], RUL_CAP)
    mask = masked_validation_mask(len(x), len(member.preprocessor.stats.feature_index))
    clean, masked = [], []
    with torch.no_grad():
        for i in range(0, len(x), 2048):
            xb = torch.from_numpy(x[i : i + 2048])
            clean.append(torch.clamp(member.model(member.preprocessor(xb))[0], min=0.0))
            masked.append(torch.clamp(member.model(member.preprocessor(xb, mask[i : i + 2048]))[0], min=0.0))
    return rmse(torch.cat(clean).numpy(), y), rmse(torch.cat(masked).numpy(), y)


def paired(differences: list[float]) -> dict[str, float]:
    d = np.asarray(differences)
    se = float(d.std(ddof=1) / np.sqrt(len(d)))
    return {"mean": float(d.mean()), "se": se, "lower_on": int((d < 0).sum()), "n": len(d)}


def decide(data_dir: str, runs_dir: Path) -> dict:
    tuned = {(j.subset, j.seed): j.checkpoint(runs_dir) for j in mask_finetune_jobs()}
    decision: dict = {}
    for subset, shipped_paths in SHIPPED_CHECKPOINTS.items():
        rows = []
        for k, shipped in enumerate(shipped_paths):
            base, new = (
                validation_rmses(shipped, data_dir),
                validation_rmses(str(tuned[(subset, k)]), data_dir),
            )
            rows.append({"network": k, "shipped": shipped, "fine_tuned": str(tuned[(subset, k)]),
                         "clean": [base[0], new[0]], "masked": [base[1], new[1]]})  # fmt: skip
        clean = paired([r["clean"][1] - r["clean"][0] for r in rows])
        masked = paired([r["masked"][1] - r["masked"][0] for r in rows])
        adopt = clean["mean"] <= 2 * clean["se"] and masked["mean"] < 0
        decision[subset] = {"networks": rows, "clean_difference": clean, "masked_difference": masked,
                            "adopt": bool(adopt)}  # fmt: skip
    return decision


def test_for_the_record(data_dir: str, runs_dir: Path) -> dict:
    """Test metrics of each subset's fine-tuned ensemble, as rul-export would build it."""
    record = {}
    for subset in SHIPPED_CHECKPOINTS:
        paths = [j.checkpoint(runs_dir) for j in mask_finetune_jobs() if j.subset == subset]
        metrics = evaluate_ensemble(paths, data_dir)
        record[subset] = {k: metrics[k] for k in ("rmse_capped_truth", "rmse", "interval_coverage")}
    return record


def markdown(decision: dict) -> str:
    lines = [
        "| subset | networks | clean validation RMSE: shipped → fine-tuned | paired difference ± s.e. | "
        "masked validation RMSE: shipped (imputed) → fine-tuned | paired difference ± s.e. | adopted |",
        "|---|---|---|---|---|---|---|",
    ]
    for subset, d in decision.items():
        rows, c, m = d["networks"], d["clean_difference"], d["masked_difference"]
        base_c, new_c = np.mean([r["clean"][0] for r in rows]), np.mean([r["clean"][1] for r in rows])
        base_m, new_m = np.mean([r["masked"][0] for r in rows]), np.mean([r["masked"][1] for r in rows])
        lines.append(
            f"| {subset} | {len(rows)} | {base_c:.2f} → {new_c:.2f} | {c['mean']:+.2f} ± {c['se']:.2f} "
            f"(lower on {c['lower_on']} of {c['n']}) | {base_m:.2f} → {new_m:.2f} | "
            f"{m['mean']:+.2f} ± {m['se']:.2f} "
            f"(lower on {m['lower_on']} of {m['n']}) | {'yes' if d['adopt'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--runs-dir", default="runs/results", type=Path)
    parser.add_argument("--out", default="results/mask-finetune", type=Path)
    parser.add_argument(
        "--test-for-the-record", action="store_true", help="only the test metrics, after the decision"
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.test_for_the_record:
        record = test_for_the_record(args.data_dir, args.runs_dir)
        (args.out / "test_for_the_record.json").write_text(json.dumps(record, indent=1) + "\n")
        print(json.dumps(record, indent=1))
        return
    decision = decide(args.data_dir, args.runs_dir)
    (args.out / "decision.json").write_text(json.dumps(decision, indent=1) + "\n")
    (args.out / "decision.md").write_text(markdown(decision))
    print(markdown(decision))


if __name__ == "__main__":
    main()
