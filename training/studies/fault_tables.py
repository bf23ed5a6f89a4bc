"""The tables of the fault evaluation (training/studies/fault_eval.py) from its results:
`results/faults/tables.md`, and the issue's targets per model."""

# the faults the earlier checks already caught: their figures must hold
EARLIER_FAULTS = ("dead (reads 0.0)", "stuck (first value repeated)", "spike (last cycle x10)")


def _ok_rmse(f: dict) -> str:
    value = f["ok_rmse_capped_truth"]
    return "–" if value is None else f"{value:.2f} ({f['ok_windows']})"


def targets(r: dict) -> dict:
    """Issue 29's targets for one model: the worst RMSE of windows answered ok over every fault
    minus the clean RMSE, critical engines answered normal with status ok over every fault,
    clean full-history windows not ok, and the earlier faults' figures."""
    every = [*r["faults"].values(), *r["window_faults"].values()]
    ok_rmses = [f["ok_rmse_capped_truth"] for f in every if f["ok_rmse_capped_truth"] is not None]
    earlier = [
        r["faults"][k] for k in ("dead (reads 0.0)", "stuck (first value repeated)", "spike (last cycle x10)")
    ]
    return {
        "worst_ok_rmse_minus_clean": (max(ok_rmses) - r["clean"]["rmse_capped_truth"]) if ok_rmses else None,
        "critical_answered_normal_ok": sum(f["critical_answered_normal_ok"] for f in every),
        "clean_not_ok_every_full_window": r["clean"]["not_ok_share_every_window_full_history"],
        "earlier_min_flagged": min(f["column_flagged_share"] for f in earlier),
        "earlier_max_masked_minus_clean": max(f["after_masking"]["rmse_capped_truth"] for f in earlier)
        - r["clean"]["rmse_capped_truth"],
    }


def tables_markdown(results: list[dict]) -> str:
    lines = [
        "### The targets (issue 29)",
        "",
        "| model | worst RMSE of windows answered ok − clean RMSE (≤ 2) | engines with true RUL ≤ 30 "
        "answered normal and ok, every fault (0) | clean full-history windows not ok (≤ 1 %) | "
        "dead/stuck/spike flagged (≥ 99 %) | their masked RMSE − clean (≤ 1) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        t = targets(r)
        worst = "–" if t["worst_ok_rmse_minus_clean"] is None else f"{t['worst_ok_rmse_minus_clean']:+.2f}"
        lines.append(
            f"| {r['model']} {r['version']} | {worst} | {t['critical_answered_normal_ok']} | "
            f"{t['clean_not_ok_every_full_window']:.2%} | {t['earlier_min_flagged']:.1%} | "
            f"{t['earlier_max_masked_minus_clean']:+.2f} |"
        )
    lines += [
        "",
        "### Clean test windows",
        "",
        "| model | last windows not ok (full history) | last windows with a short history (degraded) | "
        "every full-history window not ok | RMSE capped | RMSE uncapped | 90 % interval coverage "
        "(uncapped truth) | intervals open above |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        c = r["clean"]
        lines.append(
            f"| {r['model']} {r['version']} | {c['not_ok_share_full_history']:.1%} | "
            f"{c['short_history_windows']} of {c['windows']} | "
            f"{c['not_ok_share_every_window_full_history']:.2%} of {c['every_windows_full_history']} | "
            f"{c['rmse_capped_truth']:.2f} | {c['rmse']:.2f} | {c['interval_coverage']:.1%} | "
            f"{c['interval_open_share']:.0%} |"
        )
    lines += [
        "",
        "### Interval coverage by history (full last windows cut to every length of the band)",
        "",
        "| model | cycles of history | windows (units × lengths) | 90 % interval coverage (uncapped truth) | "
        "mean width where bounded |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        for band, b in r["clean"]["history_bands"].items():
            width = "–" if b["mean_width_bounded"] is None else f"{b['mean_width_bounded']:.1f}"
            lines.append(
                f"| {r['model']} | {band} | {b['windows']} ({b['units']} units) | "
                f"{b['coverage']:.1%} | {width} |"
            )
    lines += [
        "",
        "### One faulty sensor (every sensor the model reads, each test unit's last window)",
        "",
        "| model | fault | column flagged | not ok | RMSE capped: before masking → after | "
        "RMSE capped of windows answered ok (how many) | RUL ≤ 30 answered normal and ok |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for name, f in r["faults"].items():
            b, a = f["before_masking"], f["after_masking"]
            lines.append(
                f"| {r['model']} | {name} | {f['column_flagged_share']:.1%} | {f['not_ok_share']:.1%} | "
                f"{b['rmse_capped_truth']:.2f} → {a['rmse_capped_truth']:.2f} | {_ok_rmse(f)} | "
                f"{f['critical_answered_normal_ok']} of {f['critical_windows']} |"
            )
    lines += [
        "",
        "### A window wrong as a whole (each test unit's last cycles)",
        "",
        "| model | what the client sent | expected check flagged | not ok | RMSE capped as served | "
        "RMSE capped of windows answered ok (how many) | RUL ≤ 30 answered normal and ok |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for name, f in r["window_faults"].items():
            lines.append(
                f"| {r['model']} | {name} | {f['expected_check']} {f['check_flagged_share']:.1%} | "
                f"{f['not_ok_share']:.1%} | {f['served']['rmse_capped_truth']:.2f} | {_ok_rmse(f)} | "
                f"{f['critical_answered_normal_ok']} of {f['critical_windows']} |"
            )
    lines += [
        "",
        "### Another subset's test windows sent to the model",
        "",
        "| model | windows of | out_of_distribution | not ok | RMSE capped | RMSE uncapped |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        for other, f in r["foreign"].items():
            lines.append(
                f"| {r['model']} | {other} | {f['out_of_distribution_share']:.1%} | "
                f"{f['not_ok_share']:.1%} | "
                f"{f['rmse_capped_truth']:.2f} | {f['rmse']:.2f} |"
            )
    return "\n".join(lines) + "\n"
