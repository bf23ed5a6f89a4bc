"""Why this RUL (service/core/drivers.py): each read sensor's effect, asked on every path,
faithful by construction, honest about masked sensors, and paid only when asked."""

import json

import numpy as np
import pandas as pd
import pytest

from service.core import pipeline
from service.core.drivers import LISTED
from service.core.planning import Planning
from service.core.predictor import Predictor
from service.core.providers import SessionConfig
from service.score_cli import main as score_main
from service.transport.schemas import EXAMPLE_REQUEST
from tests.conftest import MODELS_DIR
from tests.service.conftest import make_client

WINDOW = EXAMPLE_REQUEST["windows"][0]["readings"]


@pytest.fixture(scope="module")
def client():
    with make_client(MODELS_DIR) as c:
        yield c


@pytest.mark.parametrize("model", ["fd001", "fd002", "fd003", "fd004", "cmapss"])
def test_sending_the_top_driver_dead_moves_the_rul_by_minus_its_effect(model, cmapss_dir):
    """The definition, checked against the graph on real test windows of every model's data:
    the window with its leading driver dead (0.0 in every cycle) is answered RUL - effect."""
    from training.data import load_subset
    from training.windows import stack_windows

    predictor = Predictor.load(MODELS_DIR / f"{model}.onnx", SessionConfig("cpu"))
    subset = {"cmapss": "FD004"}.get(model, model.upper())
    windows, _ = stack_windows(load_subset(subset, str(cmapss_dir)).test, predictor.window_length, None)
    picked = windows[np.random.default_rng(0).choice(len(windows), 6, replace=False)].astype(np.float32)
    prepared = pipeline.from_requests(predictor, [(i, w) for i, w in enumerate(picked)])
    answers = pipeline.answer_now(predictor, prepared, Planning(explain=True))
    for i, record in enumerate(answers.records()):
        assert 1 <= len(record["drivers"]) <= LISTED
        effects = [abs(d["effect"]) for d in record["drivers"]]
        assert effects == sorted(effects, reverse=True)
        top = record["drivers"][0]
        dead = picked[i].copy()
        dead[:, predictor.card.input_features.index(top["column"])] = 0.0
        again = pipeline.answer_now(predictor, pipeline.from_requests(predictor, [(i, dead)])).records()[0]
        assert again["rul"] == pytest.approx(record["rul"] - top["effect"], abs=0.06)
        assert top["column"] in {f["column"] for f in again["quality"]["flags"]}  # masked, as said


def test_a_sensor_masked_as_faulty_is_no_driver_and_the_answer_says_so(client):
    dead = [row[:4] + [0.0] + row[5:] for row in WINDOW]  # s_2 dead: masked by the checks
    answer = client.post("/v1/predict", json={"windows": [{"readings": dead}], "explain": True})
    (prediction,) = answer.json()["predictions"]
    assert "s_2" not in [d["column"] for d in prediction["drivers"]]
    assert "s_2 masked as faulty: no driver" in prediction["drivers_note"]
    assert f"the window is {prediction['quality']['status']}" in prediction["drivers_note"]


def test_explain_is_asked_on_every_path_and_costs_nothing_unasked(client, cmapss_dir, tmp_path):
    """v1 predict, score JSON and CSV, the Open Inference Protocol, rul-score and Spark; a
    request that does not ask runs the model on its own windows only."""
    predictor = client.app.state.service.served.models["fd001"]
    runs: list[int] = []
    observe = predictor.on_run
    predictor.on_run = lambda name, n, seconds: (runs.append(n), observe(name, n, seconds))
    try:
        plain = client.post("/v1/predict", json={"windows": [{"readings": WINDOW}]}).json()["predictions"][0]
        asked = client.post("/v1/predict", json={"windows": [{"readings": WINDOW}], "explain": True})
    finally:
        predictor.on_run = observe
    read = len(predictor.card.quality.columns)
    assert runs == [1, 1 + read]
    assert "drivers" not in plain and "drivers_note" not in plain
    (explained,) = asked.json()["predictions"]
    assert explained["rul"] == pytest.approx(plain["rul"], abs=1e-4) and explained["drivers"]
    raw = (cmapss_dir / "test_FD001.txt.gz").read_bytes()
    scored = client.post("/v1/models/fd001/score?explain=true", files={"file": ("f.txt.gz", raw)}).json()
    assert all(len(p["drivers"]) == LISTED for p in scored["predictions"])
    as_csv = client.post("/v1/models/fd001/score?explain=true", files={"file": ("f.txt.gz", raw)},
                         headers={"accept": "text/csv"})  # fmt: skip
    header = as_csv.text.splitlines()[0].split(",")
    assert {"driver_1", "driver_1_effect", "driver_1_reads", "driver_5", "drivers_note"} <= set(header)
    tensor = {"name": "readings", "datatype": "FP32", "shape": [1, 50, 24], "data": WINDOW}
    oip = client.post("/v2/models/fd001/infer", json={"inputs": [tensor], "outputs": [{"name": "drivers"}]})
    (document,) = oip.json()["outputs"][0]["data"]
    assert json.loads(document)["drivers"] == explained["drivers"]
    unasked = client.post("/v2/models/fd001/infer", json={"inputs": [tensor]}).json()
    assert "drivers" not in [o["name"] for o in unasked["outputs"]]
    out = tmp_path / "scores.csv"
    score_main([str(cmapss_dir / "test_FD001.txt.gz"), "--model", str(MODELS_DIR / "fd001.onnx"),
                "--providers", "cpu", "--out", str(out), "--explain"])  # fmt: skip
    frame = pd.read_csv(out)
    assert frame["driver_1"].notna().all() and frame["driver_1_effect"].notna().all()
    assert frame["driver_1_effect"].tolist() == [p["drivers"][0]["effect"] for p in scored["predictions"]]
    spark_job = pytest.importorskip("spark_scoring.job")
    rows = pd.DataFrame(WINDOW, columns=list(predictor.card.input_features)).assign(
        unit=7, cycle=range(1, 51)
    )
    spark_frame = spark_job._score(predictor, rows, False, [], Planning(explain=True))
    assert spark_frame["driver_1"].tolist() == [explained["drivers"][0]["column"]]


def test_explaining_is_bounded_and_not_offered_per_cycle(client, cmapss_dir):
    many = {"windows": [{"readings": WINDOW}] * 700, "explain": True}  # 700 x 15 runs > 10 000
    refused = client.post("/v1/predict", json=many)
    assert refused.status_code == 413 and "RUL_MAX_WINDOWS_PER_REQUEST" in refused.json()["detail"]
    assert "explain at most 666 windows" in refused.json()["detail"]
    raw = (cmapss_dir / "test_FD001.txt.gz").read_bytes()
    both = client.post(
        "/v1/models/fd001/score?explain=true&all_cycles=true", files={"file": ("f.txt.gz", raw)}
    )
    assert both.status_code == 422 and "all_cycles" in both.json()["detail"]
    with pytest.raises(SystemExit):
        score_main([str(cmapss_dir / "test_FD001.txt.gz"), "--model", str(MODELS_DIR / "fd001.onnx"),
                    "--explain", "--all-cycles"])  # fmt: skip
