"""Measured, not asserted: does `ok` hold for windows that are not one engine's continuous
history? The faults of issue "One engine, one continuous history", on the shipped models as
served (service/core/pipeline.py), each test unit's last window:

    python -m training.studies.continuity_eval --data-dir ../shared/data/cmapss --models-dir models \
        --out results/continuity

- stitched: the window's last k cycles taken from another test engine of the subset (a join on
  the wrong key, a tail number reused), k in STITCH_K up to half the window; donors worn (their
  last cycles) and healthy (their first cycles); one foreign cycle in the middle, and a block
  of MIDDLE_BLOCK foreign cycles there;
- slow drift: one read sensor ramps linearly over the window's real cycles from 0 to m robust
  s.d. (the model's own check scale), m in DRIFTS, both directions, every read sensor in turn.
The continuity checks were designed on k = 1, 2, 5, 10 and half the window, drifts of 0.5, 1
and 2 s.d. and fd001/fd004 (training/continuity.py); k = 3 and 7, the middle block and drifts
of 1.5 and 3 s.d. are variants they were not tuned on. `clean full windows not ok`: every full
window of every test unit (one engine's history, at least the model's window of cycles).
Per family and variant: the share answered `ok`, the RMSE of those ok windows against the
truth capped at 125 and of the same windows clean (their difference is what `ok` hides), and
the engines with true RUL <= 30 answered `normal` and `ok`. Writes summary.json and tables.md.
Not a test: a few minutes on 2 cores.
"""

import zlib
from pathlib import Path

import numpy as np

from service.core import pipeline
from service.core.predictor import Predictor
from service.core.providers import SessionConfig
from service.core.window_quality import OK
from training.data import load_subset
from training.studies import shipped_models

MODELS = shipped_models.SUBSETS
STITCH_K = (1, 2, 3, 5, 7, 10, "half")
MIDDLE_BLOCK = 3
DRIFTS = (0.5, 1.0, 1.5, 2.0, 3.0)
CAP = 125.0
CRITICAL = 30


def _answers(predictor: Predictor, windows: list[np.ndarray]) -> tuple[np.ndarray, list[str], list[str]]:
    prepared = pipeline.from_requests(predictor, list(enumerate(windows)))
    answers = pipeline.answer_now(predictor, prepared)
    records = answers.records()
    return answers.outputs["rul"].astype(np.float64), [r["quality"]["status"] for r in records], \
        [r["health_state"] for r in records]  # fmt: skip


def _row(
    clean_rul: np.ndarray, rul: np.ndarray, status: list[str], health: list[str], truth: np.ndarray
) -> dict:
    ok = np.array([s == OK for s in status])
    capped = np.minimum(truth, CAP)
    near = (truth <= CRITICAL) & ok & np.array([h == "normal" for h in health])
    row = {
        "windows": len(rul),
        "ok_share": round(float(ok.mean()), 3),
        "near_failure_normal_ok": int(near.sum()),
    }
    if ok.any():
        row["ok_rmse"] = round(float(np.sqrt(np.mean((rul[ok] - capped[ok]) ** 2))), 2)
        row["same_windows_clean_rmse"] = round(float(np.sqrt(np.mean((clean_rul[ok] - capped[ok]) ** 2))), 2)
        row["ok_rmse_over_clean"] = round(row["ok_rmse"] - row["same_windows_clean_rmse"], 2)
    return row


def stitched(units: list[np.ndarray], w: int, k: int | str, worn: bool, rng: np.random.Generator) -> list:
    """Each unit's last window with its last k cycles from another unit (worn: that unit's last
    k cycles; healthy: its first k)."""
    out = []
    for i, unit in enumerate(units):
        donor = units[(i + 1 + rng.integers(len(units) - 1)) % len(units)]
        window = unit[-w:].copy()
        n = len(window) // 2 if k == "half" else min(int(k), len(window) - 1)
        part = donor[-n:] if worn else donor[:n]
        window[-len(part) :] = part
        out.append(window)
    return out


def foreign_middle(units: list[np.ndarray], w: int, rng: np.random.Generator, k: int = 1) -> list:
    """Each unit's last window with k consecutive cycles of another unit (from a random point
    of its life) in its middle."""
    out = []
    for i, unit in enumerate(units):
        donor = units[(i + 1 + rng.integers(len(units) - 1)) % len(units)]
        window = unit[-w:].copy()
        start = rng.integers(len(donor) - k + 1)
        middle = len(window) // 2
        window[middle : middle + k] = donor[start : start + k]
        out.append(window)
    return out


def clean_full_not_ok(predictor: Predictor, units: list[np.ndarray]) -> dict:
    """Every full window (at least the model's window of cycles) of every unit: how many are
    not answered ok, and from how many units."""
    w = predictor.window_length
    windows, owners = [], []
    for i, unit in enumerate(units):
        for end in range(w, len(unit) + 1):
            windows.append(unit[end - w : end])
            owners.append(i)
    not_ok = np.zeros(len(windows), dtype=bool)
    for start in range(0, len(windows), 2000):
        _, status, _ = _answers(predictor, windows[start : start + 2000])
        not_ok[start : start + len(status)] = [s != OK for s in status]
    units_hit = len({owners[i] for i in np.flatnonzero(not_ok)})
    return {"windows": len(windows), "not_ok": int(not_ok.sum()), "share": round(float(not_ok.mean()), 4),
            "units": units_hit}  # fmt: skip


def drifted(units: list[np.ndarray], w: int, column: int, size: float) -> list:
    out = []
    for unit in units:
        window = unit[-w:].copy()
        window[:, column] += np.linspace(0.0, size, len(window))
        out.append(window)
    return out


HOLD = 3  # a dashboard's rule: show a new health state once this many consecutive answers agree


def held(states: list[str], hold: int = HOLD) -> list[str]:
    """The states a dashboard shows under the rule HOLD: the first answer's, then a new one
    only once the last `hold` answers all give it."""
    shown = [states[0]]
    for i in range(1, len(states)):
        recent = states[max(0, i - hold + 1) : i + 1]
        shown.append(states[i] if len(recent) == hold and len(set(recent)) == 1 else shown[-1])
    return shown


def consecutive_answers(predictor: Predictor, units: list[np.ndarray]) -> dict:
    """A dashboard asking every cycle of every test unit: how often the health state falls back
    (degrading or critical -> normal; critical -> anything else) as answered, and as shown
    under the HOLD rule."""
    rank = {"normal": 0, "degrading": 1, "critical": 2}
    zero = {"fall_back_to_normal": 0, "leave_critical": 0, "reach_critical": 0}
    counts: dict = {"units": len(units), "answered": dict(zero), f"held_{HOLD}": dict(zero)}
    for unit in units:
        prepared = pipeline.trajectory(predictor, 0, np.arange(1, len(unit) + 1), unit)
        if not len(prepared):
            continue
        states = [r["health_state"] for r in pipeline.answer_now(predictor, prepared).records()]
        for key, seen in (("answered", states), (f"held_{HOLD}", held(states))):
            levels = [rank[s] for s in seen]
            worst = np.maximum.accumulate(levels)
            counts[key]["fall_back_to_normal"] += int(
                any(lv == 0 and w >= 1 for lv, w in zip(levels, worst, strict=True))
            )
            if max(levels) == 2:
                counts[key]["reach_critical"] += 1
                first = levels.index(2)
                counts[key]["leave_critical"] += int(any(lv < 2 for lv in levels[first:]))
    return counts


def _rng(variant: str) -> np.random.Generator:
    """The random draws of one variant, the same whatever other variants are measured: two
    runs (the models before and after a change) see the same windows."""
    return np.random.default_rng(zlib.crc32(variant.encode()))


def evaluate(model: str, models_dir: Path, data_dir: str) -> dict:
    predictor = Predictor.load(models_dir / f"{model}.onnx", SessionConfig("cpu"))
    checks = predictor.card.quality
    assert checks is not None
    subset = load_subset(MODELS[model], data_dir)
    w = predictor.window_length
    units = [u.readings.astype(np.float32) for u in subset.test]
    truth = np.asarray([u.final_rul for u in subset.test], dtype=np.float64)
    clean_rul, clean_status, _ = _answers(predictor, [u[-w:] for u in units])
    result: dict = {"clean_not_ok": round(float(np.mean([s != OK for s in clean_status])), 3)}
    result["clean_full_not_ok"] = clean_full_not_ok(predictor, units)
    result["consecutive_answers"] = consecutive_answers(predictor, units)

    def measure(windows: list) -> dict:
        return _row(clean_rul, *_answers(predictor, windows), truth)

    for worn in (True, False):
        for k in STITCH_K:
            result[f"stitched: last {k} cycles of a {'worn' if worn else 'healthy'} engine"] = measure(
                stitched(units, w, k, worn, _rng(f"{k} {worn}"))
            )
    result["stitched: one foreign cycle in the middle"] = measure(foreign_middle(units, w, _rng("middle")))
    result[f"stitched: {MIDDLE_BLOCK} foreign cycles in the middle"] = measure(
        foreign_middle(units, w, _rng("middle block"), MIDDLE_BLOCK)
    )
    scale = np.asarray(checks.scale).mean(axis=0)  # (K,) the check's robust s.d. of each read sensor
    for size in DRIFTS:
        for sign in (1, -1):
            rows = [measure(drifted(units, w, col, sign * size * scale[c]))
                    for c, col in enumerate(checks.column_index)]  # fmt: skip
            result[f"slow drift {sign * size:+g} s.d. (every read sensor)"] = _pooled(rows)
    return result


def _pooled(rows: list[dict]) -> dict:
    """Rows of one variant per sensor, as one: shares and RMSEs averaged over the sensors,
    near-failure misses summed, the worst sensor's ok share kept."""
    with_ok = [r for r in rows if "ok_rmse" in r]
    pooled = {
        "windows": sum(r["windows"] for r in rows),
        "ok_share": round(float(np.mean([r["ok_share"] for r in rows])), 3),
        "worst_sensor_ok_share": max(r["ok_share"] for r in rows),
        "near_failure_normal_ok": sum(r["near_failure_normal_ok"] for r in rows),
    }
    if with_ok:
        pooled["ok_rmse_over_clean"] = round(float(np.mean([r["ok_rmse_over_clean"] for r in with_ok])), 2)
        pooled["worst_ok_rmse_over_clean"] = max(r["ok_rmse_over_clean"] for r in with_ok)
    return pooled


def tables(summary: dict) -> str:
    lines = []
    for model, result in summary.items():
        full = result["clean_full_not_ok"]
        lines += [
            f"### {model} (clean last windows not ok: {result['clean_not_ok']:.1%}; every clean full "
            f"window not ok: {full['share']:.2%}, {full['not_ok']} of {full['windows']}, from "
            f"{full['units']} units)",
            "",
            "| fault | ok share | ok RMSE - same windows clean (worst sensor) | RUL <= 30 normal and ok |",
            "|---|---|---|---|",
        ]
        for name, row in result.items():
            if name in ("clean_not_ok", "clean_full_not_ok", "consecutive_answers"):
                continue
            worse = row.get("ok_rmse_over_clean", "–")
            if "worst_ok_rmse_over_clean" in row:
                worse = f"{worse} ({row['worst_ok_rmse_over_clean']})"
            lines.append(f"| {name} | {row['ok_share']:.0%} | {worse} | {row['near_failure_normal_ok']} |")
        lines.append("")
    lines += ["### Consecutive answers (every cycle of every test unit)", "",
              f"| model | units | fall back to normal: answered / shown after {HOLD} agreeing | "
              f"reach critical | leave critical: answered / shown |", "|---|---|---|---|---|"]  # fmt: skip
    for model, result in summary.items():
        c = result["consecutive_answers"]
        a, h = c["answered"], c[f"held_{HOLD}"]
        lines.append(f"| {model} | {c['units']} | {a['fall_back_to_normal']} / {h['fall_back_to_normal']} | "
                     f"{a['reach_critical']} | {a['leave_critical']} / {h['leave_critical']} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    shipped_models.run(__doc__, "results/continuity", evaluate, tables)


if __name__ == "__main__":
    main()
