import gzip
import io
import json

import numpy as np
import pytest

from service.core.fleet_file import read_fleet
from service.core.predictor import Predictor
from service.core.providers import SessionConfig
from service.core.scoring import ScoringCancelled, score_fleet
from service.transport.schemas import EXAMPLE_REQUEST
from tests.conftest import MODELS_DIR
from tests.service.conftest import predict, unit_scores

CPU_ONLY = SessionConfig("cpu")


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor.load(MODELS_DIR / "fd001.onnx", CPU_ONLY)


@pytest.fixture(scope="module")
def fd001_test(cmapss_dir):
    return read_fleet(io.BytesIO((cmapss_dir / "test_FD001.txt.gz").read_bytes()))


def test_scoring_test_fd001_reproduces_the_card_rmse(predictor, fd001_test, cmapss_dir):
    result = score_fleet(predictor, fd001_test)
    assert len(unit_scores(result.predictions)) == 100 and result.skipped == []
    with gzip.open(cmapss_dir / "RUL_FD001.txt.gz") as f:
        true = np.loadtxt(f)
    rul = np.array([p.rul for p in unit_scores(result.predictions)])
    card = json.loads((MODELS_DIR / "fd001.json").read_text())
    assert float(np.sqrt(np.mean((rul - true) ** 2))) == pytest.approx(
        card["metrics"]["test"]["rmse"], abs=1e-4
    )
    first = unit_scores(result.predictions)[0]
    assert (first.unit, first.cycle, first.cycles_used, first.padded) == (1, 31, 31, True)


def test_last_prediction_equals_json_predict_of_the_same_window(predictor, fd001_test):
    # the example's first window
    (scored,) = unit_scores(score_fleet(predictor, {9: fd001_test[9]}).predictions)
    (predicted,) = predict(predictor, [("u9", EXAMPLE_REQUEST["windows"][0]["readings"])])
    assert scored.rul == pytest.approx(predicted.rul, abs=1e-3)  # the example rounds to 6 digits


def test_all_cycles_gives_a_trajectory_from_min_cycles(predictor, fd001_test):
    result = score_fleet(predictor, {9: fd001_test[9]}, all_cycles=True)
    points = unit_scores(result.trajectories[9])
    assert [p.cycle for p in points] == list(range(10, 56))  # 55 cycles, minimum 10
    assert points[0].padded and points[0].cycles_used == 10
    assert points[-1].cycles_used == 50 and not points[-1].padded  # window 50
    last = unit_scores(result.predictions)[0]
    assert points[-1].rul == pytest.approx(last.rul, abs=1e-4)  # batch 46 vs batch 1
    single = predict(predictor, [("c15", fd001_test[9][1][:15].tolist())])[0]
    assert points[5].rul == pytest.approx(single.rul, abs=1e-4)


def test_units_shorter_than_minimum_are_skipped_with_reason(predictor, fd001_test):
    short = {5: (fd001_test[1][0][:4], fd001_test[1][1][:4]), 1: fd001_test[1]}
    result = score_fleet(predictor, short)
    assert [p.unit for p in unit_scores(result.predictions)] == [1]
    assert result.skipped == [
        {"unit": 5, "cycles": 4, "reason": "unit 5 has 4 cycles; model fd001 needs at least 10"}
    ]


def test_scoring_stops_when_asked_between_units_and_runs(predictor, fd001_test):
    asked = []

    def cancelled() -> bool:
        asked.append(1)
        return len(asked) > 3

    runs = []
    predictor.on_run = lambda *args: runs.append(args)
    try:
        with pytest.raises(ScoringCancelled, match="the client went away"):
            score_fleet(predictor, fd001_test, all_cycles=True, cancelled=cancelled)
    finally:
        predictor.on_run = None
    assert len(asked) == 4 and len(runs) <= 3  # stopped at the fourth question, not after 100 units


def test_last_window_labels_are_each_windows_cycle_numbers():
    """The fleet's row labels, made in one array (pipeline.front_padded, as score_fleet makes
    them), are what pipeline.cycle_labels gives per unit."""
    from service.core.pipeline import cycle_labels, front_padded

    units = [np.arange(5, 12), np.arange(100, 180, 2), np.arange(3)]
    expected = np.stack([cycle_labels(c, 30, len(c)) for c in units])
    assert np.array_equal(front_padded([c[-30:] for c in units], (30,), -1, np.int64), expected)
