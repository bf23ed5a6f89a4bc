"""Before and after the continuity checks, side by side: two summary.json files of
training/studies/continuity_eval.py, on the same windows (its draws are seeded per variant),
one markdown table per model over the faults both measured:

    python -m training.studies.continuity_eval --data-dir ../shared/data/cmapss \
        --models-dir <the 2026.12.04.2 models and cmapss 2026.12.06> --out results/continuity_before
    python -m training.studies.continuity_compare results/continuity_before/summary.json \
        results/continuity/summary.json
"""

import json
import sys
from pathlib import Path


def cell(row: dict | None) -> str:
    """ok share, ok RMSE - same windows clean, engines with RUL <= 30 answered normal and ok."""
    if row is None:
        return "–"
    worse = row.get("ok_rmse_over_clean")
    worse_text = "–" if worse is None else f"{worse:+.1f}"
    return f"{row['ok_share']:.0%} / {worse_text} / {row['near_failure_normal_ok']}"


def compare(before: dict, after: dict) -> str:
    lines = []
    for model, now in after.items():
        earlier = before.get(model, {})
        lines += [f"#### {model}", "", "| fault | before: ok / RMSE over clean / RUL ≤ 30 normal ok | now |",
                  "|---|---|---|"]  # fmt: skip
        for name, row in now.items():
            if name.startswith(("stitched", "slow drift")) and name in earlier:
                lines.append(f"| {name} | {cell(earlier[name])} | {cell(row)} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    before, after = (json.loads(Path(p).read_text()) for p in sys.argv[1:3])
    print(compare(before, after))


if __name__ == "__main__":
    main()
