"""Answers in a planner's terms (service/core/planning.py): failure probabilities within horizons
and the RUL at a risk, worked by hand, and the same fields on every path with their 422s."""

import csv
import io

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.core.answers import Answers, column_names
from service.core.planning import Planning, PlanningError, asked, failure_probabilities, rul_at_risk
from service.core.window_quality import WindowQuality
from service.settings import Settings
from service.transport.schemas import EXAMPLE_REQUEST
from tests.conftest import MODELS_DIR

LEVELS = (0.05, 0.5, 0.95)
# a closed distribution; one open above the median (a healthy engine near the cap); one at 0
QUANTILES = np.array([[6.0, 12.5, 19.0], [100.0, np.inf, np.inf], [0.0, 0.0, 4.0]], np.float32)


def test_failure_probabilities_interpolate_the_quantiles_by_hand():
    p = failure_probabilities(QUANTILES, LEVELS, (3, 10, 30, 125), cap=125.0)
    # row 0: knots (0, 0), (6, .05), (12.5, .5), (19, .95); 3 -> .025, 10 -> .05 + .45 * 4/6.5, 30 -> .95
    np.testing.assert_allclose(p[0], [0.025, 0.05 + 0.45 * 4 / 6.5, 0.95, 0.95], rtol=1e-6)
    # row 1: open above 100, the function rises to the first open level (.5) at the cap
    np.testing.assert_allclose(p[1], [0.0015, 0.005, 0.015, 0.5], rtol=1e-6)
    # row 2: half the mass at 0: already .5 at any horizon, .95 from 4 cycles on
    np.testing.assert_allclose(p[2], [0.5 + 0.45 * 3 / 4, 0.95, 0.95, 0.95], rtol=1e-6)
    assert np.all(np.diff(failure_probabilities(QUANTILES, LEVELS, tuple(range(1, 126)), 125.0), axis=1) >= 0)


def test_rul_at_risk_takes_the_largest_level_at_or_below_the_risk_and_stays_finite():
    np.testing.assert_array_equal(rul_at_risk(QUANTILES, LEVELS, 0.05, 125.0), [6.0, 100.0, 0.0])
    np.testing.assert_array_equal(rul_at_risk(QUANTILES, LEVELS, 0.3, 125.0), [6.0, 100.0, 0.0])  # never .5
    np.testing.assert_array_equal(rul_at_risk(QUANTILES, LEVELS, 0.5, 125.0), [12.5, 125.0, 0.0])  # open: cap
    np.testing.assert_array_equal(rul_at_risk(QUANTILES, LEVELS, 0.01, 125.0), [0.0, 0.0, 0.0])  # below all


@pytest.mark.parametrize(
    ("horizons", "risk", "field"),
    [
        ([-5], None, "horizons[0] = -5"),
        ([10, 0], None, "horizons[1] = 0"),
        ([10, 126], None, "above the model's RUL cap of 125"),
        ([30, 30], None, "horizons repeat [30]"),
        (list(range(1, 18)), None, "17 horizons; at most 16"),
        ([10.5], None, "horizons[0] = 10.5"),
        (None, 0.0, "risk = 0.0"),
        (None, 0.75, "risk = 0.75"),
        (None, -0.1, "risk = -0.1"),
    ],
)
def test_asked_refuses_what_a_model_cannot_answer_naming_the_field(horizons, risk, field):
    with pytest.raises(PlanningError, match=field.replace("[", r"\[").replace("]", r"\]")):
        asked(horizons, risk, Planning(), cap=125.0)


def test_answers_give_the_fields_and_one_csv_column_per_horizon():
    outputs = {
        "rul": np.array([12.5, 120.0], np.float32),
        "rul_lower": np.array([5.0, 90.0], np.float32),
        "rul_upper": np.array([20.0, np.inf], np.float32),
        "health_probs": np.array([[0.1, 0.2, 0.7], [0.9, 0.05, 0.05]], np.float32),
        "quality_flags": np.zeros((2, 50, 24), np.int32),
        "ood_score": np.array([0.5, 0.25], np.float32),
        "rul_quantiles": QUANTILES[:2],
    }
    quality = [WindowQuality("ok", (), 0.5), WindowQuality("ok", (), 0.25)]
    planning = Planning((10, 30), 0.05)
    states = ("normal", "degrading", "critical")
    answers = Answers(states, outputs, np.array([50, 50]), quality, LEVELS, 125.0, planning)
    first, second = answers.records()
    assert [f["within_cycles"] for f in first["failure_probabilities"]] == [10, 30]
    assert first["failure_probabilities"][1]["probability"] == pytest.approx(0.95)
    assert first["rul_at_risk"] == {"risk": 0.05, "rul": 6.0} and second["rul_at_risk"]["rul"] == 100.0
    columns = answers.columns()
    assert ["unit", "cycle", *columns] == column_names(answers.health_states, planning)
    assert columns["failure_probability_10"][0] == pytest.approx(0.05 + 0.45 * 4 / 6.5)
    assert columns["rul_at_risk"] == [6.0, 100.0] and columns["risk"] == [0.05, 0.05]


@pytest.fixture(scope="module")
def client():
    settings = Settings(models_dir=MODELS_DIR, providers="cpu", default_horizons=[20, 40], default_risk=0.1)
    with TestClient(create_app(settings)) as c:
        yield c


def test_predict_answers_the_horizons_and_risk_asked_for_every_window(client):
    body = {**EXAMPLE_REQUEST, "horizons": [30], "risk": 0.05}
    predictions = client.post("/v1/models/fd001/predict", json=body).json()["predictions"]
    assert len(predictions) == 2
    for p in predictions:
        assert [f["within_cycles"] for f in p["failure_probabilities"]] == [30]
        assert 0 <= p["failure_probabilities"][0]["probability"] <= 1
        assert p["rul_at_risk"]["risk"] == 0.05 and 0 <= p["rul_at_risk"]["rul"] <= p["rul"] + 1e-3
    # unit 9 (true RUL 111) is far from failure, unit 34 (true RUL 7) near it
    near, far = predictions[1]["failure_probabilities"][0], predictions[0]["failure_probabilities"][0]
    assert near["probability"] > 0.5 > far["probability"]


def test_predict_without_horizons_or_risk_uses_the_settings(client):
    (p, _) = client.post("/v1/predict", json=EXAMPLE_REQUEST).json()["predictions"]
    assert [f["within_cycles"] for f in p["failure_probabilities"]] == [20, 40]
    assert p["rul_at_risk"]["risk"] == 0.1


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"horizons": [-1]}, "horizons[0]: Input should be greater than or equal to 1"),
        ({"horizons": [200]}, "horizons: horizons[0] = 200 is above the model's RUL cap"),
        ({"horizons": ["30"]}, "horizons[0]: Input should be a valid integer"),
        ({"horizons": list(range(1, 18))}, "horizons"),
        ({"horizons": [30, 30]}, "horizons: horizons repeat [30]"),
        ({"risk": 0.6}, "risk"),
        ({"risk": 0}, "risk"),
        ({"risk": "low"}, "risk"),
    ],
)
def test_predict_refuses_bad_horizons_and_risk_with_422_naming_the_field(client, extra, words):
    response = client.post("/v1/models/fd001/predict", json={**EXAMPLE_REQUEST, **extra})
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(words.split(":")[0]) and words in response.json()["detail"]


def test_score_json_and_csv_carry_the_planning_fields(client, cmapss_dir):
    data = (cmapss_dir / "test_FD001.txt.gz").read_bytes()
    files = {"file": ("test_FD001.txt.gz", data)}
    url = "/v1/models/fd001/score?horizons=10&horizons=40&risk=0.1"
    scored = client.post(url, files=files).json()["predictions"]
    assert len(scored) == 100
    assert all([f["within_cycles"] for f in s["failure_probabilities"]] == [10, 40] for s in scored)
    assert all(s["rul_at_risk"]["risk"] == 0.1 for s in scored)
    text = client.post(url, files=files, headers={"accept": "text/csv"}).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {"failure_probability_10", "failure_probability_40", "rul_at_risk", "risk"} <= set(rows[0])
    assert float(rows[0]["failure_probability_10"]) <= float(rows[0]["failure_probability_40"])
    bad = client.post("/v1/models/fd001/score?horizons=0", files=files)
    assert bad.status_code == 422 and "horizons[0] = 0" in bad.json()["detail"]


def test_oip_answers_the_parameters_horizons_and_risk(client):
    windows = [w["readings"] for w in EXAMPLE_REQUEST["windows"]]
    body = {
        "inputs": [{"name": "readings", "datatype": "FP32", "shape": [2, 50, 24], "data": windows}],
        "outputs": [{"name": "failure_probabilities"}, {"name": "rul_at_risk"}, {"name": "rul_quantiles"}],
        "parameters": {"horizons": [10, 30, 60], "risk": 0.05},
    }
    outputs = {o["name"]: o for o in client.post("/v2/models/fd001/infer", json=body).json()["outputs"]}
    assert outputs["failure_probabilities"]["shape"] == [2, 3]
    assert outputs["rul_at_risk"]["shape"] == [2]
    predicted = client.post(
        "/v1/models/fd001/predict", json={**EXAMPLE_REQUEST, "horizons": [10, 30, 60]}
    ).json()
    v1 = [f["probability"] for f in predicted["predictions"][0]["failure_probabilities"]]
    np.testing.assert_allclose(outputs["failure_probabilities"]["data"][:3], v1, atol=1e-6)
    quantiles = np.array(outputs["rul_quantiles"]["data"]).reshape(2, -1)
    assert quantiles.shape == (2, 20)  # -1 where open, else non-decreasing
    bad = client.post("/v2/models/fd001/infer", json={**body, "parameters": {"risk": 0.9}})
    assert bad.status_code == 400 and "parameters.risk: risk = 0.9" in bad.json()["error"]


def test_rul_score_takes_horizons_and_risk(tmp_path, cmapss_dir):
    from service.score_cli import main

    out = tmp_path / "scores.csv"
    main([str(cmapss_dir / "test_FD001.txt.gz"), "--model", str(MODELS_DIR / "fd001.onnx"), "--out", str(out),
          "--horizons", "15", "45", "--risk", "0.1"])  # fmt: skip
    header = next(csv.reader(out.open()))
    assert header[header.index("failure_probability_15") + 1] == "failure_probability_45"
    assert "rul_at_risk" in header and "risk" in header
    with pytest.raises(SystemExit, match="horizons"):
        main([str(cmapss_dir / "test_FD001.txt.gz"), "--model", str(MODELS_DIR / "fd001.onnx"),
              "--horizons", "500"])  # fmt: skip
