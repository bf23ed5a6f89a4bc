"""The markdown tables of training/studies/experiments.py's summary: the main table, the
cross-validation ensembles and the loss-weighting ablation (mean ± std over seeds)."""

from training.studies.plans import ABLATION_SUBSETS, CV_FOLDS, CV_VARIANTS


def _cell(entry: dict, metric: str, digits: int = 2) -> str:
    return f"{entry['mean'][metric]:.{digits}f} ± {entry['std'][metric]:.{digits}f}"


def tables_markdown(summary: dict) -> str:
    """The main table and the ablation as markdown (mean ± std over seeds), those present."""
    lines: list[str] = []
    cv_tables = [
        (f"{variant}-ensemble", f"{CV_FOLDS}-fold cross-validation ensembles, {variant} "
         "(test units, last window)", "split seeds")
        for variant in CV_VARIANTS
    ]  # fmt: skip
    for experiment, title, seeds in [
        ("main", "Main table (single networks; test units, last window)", "seeds"),
        *cv_tables,
    ]:
        if experiment not in summary:
            continue
        lines += ([""] if lines else []) + [
            f"### {title}", "",
            f"| subset | {seeds} | RMSE (uncapped truth) | PHM08 (uncapped) | RMSE (truth capped at 125) | "
            "PHM08 (capped) | health accuracy | health macro-F1 | 90 % interval coverage | "
            "interval width | RMSE all windows (capped) | validation RMSE | training s/run |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]  # fmt: skip
        for subset, entry in summary[experiment].items():
            lines.append(
                f"| {subset} | {len(entry['seeds'])} | {_cell(entry, 'rmse')} | "
                f"{_cell(entry, 'phm08_score', 0)} | {_cell(entry, 'rmse_capped_truth')} | "
                f"{_cell(entry, 'phm08_score_capped_truth', 0)} | "
                f"{_cell(entry, 'health_accuracy', 3)} | {_cell(entry, 'health_macro_f1', 3)} | "
                f"{_cell(entry, 'interval_coverage', 3)} | {_cell(entry, 'interval_mean_width', 1)} | "
                f"{_cell(entry, 'rmse_all_windows_capped')} | {_cell(entry, 'validation_rmse')} | "
                f"{entry['mean']['training_seconds']:.0f} |"
            )
    ablations = {k.split("/", 1)[1]: v for k, v in summary.items() if k.startswith("ablation/")}
    if ablations:
        lines += ["", "### Loss-weighting ablation (test RMSE and health macro-F1, mean ± std)", "",
                  "| weighting | " + " | ".join(f"{s} RMSE | {s} validation RMSE | {s} macro-F1"
                                                 for s in ABLATION_SUBSETS) + " |",
                  "|---" * (1 + 3 * len(ABLATION_SUBSETS)) + "|"]  # fmt: skip
        for name, per_subset in ablations.items():
            cells = []
            for s in ABLATION_SUBSETS:
                e = per_subset.get(s)
                cells += (
                    [_cell(e, "rmse"), _cell(e, "validation_rmse"), _cell(e, "health_macro_f1", 3)]
                    if e
                    else ["–"] * 3
                )
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
