"""How far to trust each answer, through the API: a faulty sensor is flagged by name with a
sentence that gives the values and the answer is 'degraded'; another engine type's window is
'out_of_distribution' (or a 422 with RUL_REJECT_OUT_OF_DISTRIBUTION); the score endpoint,
rul-score and /metrics carry the same."""

import csv
import gzip
import io

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.core.pipeline import row_positions
from service.score_cli import main as score_main
from service.settings import Settings
from service.transport.schemas import EXAMPLE_REQUEST
from tests.conftest import MODELS_DIR
from training.data import load_subset

HEALTHY = np.asarray(EXAMPLE_REQUEST["windows"][0]["readings"], dtype=np.float64)  # (50, 24)
S_4, S_9, S_11 = 6, 11, 13  # raw column positions: 3 settings, then s_1 ...


def predict(client, windows: list[np.ndarray], model: str = "fd001"):
    body = {"windows": [{"id": f"w{i}", "readings": w.tolist()} for i, w in enumerate(windows)]}
    return client.post(f"/v1/models/{model}/predict", json=body)


def test_dead_sensor_is_flagged_by_name_with_its_values_and_masked(client):
    dead = HEALTHY.copy()
    dead[:, S_4] = 0.0
    clean, faulty = predict(client, [HEALTHY, dead]).json()["predictions"]
    quality = faulty["quality"]
    assert quality["status"] == "degraded"
    assert [f["column"] for f in quality["flags"]] == ["s_4"]
    flag = quality["flags"][0]
    assert flag["check"] == "out_of_range" and flag["cycles"] == list(range(50))
    assert flag["problem"].startswith("reads 0 in all 50 cycles; training range for this condition 13")
    # masked and estimated from the other sensors: the answer barely moves
    assert abs(faulty["rul"] - clean["rul"]) < 5


def test_spike_names_its_cycle_and_the_jump(client):
    spike = HEALTHY.copy()
    spike[-1, S_9] *= 10
    (prediction,) = predict(client, [spike]).json()["predictions"]
    (flag,) = prediction["quality"]["flags"]
    assert flag["column"] == "s_9" and flag["cycles"] == [49]
    assert f"reads {spike[-1, S_9]:.6g} in 1 of 50 cycles" in flag["problem"]
    assert f"jumps from {spike[-2, S_9]:.6g} to {spike[-1, S_9]:.6g}" in flag["problem"]


def test_stuck_sensor_is_flagged(client):
    stuck = HEALTHY.copy()
    stuck[:, S_11] = stuck[0, S_11]
    (prediction,) = predict(client, [stuck]).json()["predictions"]
    (flag,) = prediction["quality"]["flags"]
    assert flag["column"] == "s_11" and flag["check"] == "stuck"
    assert flag["problem"].startswith(f"reads {stuck[0, S_11]:.6g} in 50 consecutive cycles")


def test_flag_cycles_are_positions_in_the_readings_sent(client):
    long = np.concatenate([HEALTHY[:20], HEALTHY])  # 70 cycles: the model reads the last 50
    long[-1, S_9] *= 10
    short = HEALTHY[-20:].copy()  # padded to 50
    short[-1, S_9] *= 10
    flags = [p["quality"]["flags"][0]["cycles"] for p in predict(client, [long, short]).json()["predictions"]]
    assert flags == [[69], [19]]


def test_row_positions_label_the_window_rows_and_mark_padding():
    np.testing.assert_array_equal(row_positions(5, 7), [2, 3, 4, 5, 6])
    np.testing.assert_array_equal(row_positions(5, 3), [-1, -1, 0, 1, 2])


def test_another_engine_type_is_out_of_distribution_and_still_answered(client, cmapss_dir):
    fd002 = load_subset("FD002", cmapss_dir).test[0].readings[-50:]
    (prediction,) = predict(client, [fd002]).json()["predictions"]
    quality = prediction["quality"]
    assert quality["status"] == "out_of_distribution" and quality["ood_score"] > 1
    assert {"setting_1", "setting_2", "setting_3"} <= {f["column"] for f in quality["flags"]}
    assert "far from every training operating condition" in quality["flags"][0]["problem"]
    assert prediction["rul"] >= 0


def test_reject_mode_turns_out_of_distribution_into_422_naming_the_window(cmapss_dir):
    fd002 = load_subset("FD002", cmapss_dir).test[0].readings[-50:]
    with TestClient(
        create_app(Settings(models_dir=MODELS_DIR, providers="cpu", reject_out_of_distribution=True))
    ) as c:
        assert predict(c, [HEALTHY]).status_code == 200
        response = predict(c, [HEALTHY, fd002])
        assert response.status_code == 422
        detail = response.json()["detail"]
        assert detail.startswith("window 1 (id 'w1') is out of distribution (ood_score ")
        assert "setting_1 reads" in detail and "RUL_REJECT_OUT_OF_DISTRIBUTION" in detail


def test_metrics_count_flagged_columns_and_out_of_distribution_windows(cmapss_dir):
    dead = HEALTHY.copy()
    dead[:, S_4] = 0.0
    fd002 = load_subset("FD002", cmapss_dir).test[0].readings[-50:]
    with TestClient(create_app(Settings(models_dir=MODELS_DIR, providers="cpu"))) as c:
        predict(c, [dead, dead, fd002, HEALTHY])
        text = c.get("/metrics").text
    assert 'rul_quality_flagged_windows_total{column="s_4",model="fd001",problem="out_of_range"} 3.0' in text
    assert 'rul_out_of_distribution_windows_total{model="fd001"} 1.0' in text


@pytest.fixture(scope="module")
def faulty_fleet(cmapss_dir) -> bytes:
    """test_FD001 with sensor 4 dead in unit 3."""
    lines = gzip.decompress((cmapss_dir / "test_FD001.txt.gz").read_bytes()).decode().splitlines()
    out = []
    for line in lines:
        fields = line.split()
        if fields[0] == "3":
            fields[2 + S_4] = "0.0"
        out.append(" ".join(fields))
    return ("\n".join(out) + "\n").encode()


def test_score_reports_quality_per_unit_in_json_and_csv(client, faulty_fleet):
    """Of the units with a full history, only unit 3 (its s_4 dead) is not ok; those with fewer
    cycles than the window (7 of FD001's test units) are degraded with short_history alone."""
    body = client.post("/v1/models/fd001/score", files={"file": ("f.txt", faulty_fleet)}).json()
    full = {p["unit"]: p["quality"]["status"] for p in body["predictions"] if p["cycles_used"] == 50}
    assert full[3] == "degraded" and sum(s != "ok" for s in full.values()) == 1
    short = [p["quality"] for p in body["predictions"] if p["cycles_used"] < 50]
    assert len(short) == 7 and all([f["check"] for f in q["flags"]] == ["short_history"] for q in short)
    (flag,) = body["predictions"][2]["quality"]["flags"]
    assert flag["column"] == "s_4" and flag["cycles"][-1] == body["predictions"][2]["cycle"]  # file cycles
    text = client.post("/v1/models/fd001/score", files={"file": ("f.txt", faulty_fleet)},
                       headers={"accept": "text/csv"}).text  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[2]["quality_status"] == "degraded" and rows[2]["flagged_columns"] == "s_4"
    assert rows[0]["cycles_used"] == "31" and rows[0]["flagged_columns"] == "short_history"
    assert rows[3]["quality_status"] == "ok" and rows[3]["flagged_columns"] == ""


def test_rul_score_writes_quality_columns_and_names_flagged_units(faulty_fleet, tmp_path, capsys):
    fleet, out = tmp_path / "fleet.txt", tmp_path / "out.csv"
    fleet.write_bytes(faulty_fleet)
    score_main(
        [str(fleet), "--model", str(MODELS_DIR / "fd001.onnx"), "--out", str(out), "--providers", "cpu"]
    )
    rows = list(csv.DictReader(out.open()))
    assert [r["unit"] for r in rows if r["quality_status"] != "ok" and r["cycles_used"] == "50"] == ["3"]
    err = capsys.readouterr().err
    assert "rul-score: unit 3 is degraded (flagged: s_4)" in err
    assert "rul-score: unit 1 is degraded (flagged: short_history)" in err


# What each sentence says the value was and the limit it broke, per check: the numbers the
# service computes (in numpy) must break the limit the graph applied, or the sentence
# contradicts the graph's verdict.
NUMBER = r"(-?[\d.]+(?:e[-+]?\d+)?)"
SENTENCE_LIMITS = {
    "out_of_range": (
        rf"reads {NUMBER}(?: to {NUMBER})? in .* training range for this condition "
        rf"{NUMBER}–{NUMBER}"
    ),  # fmt: skip
    "spike": rf"jumps from {NUMBER} to {NUMBER} between .* training jumps at most {NUMBER}",
    "stuck": rf"in {NUMBER} consecutive cycles; in training it never repeats the same value {NUMBER} times",
    "inconsistent": rf"reads {NUMBER} robust s.d. .* training windows differ by at most {NUMBER}",
    "noisy": rf"changes by {NUMBER} robust s.d. .* training windows change by at most {NUMBER}",
    "direction": rf"rises {NUMBER} cycles of RUL per cycle .* training windows rise at most {NUMBER}",
    "repeated_cycles": rf"^{NUMBER} cycles .* repeat a whole cycle at most {NUMBER} times",
    "short_history": rf"uses {NUMBER} cycles of history; the model reads {NUMBER}",
    "drifting": rf"by {NUMBER} robust s.d. over {NUMBER} cycles, where training windows drift at most "
    rf"{NUMBER}",
    "discontinuity": rf"{NUMBER} standard errors where one engine's windows in training reach at most "
    rf"{NUMBER}",
}


def _breaks_its_limit(check: str, problem: str) -> bool:
    """Whether the numbers in a flag's sentence show the value beyond the limit (2-significant-
    digit sentences are compared with their rounding)."""
    import re

    if check == "unknown_condition":
        seen = float(re.search(rf"reads {NUMBER}", problem).group(1))
        known = [float(v) for v in problem.rsplit(": ", 1)[1].rstrip(")").split(", ")]
        return all(abs(seen - v) > 1e-3 * max(1.0, abs(v)) for v in known)
    if check == "out_of_order":  # the health index's jumps, or the learned check's score
        found = re.search(rf"changes by {NUMBER} cycles of RUL .* at most {NUMBER}", problem)
        return "learned order check" in problem or float(found.group(1)) >= float(found.group(2)) * 0.95
    if check == "discontinuity" and "learned stitch check" in problem:  # its score: no number to break
        return "no step is beyond the step checks' limit" in problem
    numbers = [float(v) for v in re.search(SENTENCE_LIMITS[check], problem).groups() if v is not None]
    if check == "out_of_range":
        *values, low, high = numbers
        return min(values) < low or max(values) > high
    if check == "spike":
        if "operating conditions" in problem:  # compared in robust s.d., each cycle in its condition
            pattern = rf"{NUMBER} robust s.d. apart, where training jumps at most {NUMBER}"
            apart, allowed = (float(v) for v in re.search(pattern, problem).groups())
            return apart >= allowed * 0.995
        before, after, allowed = numbers
        return abs(after - before) > allowed * 0.999
    if check in ("stuck",):
        return numbers[0] >= numbers[1]
    if check in ("repeated_cycles",):
        return numbers[0] > numbers[1]
    if check == "short_history":
        return numbers[0] < numbers[1]
    if check == "drifting":  # drift, cycles, allowed drift
        return numbers[0] >= numbers[2] * 0.95
    value, allowed = numbers  # inconsistent, noisy, direction, discontinuity: rounded to 2-3 digits
    return value >= allowed * 0.95


@pytest.mark.parametrize("model", ["fd001", "fd002", "fd003", "fd004", "cmapss"])
def test_every_sentence_agrees_with_the_graphs_verdict(model, cmapss_dir):
    """Each flag the service words is the graph's (quality_flags / window_flags), and the
    numbers its sentence gives, computed in numpy from the card, break the limit it names:
    over every fault kind of the export's parity set (dead, spike, stuck, offset, reversed,
    repeated, short, shuffled, noisy), on every checked column, plus settings far from any
    operating condition, offsets large enough to be inconsistent, windows ending in another
    engine's first cycles (discontinuity) and sensors drifting by 3 robust s.d. (drifting)."""
    from service.core import pipeline
    from service.core.predictor import Predictor
    from service.core.providers import SessionConfig
    from training.parity import faulty_copies
    from training.windows import last_windows

    predictor = Predictor.load(MODELS_DIR / f"{model}.onnx", SessionConfig("cpu"))
    card = predictor.card
    subset = card.subsets[0] if model != "cmapss" else "FD004"
    units = load_subset(subset, cmapss_dir).test[:40]
    clean, _ = last_windows(units, card.window_length)
    checked = list(card.quality.column_index)
    faulty = faulty_copies(np.concatenate([clean] * 3), checked)
    far_setting = clean[:9].copy()
    far_setting[:, -5:, 0] += 50.0  # the altitude setting of the last cycles, far from every condition
    offset = clean[:9].copy()
    for i, column in enumerate(checked[:9]):
        offset[i, :, column] *= 1.03
    stitched = clean[:20].copy()
    for i in range(20):  # the last 8 cycles from the start of another test engine's life
        stitched[i, -8:] = units[(i + 7) % len(units)].readings[:8]
    drifting = clean[20:34].copy()
    scale = np.asarray(card.quality.scale).mean(axis=0)
    for i, column in enumerate(checked[: len(drifting)]):
        drifting[i, :, column] += np.linspace(0.0, 3.0 * scale[i], card.window_length)
    windows = np.concatenate([faulty, far_setting, offset, stitched, drifting]).astype(np.float32)
    prepared = pipeline.from_tensor(windows)
    answers = pipeline.answer_now(predictor, prepared)
    bits, window_bits = card.quality.bits, card.quality.window_bits
    flags, per_window = answers.outputs["quality_flags"], answers.outputs["window_flags"]
    seen = set()
    for i, quality in enumerate(answers.quality):
        for column, check, problem, _ in quality.flags:
            if check == "cycle_gap":
                continue
            seen.add(check)
            if column is None:  # the graph set this window bit
                assert per_window[i] & window_bits[check], (i, check)
            else:  # the graph set this bit on that column
                j = card.input_features.index(column)
                assert (flags[i, :, j] & bits[check]).any(), (i, column, check)
            assert _breaks_its_limit(check, problem), (model, i, column, check, problem)
        worded = {(f[0], f[1]) for f in quality.flags}
        for j in np.flatnonzero((flags[i] != 0).any(axis=0)):  # and every column the graph flagged is worded
            assert any(c == card.input_features[j] for c, _ in worded), (i, card.input_features[j])
    expected = {"out_of_range", "direction", "repeated_cycles", "short_history", "discontinuity", "drifting"}
    assert expected <= seen, seen
    assert len(seen) >= 9, seen


def test_a_window_the_learned_stitch_check_flags_says_which_check_and_the_largest_step(cmapss_dir):
    """fd001 as served: the test engines' last windows with their last 5 cycles taken from
    another test engine at a random point of its life. Every window the graph flags
    `discontinuity` is out of distribution and worded: as a step beyond its limit where one
    is, else as the learned stitch check's verdict (training/stitch_check.py), naming the
    largest step and the limit it stays under; some are of each kind."""
    import re

    from service.core import pipeline
    from service.core.predictor import Predictor
    from service.core.providers import SessionConfig
    from training.windows import last_windows

    predictor = Predictor.load(MODELS_DIR / "fd001.onnx", SessionConfig("cpu"))
    w = predictor.window_length
    units = load_subset("FD001", cmapss_dir).test
    clean, _ = last_windows(units, w)
    rng = np.random.default_rng(5)
    stitched = clean.copy()
    for i in range(len(stitched)):
        donor = units[(i + 1 + rng.integers(len(units) - 1)) % len(units)].readings
        start = rng.integers(len(donor) - 4)
        stitched[i, -5:] = donor[start : start + 5]
    answers = pipeline.answer_now(predictor, pipeline.from_tensor(stitched.astype(np.float32)))
    kinds = []
    for i, quality in enumerate(answers.quality):
        if not answers.outputs["window_flags"][i] & predictor.card.quality.window_bits["discontinuity"]:
            continue
        assert quality.status == "out_of_distribution"
        (problem,) = [p for _, check, p, _ in quality.flags if check == "discontinuity"]
        if "learned stitch check" in problem:
            found = re.search(rf"{NUMBER} standard errors, where {NUMBER} are allowed", problem)
            assert float(found.group(1)) <= float(found.group(2)) * 1.01, problem
            kinds.append("learned")
        else:
            assert _breaks_its_limit("discontinuity", problem), problem
            kinds.append("step")
    assert {"learned", "step"} <= set(kinds), kinds
