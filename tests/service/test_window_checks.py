"""What `ok` promises beyond single readings, through the API: cycles sent newest first, a
latest cycle repeated to fill the window, a short history, a constant offset within range, and
the client's cycle numbers (refused when they decrease or repeat, flagged when some are
missing); the Open Inference Protocol and the score endpoint say the same."""

import gzip
import json

import numpy as np
import pytest

from service.transport.schemas import EXAMPLE_REQUEST
from tests.conftest import MODELS_DIR
from tests.service.test_oip import _binary_request
from training.constants import INPUT_FEATURES

WINDOW = [np.asarray(w["readings"], dtype=np.float64) for w in EXAMPLE_REQUEST["windows"]]  # (50, 24) each
CYCLES = [w["cycles"] for w in EXAMPLE_REQUEST["windows"]]
NEAR_FAILURE = WINDOW[1]  # test unit 34 of FD001: 7 cycles left
S_11 = 13  # raw column of sensor 11


def predict(client, windows: list[dict]):
    return client.post("/v1/models/fd001/predict", json={"windows": windows})


def one(client, readings: np.ndarray, **extra) -> dict:
    response = predict(client, [{"id": "w", "readings": readings.tolist(), **extra}])
    assert response.status_code == 200, response.text
    return response.json()["predictions"][0]


def checks(prediction: dict) -> list[str]:
    return [f["check"] for f in prediction["quality"]["flags"]]


def test_the_example_with_its_cycle_numbers_is_ok(client):
    for readings, cycles in zip(WINDOW, CYCLES, strict=True):
        prediction = one(client, readings, cycles=cycles)
        assert prediction["quality"]["status"] == "ok" and prediction["quality"]["flags"] == []


def answered_in_order_of_wear(prediction: dict, in_order: dict) -> None:
    """A window whose order is in doubt: out_of_distribution, and answered as the graph reads it
    (its cycles in order of wear), so a critical engine is never called healthy."""
    assert prediction["quality"]["status"] == "out_of_distribution"
    assert prediction["health_state"] == in_order["health_state"] == "critical"
    assert abs(prediction["rul"] - in_order["rul"]) < 10.0
    order_flags = [f for f in prediction["quality"]["flags"] if f["check"] in ("direction", "out_of_order")]
    assert order_flags and all("taken in order of wear" in f["problem"] for f in order_flags)


def test_a_critical_engine_sent_newest_first_is_never_a_healthy_ok(client):
    """Unit 34 (7 cycles left) newest first, as ORDER BY cycle DESC gives it: without cycle
    numbers the graph sees its wear run backwards and reads the cycles in order of wear; with
    them, the service refuses it."""
    prediction = one(client, NEAR_FAILURE[::-1])
    answered_in_order_of_wear(prediction, one(client, NEAR_FAILURE))
    (flag,) = [f for f in prediction["quality"]["flags"] if f["check"] == "direction"]
    assert flag["column"] is None and "wear runs backwards in time" in flag["problem"]
    assert "newest first" in flag["problem"]
    refused = predict(
        client, [{"id": "u34", "readings": NEAR_FAILURE[::-1].tolist(), "cycles": CYCLES[1][::-1]}]
    )
    assert refused.status_code == 422
    assert refused.json()["detail"] == (
        "window 0 (id 'u34'): cycles[1] = 202 is lower than cycles[0] = 203; cycle numbers must increase "
        "(readings oldest first, each cycle once)"
    )


@pytest.mark.parametrize("history", [15, 20, 35])
def test_a_short_history_sent_newest_first_is_read_in_order_of_wear(client, history):
    """Only the last cycles, newest first: the padding stays in front, the real cycles are
    sorted, and the critical engine is answered critical."""
    recent = NEAR_FAILURE[-history:]
    prediction = one(client, recent[::-1])
    answered_in_order_of_wear(prediction, one(client, recent))
    assert "short_history" in checks(prediction) and prediction["cycles_used"] == history


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_critical_engine_sent_shuffled_is_out_of_distribution(client, seed):
    shuffled = NEAR_FAILURE[np.random.default_rng(seed).permutation(50)]
    prediction = one(client, shuffled)
    answered_in_order_of_wear(prediction, one(client, NEAR_FAILURE))
    flags = [f for f in prediction["quality"]["flags"] if f["check"] in ("out_of_order", "direction")]
    assert flags and flags[0]["column"] is None
    if flags[0]["check"] == "out_of_order":
        assert "jumps back and forth from cycle to cycle" in flags[0]["problem"]


@pytest.mark.parametrize("reversed_cycles", [15, 20, 25])
def test_the_learned_order_check_names_itself_where_the_health_index_does_not_jump(client, reversed_cycles):
    """Unit 34's newest cycles reversed in place: the health index barely jumps (its successive
    differences pass), but the graph's learned order check fires, and the problem says so."""
    readings = np.r_[NEAR_FAILURE[:-reversed_cycles], NEAR_FAILURE[-reversed_cycles:][::-1]]
    prediction = one(client, readings)
    answered_in_order_of_wear(prediction, one(client, NEAR_FAILURE))
    assert prediction["quality"]["ood_score"] > 1.0
    (flag,) = [f for f in prediction["quality"]["flags"] if f["check"] == "out_of_order"]
    assert flag["column"] is None
    assert flag["problem"].startswith("the 50 cycles do not follow each other as an engine's do: the learned")
    assert "scores this window as reordered" in flag["problem"] and "out of order?" in flag["problem"]


@pytest.mark.parametrize(
    ("cycles", "message"),
    [
        ([*range(1, 26), 25, *range(27, 51)], "cycles[25] = 25 repeats cycles[24] = 25"),
        ([*range(1, 40), 10, *range(41, 51)], "cycles[39] = 10 is lower than cycles[38] = 39"),
        (list(range(1, 50)), "cycles has 49 numbers for 50 cycles of readings"),
    ],
)
def test_cycle_numbers_that_decrease_repeat_or_miscount_are_refused_by_position(client, cycles, message):
    response = predict(
        client, [{"readings": WINDOW[0].tolist()}, {"readings": WINDOW[0].tolist(), "cycles": cycles}]
    )
    assert response.status_code == 422 and response.json()["detail"].startswith(f"window 1: {message}")


def test_cycle_numbers_must_be_integers(client):
    response = predict(client, [{"readings": WINDOW[0].tolist(), "cycles": [1.5] * 50}])
    assert response.status_code == 422 and "cycles" in json.dumps(response.json())


def test_missing_cycles_are_a_gap_and_flags_name_the_cycle_numbers_sent(client):
    cycles = [*range(100, 120), *range(125, 155)]  # 5 cycles missing after 119
    readings = WINDOW[0].copy()
    readings[:, 6] = 0.0  # s_4 dead as well: its flag names the client's cycle numbers
    prediction = one(client, readings, cycles=cycles)
    assert prediction["quality"]["status"] == "degraded"
    by_check = {f["check"]: f for f in prediction["quality"]["flags"]}
    gap = by_check["cycle_gap"]
    assert gap["column"] is None and gap["cycles"] == [125]
    assert gap["problem"].startswith("5 cycles missing: the cycles jump from 119 to 125")
    assert by_check["out_of_range"]["column"] == "s_4" and by_check["out_of_range"]["cycles"] == cycles
    assert checks(one(client, WINDOW[0], cycles=cycles)) == ["cycle_gap"]


@pytest.mark.parametrize("repeats", [5, 20])
def test_a_latest_cycle_repeated_to_fill_the_window_is_out_of_distribution(client, repeats):
    filled = NEAR_FAILURE.copy()
    filled[-repeats:] = filled[-repeats - 1]
    prediction = one(client, filled)
    assert prediction["quality"]["status"] == "out_of_distribution"
    (flag,) = [f for f in prediction["quality"]["flags"] if f["check"] == "repeated_cycles"]
    assert flag["cycles"] == list(range(50 - repeats, 50))
    assert flag["problem"].startswith(
        f"{repeats} cycles (cycles {50 - repeats} to 49) are identical in all 24"
    )


@pytest.mark.parametrize("cycles_sent", [10, 20, 35])
def test_a_short_history_is_degraded_and_says_how_many_cycles_it_used(client, cycles_sent):
    prediction = one(client, WINDOW[0][-cycles_sent:])
    assert prediction["cycles_used"] == cycles_sent and prediction["padded"] is True
    assert prediction["quality"]["status"] == "degraded" and checks(prediction) == ["short_history"]
    (flag,) = prediction["quality"]["flags"]
    assert flag["column"] is None
    assert flag["problem"].startswith(f"uses {cycles_sent} cycles of history; the model reads 50")


def test_a_constant_offset_within_range_is_an_inconsistent_sensor_masked(client):
    clean = one(client, WINDOW[1])
    offset = WINDOW[1].copy()
    offset[:, S_11] += 0.3  # s_11 (~47.5 psia) 0.3 high: within its range
    prediction = one(client, offset)
    assert prediction["quality"]["status"] == "degraded"
    (flag,) = prediction["quality"]["flags"]
    assert flag["column"] == "s_11" and flag["check"] == "inconsistent"
    assert "robust s.d. above its estimate from the other sensors over all 50 cycles" in flag["problem"]
    assert abs(prediction["rul"] - clean["rul"]) < 10  # masked: estimated from the other sensors


@pytest.mark.parametrize("sensor", ["s_4", "s_11", "s_21"])
def test_a_noisy_sensor_within_range_is_flagged_noisy_and_masked(client, sensor):
    """A sensor that flickers about its mean from cycle to cycle (+-a: jumps of 2a, under the
    card's spike threshold, readings within range): its difference from its estimate from the
    other sensors changes far more between consecutive cycles than in any training window."""
    card = json.loads((MODELS_DIR / "fd001.json").read_text())["quality"]
    c, raw_column = card["columns"].index(sensor), INPUT_FEATURES.index(sensor)
    amplitude = 0.4 * card["jump_z"][c] * card["scale"][0][c]  # raw units: jumps of 0.8 x the threshold
    clean = one(client, WINDOW[0])
    noisy = WINDOW[0].copy()
    noisy[:, raw_column] = WINDOW[0][:, raw_column].mean() + amplitude * (-1.0) ** np.arange(50)
    prediction = one(client, noisy)
    assert prediction["quality"]["status"] == "degraded"
    (flag,) = prediction["quality"]["flags"]
    assert flag["column"] == sensor and flag["check"] == "noisy" and len(flag["cycles"]) == 50
    assert flag["problem"].startswith("is noisy: its difference from its estimate from the other sensors")
    assert flag["problem"].endswith("a loose or failing sensor?")
    assert abs(prediction["rul"] - clean["rul"]) < 10  # masked: estimated from the other sensors


def test_oip_takes_a_short_history_as_leading_nan_rows_and_refuses_other_nans(client):
    short = WINDOW[0][None].astype(np.float32).copy()
    short[0, :30] = np.nan  # 20 real cycles
    body, headers = _binary_request(short)
    response = client.post("/v2/models/fd001/infer", content=body, headers=headers)
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}  # JSON data: no binary output asked
    assert outputs["window_flags"]["datatype"] == "INT32" and outputs["window_flags"]["data"] == [4]
    quality = json.loads(outputs["quality"]["data"][0])
    assert quality["status"] == "degraded" and [f["check"] for f in quality["flags"]] == ["short_history"]
    middle = WINDOW[0][None].astype(np.float32).copy()
    middle[0, 20] = np.nan
    body, headers = _binary_request(middle)
    refused = client.post("/v2/models/fd001/infer", content=body, headers=headers)
    assert refused.status_code == 400 and refused.json()["error"].startswith(
        "input 'readings' window 0, row 20, column 0 (setting_1) is nan; values must be finite"
    )


def test_score_flags_a_gap_in_a_units_cycles_and_sorts_a_file_sent_newest_first(client, cmapss_dir):
    lines = gzip.decompress((cmapss_dir / "test_FD001.txt.gz").read_bytes()).decode().splitlines()
    unit_34 = [line for line in lines if line.split()[0] == "34"]
    gapped = [line for line in unit_34 if not 150 <= int(line.split()[1]) <= 152]
    body = client.post("/v1/models/fd001/score", files={"file": ("f.txt", "\n".join(gapped) + "\n")}).json()
    (unit,) = body["predictions"]  # the gap lies before the last 50 cycles the model reads
    assert unit["quality"] == {"status": "ok", "flags": [], "ood_score": unit["quality"]["ood_score"]}
    newest_first = "\n".join(reversed(unit_34)) + "\n"
    body = client.post("/v1/models/fd001/score", files={"file": ("f.txt", newest_first)}).json()
    assert body["predictions"][0]["quality"]["status"] == "ok" and body["predictions"][0]["cycle"] == 203
    near_gap = [line for line in unit_34 if not 190 <= int(line.split()[1]) <= 192]
    body = client.post("/v1/models/fd001/score", files={"file": ("f.txt", "\n".join(near_gap) + "\n")}).json()
    (flag,) = body["predictions"][0]["quality"]["flags"]
    assert flag["check"] == "cycle_gap" and flag["cycles"] == [193]
    assert flag["problem"].startswith("3 cycles missing: the cycles jump from 189 to 193")


def test_metrics_count_window_checks_under_column_window(client):
    one(client, WINDOW[0][-15:])
    text = client.get("/metrics").text
    assert 'rul_quality_flagged_windows_total{column="window",model="fd001",problem="short_history"}' in text
