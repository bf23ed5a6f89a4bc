"""The continuity faults measured on successive versions of the models, side by side: two or
more summary.json files of training/studies/continuity_eval.py, on the same windows (its draws
are seeded per variant), one markdown table per model over the faults all of them measured,
each column named by its file's directory:

    python -m training.studies.continuity_compare results/continuity_before/summary.json \
        results/continuity_steps_only/summary.json results/continuity/summary.json
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


def compare(summaries: dict[str, dict]) -> str:
    """summaries: column name -> summary.json; the last one's models and faults lead."""
    names = list(summaries)
    *earlier, last = summaries.values()
    lines = []
    for model, now in last.items():
        lines += [f"#### {model}", "", "ok / RMSE over clean / RUL ≤ 30 normal and ok:", "",
                  "| fault | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]  # fmt: skip
        for name, row in now.items():
            if name.startswith(("stitched", "slow drift")) and all(name in e.get(model, {}) for e in earlier):
                cells = [cell(e[model][name]) for e in earlier] + [cell(row)]
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    print(compare({Path(p).parent.name: json.loads(Path(p).read_text()) for p in sys.argv[1:]}))


if __name__ == "__main__":
    main()
