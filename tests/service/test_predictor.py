"""The predictor alone: no FastAPI."""

import json

import numpy as np
import pytest

from service.core.predictor import GIVE_BACK_ABOVE, MAX_RUN_WINDOWS, ModelLoadError, Predictor
from service.core.providers import SessionConfig
from service.core.window_input import WindowError
from service.model_set import load_models
from service.transport.schemas import EXAMPLE_REQUEST
from tests.conftest import MODELS_DIR
from tests.service.conftest import predict

CPU_ONLY = SessionConfig("cpu")


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor.load(MODELS_DIR / "fd001.onnx", CPU_ONLY)


@pytest.fixture(scope="module")
def window() -> np.ndarray:
    return np.asarray(EXAMPLE_REQUEST["windows"][0]["readings"], dtype=np.float32)  # (50, 24)


def test_predict_equals_direct_session_run(predictor, window):
    (pred,) = predict(predictor, [("w", window.tolist())])
    names = ["rul", "health_probs", "rul_lower", "rul_upper"]
    rul, probs, lower, upper = predictor.session.run(names, {"readings": window[None]})
    assert np.isinf(upper[0]) and pred.rul_upper is None  # a healthy engine: open above, "at least rul_lower"
    assert (pred.rul, pred.rul_lower) == (float(rul[0]), float(lower[0]))
    assert list(pred.health_probabilities.values()) == [float(p) for p in probs[0]]
    assert pred.health_state == ["normal", "degrading", "critical"][int(np.argmax(probs[0]))]
    assert pred.cycles_used == 50 and pred.padded is False
    assert pred.rul_lower <= pred.rul
    assert pred.quality.status == "ok" and pred.quality.flags == []


def test_longer_window_uses_its_last_window_length_cycles(predictor, window):
    longer = np.concatenate([np.full((40, 24), 7.0, dtype=np.float32), window])
    (long_pred,) = predict(predictor, [("long", longer.tolist())])
    (pred,) = predict(predictor, [("exact", window.tolist())])
    assert long_pred.rul == pred.rul and long_pred.cycles_used == 50 and long_pred.padded is False


def test_short_window_is_padded_for_the_graph_and_says_so(predictor, window):
    """The service pads a short window in front with NaN rows, the card's padding rule; the
    graph fills them (edge padding, tests/training/test_train_export.py) and judges only the
    real cycles. A window padded by hand is another input: its repeated rows are real cycles."""
    short = window[-12:]
    nan_padded = np.concatenate([np.full((38, 24), np.nan, dtype=np.float32), short])
    (pred,) = predict(predictor, [("short", short.tolist())])
    rul = predictor.run(nan_padded[None])["rul"]
    assert pred.padded is True and pred.cycles_used == 12
    assert pred.rul == float(rul[0])
    assert [f.check for f in pred.quality.flags] == ["short_history"]


@pytest.mark.parametrize(
    ("readings", "message"),
    [
        ([], "window 0 (id 'w'): readings are empty; send at least 10 cycles of 24 values"),
        (
            [[1.0] * 24] * 5 + [[1.0] * 22],
            "window 0 (id 'w'): cycle 5 has 22 columns; expected 24: "
            "setting_1 ... s_21 (3 operational settings, then sensors 1-21)",
        ),
        (
            [[1.0] * 24] * 9,
            "window 0 (id 'w'): has 9 cycles; model fd001 needs at least 10 "
            "(windows shorter than 50 are padded)",
        ),
        (
            [[1.0] * 24] * 3 + [[1.0] * 7 + [float("nan")] + [1.0] * 16] + [[float("inf")] * 24] * 10,
            "window 0 (id 'w'): cycle 3, column 7 (s_5) is nan; "
            "every reading must be a finite number "
            "(241 such values)",
        ),
    ],
)
def test_invalid_window_names_window_and_problem(predictor, readings, message):
    with pytest.raises(WindowError) as info:
        predict(predictor, [("w", readings)])
    assert str(info.value) == message


def test_error_names_the_index_of_the_bad_window(predictor, window):
    with pytest.raises(WindowError, match=r"^window 1: cycle 0 has 23 columns"):
        predict(predictor, [(None, window.tolist()), (None, [[0.0] * 23] * 30)])


def test_load_refuses_model_whose_sha256_differs_from_card(models_copy):
    with open(models_copy / "fd001.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelLoadError, match=r"fd001.onnx has sha256 [0-9a-f]{64} but its card says"):
        Predictor.load(models_copy / "fd001.onnx", CPU_ONLY)


def test_load_models_reports_bad_model_and_serves_the_others(models_copy):
    (models_copy / "broken.onnx").write_bytes(b"not onnx")
    card = json.loads((models_copy / "fd001.json").read_text())
    (models_copy / "broken.json").write_text(json.dumps({**card, "name": "broken", "sha256": "0" * 64}))
    models, errors = load_models(models_copy, CPU_ONLY)
    assert list(models) == ["fd001"]
    assert list(errors) == ["broken"] and "card says" in errors["broken"]


def test_load_models_missing_card_is_reported(models_copy):
    (models_copy / "fd001.json").unlink()
    models, errors = load_models(models_copy, CPU_ONLY)
    assert models == {} and errors == {"fd001": "fd001.onnx has no model card fd001.json"}


def test_big_batches_run_in_pieces_and_give_the_arena_back(predictor, window, monkeypatch):
    given_back: list[int] = []
    monkeypatch.setattr(predictor, "give_back_memory", lambda: given_back.append(1))
    rng = np.random.default_rng(0)
    batch = window[None] + rng.normal(0, 0.01, (MAX_RUN_WINDOWS + 3, 50, 24)).astype(np.float32)
    outputs = predictor.run(batch)  # two pieces
    assert given_back == [1] and outputs["rul"].shape == (MAX_RUN_WINDOWS + 3,)
    direct = predictor.session.run(["rul"], {"readings": batch[-3:]})[0]
    np.testing.assert_allclose(outputs["rul"][-3:], direct, rtol=0, atol=1e-4)
    predictor.run(batch[:GIVE_BACK_ABOVE])
    predictor.run(batch[: GIVE_BACK_ABOVE + 1], give_back=False)
    assert given_back == [1]  # small runs and the batcher's keep the arena warm
    predictor.run(batch[: GIVE_BACK_ABOVE + 1])
    assert given_back == [1, 1]


def test_give_back_memory_runs(predictor, window):
    predictor.give_back_memory()  # ONNX Runtime accepts the shrink option on this provider
    (pred,) = predict(predictor, [("w", window.tolist())])
    assert pred.rul > 0
