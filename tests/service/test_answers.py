"""The one place answers are made: every path's fields come from `Answers.fields`."""

import json

import numpy as np
import pandas as pd
import pytest

from service.core.answers import Answers, column_names
from service.core.planning import DEFAULT_PLANNING
from service.core.predictor import Predictor
from service.core.providers import SessionConfig
from service.score_cli import main as score_main
from service.transport.schemas import EXAMPLE_REQUEST
from tests.conftest import MODELS_DIR
from tests.service.conftest import make_client

STATES = ("normal", "degrading", "critical")


def _answers(n: int = 2) -> Answers:
    outputs = {
        "rul": np.array([12.5, 140.0], np.float32)[:n],
        "rul_lower": np.array([5.0, 100.0], np.float32)[:n],
        "rul_upper": np.array([20.0, np.inf], np.float32)[:n],
        "health_probs": np.array([[0.1, 0.2, 0.7], [0.9, 0.05, 0.05]], np.float32)[:n],
        "quality_flags": np.zeros((n, 50, 24), np.int32),
        "ood_score": np.array([0.5, 0.25], np.float32)[:n],
        "rul_quantiles": np.array([[4.0, 12.5, 21.0], [110.0, np.inf, np.inf]], np.float32)[:n],
    }
    from service.core.window_quality import WindowQuality

    quality = [WindowQuality("ok", (), 0.5), WindowQuality("ok", (), 0.25)][:n]
    return Answers(STATES, outputs, np.array([50, 12])[:n], quality, (0.05, 0.5, 0.95), 125.0)


def test_records_and_columns_are_cut_from_the_same_fields():
    answers = _answers()
    first, second = answers.records()
    assert first == {
        "rul": 12.5, "rul_lower": 5.0, "rul_upper": 20.0, "health_state": "critical",
        "health_probabilities": {"normal": np.float32(0.1).item(), "degrading": np.float32(0.2).item(),
                                 "critical": np.float32(0.7).item()},
        "failure_probabilities": [{"within_cycles": 30, "probability": 0.95}],
        "rul_at_risk": {"risk": 0.05, "rul": 4.0},
        "cycles_used": 50, "padded": False, "quality": {"status": "ok", "flags": [], "ood_score": 0.5},
    }  # fmt: skip
    assert second["rul_upper"] is None and second["padded"] is True and second["health_state"] == "normal"
    columns = answers.columns()
    assert ["unit", "cycle", *columns] == column_names(STATES)
    assert columns["p_critical"] == [
        first["health_probabilities"]["critical"],
        second["health_probabilities"]["critical"],
    ]
    assert columns["rul_upper"] == [20.0, None] and columns["flagged_columns"] == ["", ""]


def test_a_field_added_in_fields_reaches_every_path(monkeypatch, cmapss_dir, tmp_path):
    """The one answer pipeline (service/core/pipeline.py), proved: a field added to
    Answers.fields alone reaches v1 predict, fleet scoring (JSON and CSV), the Open Inference
    Protocol's `answer` output, rul-score's CSV and the Spark job's columns (the schema,
    schemas.Answer, is the only other place to add it, for the OpenAPI docs)."""
    original = Answers.fields

    def with_margin(self: Answers) -> dict[str, list]:
        fields = original(self)
        margin = [round(r - lo, 3) for r, lo in zip(fields["rul"], fields["rul_lower"], strict=True)]
        return {**fields, "margin": margin}

    monkeypatch.setattr(Answers, "fields", with_margin)
    raw = (cmapss_dir / "test_FD001.txt.gz").read_bytes()
    window = EXAMPLE_REQUEST["windows"][0]["readings"]
    with make_client(MODELS_DIR) as client:
        answer = client.post("/v1/models/fd001/predict", json={"windows": [{"readings": window}]})
        (predicted,) = answer.json()["predictions"]
        assert predicted["margin"] == round(predicted["rul"] - predicted["rul_lower"], 3)
        scored = client.post("/v1/models/fd001/score", files={"file": ("f.txt.gz", raw)}).json()
        assert all("margin" in p for p in scored["predictions"]) and len(scored["predictions"]) == 100
        as_csv = client.post("/v1/models/fd001/score", files={"file": ("f.txt.gz", raw)},
                             headers={"accept": "text/csv"})  # fmt: skip
        assert "margin" in as_csv.text.splitlines()[0].split(",")
        tensor = {"name": "readings", "datatype": "FP32", "shape": [1, 50, 24], "data": window}
        oip = client.post(
            "/v2/models/fd001/infer", json={"inputs": [tensor], "outputs": [{"name": "answer"}]}
        )
        (document,) = oip.json()["outputs"][0]["data"]
        assert json.loads(document)["margin"] == predicted["margin"]
    out = tmp_path / "scores.csv"
    score_main([str(cmapss_dir / "test_FD001.txt.gz"), "--model", str(MODELS_DIR / "fd001.onnx"),
                "--providers", "cpu", "--out", str(out)])  # fmt: skip
    assert "margin" in out.read_text().splitlines()[0].split(",")
    assert "margin" in column_names(STATES)
    spark_job = pytest.importorskip("spark_scoring.job")
    predictor = Predictor.load(MODELS_DIR / "fd001.onnx", SessionConfig("cpu"))
    rows = pd.DataFrame(window, columns=list(predictor.card.input_features)).assign(
        unit=7, cycle=range(1, 51)
    )
    frame = spark_job._score(predictor, rows, False, [], DEFAULT_PLANNING)
    assert frame["margin"].tolist() == [predicted["margin"]]


def test_release_frees_every_quality_and_leaves_the_answer_made():
    from service.core.window_quality import Flag, WindowQuality

    flag = tuple(Flag("s_2", "out_of_range", "reads 0", (1, 2)))
    quality = [WindowQuality("degraded", (flag,), 0.5) for _ in range(1234)]
    answers = _answers(2)
    answers = Answers(answers.health_states, answers.outputs, answers.cycles_used, quality)
    answers.release()
    assert answers.quality == [] and quality == []
