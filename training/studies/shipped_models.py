"""The command line of the studies that measure the shipped models as served (drivers_eval.py,
continuity_eval.py): each model's evaluation on its own subset's test units, then
summary.json and tables.md."""

import argparse
import json
from collections.abc import Callable
from pathlib import Path

# Each shipped model and the test units it is measured on (the mixed-fleet model: FD004's,
# its hardest subset)
SUBSETS = {"fd001": "FD001", "fd002": "FD002", "fd003": "FD003", "fd004": "FD004", "cmapss": "FD004"}


def run(
    doc: str | None,
    default_out: str,
    evaluate: Callable[[str, Path, str], dict],
    tables: Callable[[dict], str],
) -> None:
    """Parse --data-dir, --models-dir, --out, --models; `evaluate(model, models_dir, data_dir)`
    each model; write and print the tables."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--out", type=Path, default=Path(default_out))
    parser.add_argument("--models", nargs="+", default=list(SUBSETS), choices=list(SUBSETS))
    args = parser.parse_args()
    summary = {}
    for model in args.models:
        summary[model] = evaluate(model, args.models_dir, args.data_dir)
        print(model, "done", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (args.out / "tables.md").write_text(tables(summary))
    print(tables(summary))
