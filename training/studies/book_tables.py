"""Tables of the book study (training/studies/book_losses.py) from its recorded runs:
`results/book/summary.json` and `results/book/tables.md`.

Per method and subset, mean +- std over the seeds recorded: the test metrics of the epoch
chosen on validation units (our protocol), the test RMSE of the epoch chosen on the test set
(the book's protocol, for the record only), and the paired validation difference against the
shipped weighting (same seed, same units), the rule that decides what ships.
"""

import json
from pathlib import Path

import numpy as np

from training.studies.plans import BOOK_CLAIMS, BOOK_ORDER, BOOK_SHIPPED
from training.studies.plans import BOOK_METHODS as METHODS

COLUMNS = {  # summary key -> where it is in a run's record
    "rmse_capped_truth": ("test", "rmse_capped_truth"),
    "rmse": ("test", "rmse"),
    "phm08_capped_truth": ("test", "phm08_score_capped_truth"),
    "phm08": ("test", "phm08_score"),
    "health_macro_f1": ("test", "health_macro_f1"),
    "validation_rmse": ("validation_rmse",),
    "test_selected_rmse_capped_truth": ("test_selected", "rmse_capped_truth"),
    "test_selected_rmse": ("test_selected", "rmse"),
    "test_selected_phm08_capped_truth": ("test_selected", "phm08_score_capped_truth"),
}


def _value(run: dict, path: tuple[str, ...]) -> float:
    for key in path:
        run = run[key]
    return float(run)  # type: ignore[arg-type]


def load_runs(results_dir: Path) -> dict[tuple[str, str], dict[int, dict]]:
    """{(method, subset): {seed: run record}} of every recorded run."""
    runs: dict[tuple[str, str], dict[int, dict]] = {}
    for path in sorted((results_dir / "runs").glob("*/*.json")):
        run = json.loads(path.read_text())
        runs.setdefault((run["method"], run["subset"]), {})[run["seed"]] = run
    return runs


def paired_difference(
    candidate: dict[int, dict], base: dict[int, dict], key: str = "validation_rmse"
) -> dict:
    """Mean candidate - base over the seeds both have, its standard error, and whether the
    candidate is lower by more than 2 s.e. (the adoption rule; needs >= 2 pairs)."""
    seeds = sorted(set(candidate) & set(base))
    d = np.array([candidate[s][key] - base[s][key] for s in seeds])
    if len(d) < 2:
        return {"n": len(d), "mean": float(d.mean()) if len(d) else None, "se": None, "wins": False}
    se = float(d.std(ddof=1) / np.sqrt(len(d)))
    return {"n": len(d), "mean": float(d.mean()), "se": se, "wins": bool(d.mean() < -2 * se)}


def summarize(runs: dict[tuple[str, str], dict[int, dict]]) -> dict:
    summary: dict = {}
    for (method, subset), by_seed in runs.items():
        entry: dict = {"seeds": sorted(by_seed)}
        for name, path in COLUMNS.items():
            values = [_value(r, path) for r in by_seed.values()]
            entry[name] = {"mean": float(np.mean(values)), "std": float(np.std(values)), "runs": values}
        entry["test_selection_gain"] = (
            entry["rmse_capped_truth"]["mean"] - entry["test_selected_rmse_capped_truth"]["mean"]
        )
        if (BOOK_SHIPPED, subset) in runs and method != BOOK_SHIPPED:
            entry["validation_vs_shipped"] = paired_difference(by_seed, runs[(BOOK_SHIPPED, subset)])
        summary.setdefault(subset, {})[method] = entry
    return summary


def _cell(entry: dict, name: str, digits: int = 2) -> str:
    return f"{entry[name]['mean']:.{digits}f} ± {entry[name]['std']:.{digits}f}"


def _paired(entry: dict) -> str:
    p = entry.get("validation_vs_shipped")
    if p is None:
        return "–"
    if p["se"] is None:
        return f"{p['mean']:+.2f} (n={p['n']})" if p["mean"] is not None else "–"
    return f"{p['mean']:+.2f} ± {p['se']:.2f}{' **wins**' if p['wins'] else ''}"


def tables_markdown(summary: dict) -> str:
    lines = []
    for subset in [s for s in BOOK_ORDER if s in summary]:
        lines += [
            f"### {subset}: validation-selected (our protocol), mean ± std over seeds", "",
            "| method | seeds | test RMSE (capped truth) | test RMSE (uncapped) | NASA (capped) | "
            "NASA (uncapped) | health macro-F1 | validation RMSE | validation Δ vs shipped (± s.e.) | "
            "test-selected RMSE (capped) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]  # fmt: skip
        for method in [m for m in METHODS if m in summary[subset]]:
            e = summary[subset][method]
            lines.append(
                f"| {method} | {len(e['seeds'])} | {_cell(e, 'rmse_capped_truth')} | {_cell(e, 'rmse')} | "
                f"{_cell(e, 'phm08_capped_truth', 0)} | {_cell(e, 'phm08', 0)} | "
                f"{_cell(e, 'health_macro_f1', 3)} | {_cell(e, 'validation_rmse')} | {_paired(e)} | "
                f"{_cell(e, 'test_selected_rmse_capped_truth')} |"
            )
        lines.append("")
    lines += [
        "### The book's claims beside ours (test RMSE against the capped truth)", "",
        "| method | subset | the book | ours, epoch chosen on validation | ours, epoch chosen on the "
        "test set (the book's protocol) | gap the test-set choice explains |",
        "|---|---|---|---|---|---|",
    ]  # fmt: skip
    for subset in [s for s in BOOK_ORDER if s in summary]:
        for method in [m for m in METHODS if m in summary[subset]]:
            e = summary[subset][method]
            lines.append(
                f"| {method} | {subset} | {BOOK_CLAIMS.get((method, subset), '–')} | "
                f"{_cell(e, 'rmse_capped_truth')} | {_cell(e, 'test_selected_rmse_capped_truth')} | "
                f"{e['test_selection_gain']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def write_tables(results_dir: Path) -> dict:
    summary = summarize(load_runs(results_dir))
    (results_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (results_dir / "tables.md").write_text(tables_markdown(summary))
    return summary


if __name__ == "__main__":
    import sys

    write_tables(Path(sys.argv[1] if len(sys.argv) > 1 else "results/book"))
