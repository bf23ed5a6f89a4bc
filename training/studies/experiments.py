"""Reproduce every number in RESULTS.md: the main table (each subset, several seeds, the
recipe chosen on validation units) and the loss-weighting ablation (FD001 and FD002).

    python -m training.studies.experiments --data-dir ../shared/data/cmapss --runs-dir runs/results

Trains what is missing (a checkpoint that exists is reused), `--workers` at a time with one
torch thread each, then evaluates every checkpoint on the test protocol and writes
`results/summary.json` and `results/tables.md`. The whole grid takes hours on 2 cores;
`--only main` or `--only ablation` and `--seeds N` run part of it. Not a test.
"""

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from training.constants import RUL_CAP, SUBSETS
from training.ensemble import build_graph, calibration_windows
from training.evaluate import evaluate_checkpoint, evaluate_last_windows, rmse_all_windows, torch_predict_fn
from training.metrics import rmse
from training.studies.experiment_tables import tables_markdown
from training.studies.plans import (  # noqa: F401  (re-exported: the plans, with the runner)
    ABLATION,
    ABLATION_BASE,
    ABLATION_SUBSETS,
    CV_FOLDS,
    CV_SUBSETS,
    CV_VARIANTS,
    LONG,
    MASK_FINETUNE,
    METRICS,
    RECIPE,
    SHIPPED,
    SHIPPED_CHECKPOINTS,
    SWEEP,
    Splits,
    cv_runs,
)


@dataclass
class Job:
    experiment: str  # "main" or "ablation/<weighting>"
    subset: str
    seed: int
    flags: list[str] = field(default_factory=list)

    def checkpoint(self, runs_dir: Path) -> Path:
        slug = self.experiment.replace("/", "_").replace(" ", "_")
        return runs_dir / slug / f"{self.subset.lower()}_seed{self.seed}.pt"


def cv_job(variant: str, subset: str, split: int, fold: int) -> Job:
    """Member `fold` of `variant`'s cross-validation ensemble of `subset` for split seed `split`."""
    cv_flags = ["--folds", str(CV_FOLDS), "--fold", str(fold), "--split-seed", str(split)]
    return Job(f"{variant}-split{split}", subset, fold, [*CV_VARIANTS[variant][0][subset], *cv_flags])


def mask_finetune_jobs() -> list[Job]:
    """One fine-tuning job per shipped network; member k keeps seed k."""
    return [
        Job("mask-finetune", subset, k, ["--init-from", path, *MASK_FINETUNE])
        for k in range(5) for subset, paths in SHIPPED_CHECKPOINTS.items() for path in paths[k : k + 1]
    ]  # fmt: skip


def plan(
    only: str, seeds: int, ablation_seeds: int, weightings: list[str], cv_variants: list[str] | None = None
) -> list[Job]:
    """The jobs to run: the main table first, then the cross-validation ensembles (the
    variants named, default all), then the ablation seed by seed."""
    jobs: list[Job] = []
    if only in ("all", "main"):
        jobs += [Job("main", s, seed, RECIPE[s]) for seed in range(seeds) for s in SUBSETS]
    if only in ("all", "cv"):
        for variant in [v for v in CV_VARIANTS if cv_variants is None or v in cv_variants]:
            runs = cv_runs(variant)
            for split in sorted({split for split, _ in runs}):
                subsets = [s for r, s in runs if r == split]
                jobs += [cv_job(variant, s, split, fold) for fold in range(CV_FOLDS) for s in subsets]
    if only == "mask":
        jobs += mask_finetune_jobs()
    if only == "sweep":
        jobs += [
            Job(f"sweep/{name}", subset, seed, flags)
            for name, subset, seeds, flags in SWEEP
            for seed in seeds
        ]
    if only in ("all", "ablation"):
        jobs += [
            Job(f"ablation/{name}", s, seed, ABLATION_BASE[s] + flags)
            for seed in range(ablation_seeds) for s in ABLATION_SUBSETS for name, flags in ABLATION.items()
            if name in weightings
        ]  # fmt: skip
    return jobs


def run(job: Job, runs_dir: Path, data_dir: str) -> None:
    out = job.checkpoint(runs_dir)
    if out.exists():
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    try:  # a lock file lets several runners share one runs dir without training a job twice
        os.close(os.open(out.with_suffix(".lock"), os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return
    command = [sys.executable, "-m", "training.train", "--subset", job.subset, "--seed", str(job.seed),
               "--data-dir", data_dir, "--out", str(out), "--threads", "1", *job.flags]  # fmt: skip
    with open(out.with_suffix(".log"), "w") as log:
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True)
    out.with_suffix(".lock").unlink()
    print(f"done {job.experiment} {job.subset} seed {job.seed}", flush=True)


def evaluate_ensemble(paths: list[Path], data_dir: str) -> dict[str, float]:
    """The test-protocol metrics of the ensemble rul-export would build from `paths` (in
    PyTorch: the exported graph agrees to 1e-3 cycles), plus its members' mean validation RMSE,
    the RMSE on the windows its interval is calibrated on (a cross-validation ensemble: every
    training unit, out of fold; the comparison the window rounds use) and the summed training
    time."""
    graph, checkpoints, subset = build_graph([str(p) for p in paths], data_dir)
    held_out = calibration_windows(list(graph.members), checkpoints, subset)
    uncut = ~held_out.cut  # the windows as they are, not the shorter histories cut from them
    held_out_rul, held_out_truth = held_out.predicted[uncut], held_out.truth[uncut]
    held_out_truth = np.minimum(held_out_truth, RUL_CAP)  # the pooled RMSE is against the capped truth
    predict, window_length = torch_predict_fn(graph), checkpoints[0]["window_length"]
    metrics = evaluate_last_windows(predict, subset.test, window_length, checkpoints[0]["health_thresholds"])
    validation = [c["metrics"]["validation"]["rmse_all_windows_capped"] for c in checkpoints]
    return {
        **metrics,
        "rmse_all_windows_capped": rmse_all_windows(predict, subset.test, window_length),
        "validation_rmse": float(np.mean(validation)),
        "validation_rmse_pooled": rmse(held_out_rul, held_out_truth),
        "training_seconds": float(sum(c["training_seconds"] for c in checkpoints)),
    }  # fmt: skip


def summarize(jobs: list[Job], runs_dir: Path, data_dir: str) -> dict:
    """{experiment: {subset: {metric: [per seed], "mean": {...}, "std": {...}}}}; the
    cross-validation ensembles, one per split seed, under f"{variant}-ensemble"."""
    summary: dict = {}
    for variant in CV_VARIANTS:
        for split, subset in cv_runs(variant):
            members = [j for j in jobs if j.experiment == f"{variant}-split{split}" and j.subset == subset]
            paths = [j.checkpoint(runs_dir) for j in members]
            if not members or not all(p.exists() for p in paths):
                continue
            ensembles = summary.setdefault(f"{variant}-ensemble", {})
            entry = ensembles.setdefault(subset, {"seeds": [], "runs": []})
            entry["seeds"].append(split)  # the split seed of the folds
            entry["runs"].append(evaluate_ensemble(paths, data_dir))
    for job in jobs:
        path = job.checkpoint(runs_dir)
        if not path.exists():
            continue
        metrics = evaluate_checkpoint(str(path), data_dir)
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        entry = summary.setdefault(job.experiment, {}).setdefault(job.subset, {"seeds": [], "runs": []})
        entry["seeds"].append(job.seed)
        entry["runs"].append({
            **metrics,
            "validation_rmse": checkpoint["metrics"]["validation"]["rmse_all_windows_capped"],
            "best_epoch": checkpoint["metrics"]["validation"]["best_epoch"],
            "training_seconds": checkpoint["training_seconds"],
        })  # fmt: skip
    for experiment in summary.values():
        for entry in experiment.values():
            for stat, fn in (("mean", np.mean), ("std", np.std)):
                entry[stat] = {m: float(fn([r[m] for r in entry["runs"]])) for m in METRICS}
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--runs-dir", default="runs/results")
    parser.add_argument("--results-dir", default="results")
    parser.add_argument(
        "--only",
        choices=["all", "main", "cv", "ablation", "sweep", "mask"],
        default="all",
        help="sweep: the validation runs that chose the recipe; mask: round 12's masked "
        "fine-tuning of the shipped networks (neither part of 'all')",
    )
    parser.add_argument("--seeds", type=int, default=5, help="seeds per subset in the main table")
    parser.add_argument("--ablation-seeds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--weightings",
        nargs="+",
        default=list(ABLATION),
        choices=list(ABLATION),
        help="ablation rows to run (default: all)",
    )
    parser.add_argument(
        "--cv-variants",
        nargs="+",
        default=list(CV_VARIANTS),
        choices=list(CV_VARIANTS),
        help="cross-validation ensembles to run (default: all)",
    )
    parser.add_argument("--summarize-only", action="store_true", help="evaluate existing checkpoints only")
    args = parser.parse_args(argv)
    runs_dir = Path(args.runs_dir)
    jobs = plan(args.only, args.seeds, args.ablation_seeds, args.weightings, args.cv_variants)
    if not args.summarize_only:
        with ThreadPoolExecutor(args.workers) as pool:
            list(pool.map(lambda job: run(job, runs_dir, args.data_dir), jobs))
    summary = summarize(jobs, runs_dir, args.data_dir)
    out = Path(args.results_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "tables.md").write_text(tables_markdown(summary))
    print(json.dumps({e: {s: v["mean"] for s, v in d.items()} for e, d in summary.items()}, indent=1))


if __name__ == "__main__":
    main()
