"""The one place answers are made: every path's fields come from `Answers.fields`."""

import json

import numpy as np

from service.core.answers import Answers, column_names
from service.core.predictor import Predictor
from service.core.providers import SessionConfig
from service.core.scoring import score_fleet
from tests.conftest import MODELS_DIR
from tests.service.conftest import predict

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


def test_a_field_added_in_fields_reaches_predict_score_csv_and_the_column_list(monkeypatch, cmapss_dir):
    """What 'adding a field is a one-function change' means: a field added to Answers.fields
    alone appears in the JSON answers of predict and score, in the CSV/Spark columns and in
    column_names (the schema, schemas.Answer, is the only other place to add it)."""
    original = Answers.fields

    def with_margin(self: Answers) -> dict[str, list]:
        fields = original(self)
        return {
            **fields,
            "margin": [round(r - lo, 3) for r, lo in zip(fields["rul"], fields["rul_lower"], strict=True)],
        }

    monkeypatch.setattr(Answers, "fields", with_margin)
    predictor = Predictor.load(MODELS_DIR / "fd001.onnx", SessionConfig("cpu"))
    window = np.zeros((50, 24), np.float32) + np.array([0.0, 0.0, 100.0, *[500.0] * 21], np.float32)
    batch = predictor.prepare_batch([("w", window)])
    (record,) = predictor.answer_batch(batch, predictor.run(batch.windows)).records()
    assert record["margin"] == round(record["rul"] - record["rul_lower"], 3)
    import io

    from service.core.fleet_file import read_fleet

    fleet = read_fleet(io.BytesIO((cmapss_dir / "test_FD001.txt.gz").read_bytes()))
    scored = score_fleet(predictor, {1: fleet[1]})
    assert "margin" in json.loads(scored.json({}))["predictions"][0]
    assert "margin" in scored.csv_rows()[0]
    assert "margin" in column_names(STATES)
    assert predict(predictor, [("w", window)])[0].rul == record["rul"]  # the schema ignores what it lacks


def test_release_frees_every_quality_and_leaves_the_answer_made():
    from service.core.window_quality import Flag, WindowQuality

    flag = tuple(Flag("s_2", "out_of_range", "reads 0", (1, 2)))
    quality = [WindowQuality("degraded", (flag,), 0.5) for _ in range(1234)]
    answers = _answers(2)
    answers = Answers(answers.health_states, answers.outputs, answers.cycles_used, quality)
    answers.release()
    assert answers.quality == [] and quality == []
