"""Every v1 endpoint through FastAPI's TestClient: status codes and exact fields."""

import copy
import gzip
import io
import json
from pathlib import Path

import fastapi.dependencies.utils
import onnxruntime as ort
import pytest

from service.core.providers import CUDA, ProviderUnavailable, SessionConfig, create_session
from service.settings import Settings
from service.state import service_state
from service.transport.schemas import EXAMPLE_REQUEST
from tests.conftest import MODELS_DIR, SHIPPED
from tests.service.conftest import make_client

CARD = json.loads((MODELS_DIR / "fd001.json").read_text())


def test_live_is_ok(client):
    response = client.get("/health/live")
    assert response.status_code == 200 and response.json() == {"status": "live"}


def test_ready_names_execution_provider(client):
    response = client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "execution_provider": "CPUExecutionProvider",
        "models": {name: "CPUExecutionProvider" for name in SHIPPED},
    }


def test_models_lists_cards_with_provider(client):
    body = client.get("/v1/models").json()
    assert body["default_model"] == "fd001" and body["unavailable"] == {}
    assert [m["name"] for m in body["models"]] == SHIPPED
    fd001 = body["models"][SHIPPED.index("fd001")]
    assert fd001 == {**CARD, "execution_provider": "CPUExecutionProvider"}


def test_model_card_by_name(client):
    response = client.get("/v1/models/fd001")
    assert response.status_code == 200
    assert response.json() == {**CARD, "execution_provider": "CPUExecutionProvider"}


def test_unknown_model_is_404_listing_known_names(client):
    for response in (
        client.get("/v1/models/fd009"),
        client.post("/v1/models/fd009/predict", json=EXAMPLE_REQUEST),
    ):
        assert response.status_code == 404
        assert response.json() == {"detail": f"model 'fd009' not found; known models: {', '.join(SHIPPED)}"}


def test_model_names_ignore_case(client):
    """The training CLI says --subset FD001; the files are fd001.onnx: both names work."""
    assert client.get("/v1/models/FD001").json()["name"] == "fd001"
    response = client.post("/v1/models/Fd001/predict", json=EXAMPLE_REQUEST)
    assert response.status_code == 200 and response.json()["model"] == "fd001"
    assert client.get("/v2/models/FD003/ready").status_code == 200


def test_find_model_refuses_to_guess_between_names_that_differ_only_in_case():
    from service.state import ServedModels

    served = ServedModels({"fd001": None, "FD001": None, "fd002": None}, {}, None, {})  # type: ignore[dict-item]
    assert served.find("FD001") == "FD001" and served.find("fd002") == "fd002"
    assert served.find("FD002") == "fd002"
    assert served.find("Fd001") is None  # two candidates: a 404, not a guess


def test_app_state_is_one_typed_object_replaced_whole_on_reload(client):
    from service.state import ServedModels, service_state

    state = service_state(client.app)
    before = state.served
    assert isinstance(before, ServedModels) and sorted(before.models) == SHIPPED
    assert client.post("/v1/models/reload").status_code == 200
    after = service_state(client.app).served
    assert after is not before and sorted(after.models) == sorted(before.models)
    assert before.models["fd001"] is not after.models["fd001"]  # the old set is untouched, not mutated
    assert set(vars(client.app.state)["_state"]) == {"service"}  # nothing else hangs on app.state


def test_predict_example_returns_rul_interval_and_health(client):
    response = client.post("/v1/models/fd001/predict", json=EXAMPLE_REQUEST)
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "fd001" and body["model_version"] == CARD["version"]
    assert [p["id"] for p in body["predictions"]] == ["fd001-test-unit-9", "fd001-test-unit-34"]
    first, second = body["predictions"]
    assert set(first) == {
        "id",
        "rul",
        "rul_lower",
        "rul_upper",
        "health_state",
        "health_probabilities",
        "failure_probabilities",
        "rul_at_risk",
        "cycles_used",
        "padded",
        "quality",
    }
    assert first["failure_probabilities"][0]["within_cycles"] == 30 and first["rul_at_risk"]["risk"] == 0.05
    assert first["quality"] == {"status": "ok", "flags": [], "ood_score": first["quality"]["ood_score"]}
    assert 0 < first["quality"]["ood_score"] < 1
    assert list(first["health_probabilities"]) == ["normal", "degrading", "critical"]
    assert sum(first["health_probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    # a healthy engine near the training cap: the interval is open above ("at least rul_lower")
    assert first["rul_lower"] <= first["rul"] and first["rul_upper"] is None
    assert second["rul_lower"] <= second["rul"] <= second["rul_upper"]
    assert first["cycles_used"] == 50 and first["padded"] is False
    # true RULs are 111 and 7: the model must tell a healthy engine from a failing one
    assert first["health_state"] == "normal" and second["health_state"] == "critical"
    assert first["rul"] > 80 and second["rul"] < 30


def test_default_predict_uses_default_model(client):
    named = client.post("/v1/models/fd001/predict", json=EXAMPLE_REQUEST).json()
    default = client.post("/v1/predict", json=EXAMPLE_REQUEST)
    assert default.status_code == 200 and default.json() == named


def test_short_window_is_padded_in_response(client):
    short = {"windows": [{"id": "short", "readings": EXAMPLE_REQUEST["windows"][0]["readings"][-15:]}]}
    (pred,) = client.post("/v1/predict", json=short).json()["predictions"]
    assert pred["padded"] is True and pred["cycles_used"] == 15


def _with_readings(readings):
    body = copy.deepcopy(EXAMPLE_REQUEST)
    body["windows"][1]["readings"] = readings
    del body["windows"][1]["cycles"]  # the example's 50 cycle numbers fit its own readings only
    return body


@pytest.mark.parametrize(
    ("readings", "detail"),
    [
        (
            [[0.0] * 22] * 30,
            "window 1 (id 'fd001-test-unit-34'): cycle 0 has 22 columns; expected 24: "
            "setting_1 ... s_21 (3 operational settings, then sensors 1-21)",
        ),
        (
            [[0.0] * 24] * 4,
            "window 1 (id 'fd001-test-unit-34'): has 4 cycles; model fd001 needs at "
            "least 10 (windows shorter than 50 are padded)",
        ),
        (
            [],
            "window 1 (id 'fd001-test-unit-34'): readings are empty; send at least 10 cycles of 24 values",
        ),
    ],
)
def test_invalid_window_is_422_naming_window_and_problem(client, readings, detail):
    response = client.post("/v1/models/fd001/predict", json=_with_readings(readings))
    assert response.status_code == 422 and response.json() == {"detail": detail}


def test_nan_literal_in_json_is_422(client):
    readings = [[0.0] * 24 for _ in range(30)]
    readings[2][5] = float("nan")
    text = json.dumps(_with_readings(readings))  # Python writes the NaN literal
    response = client.post("/v1/predict", content=text, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json() == {
        "detail": "window 1 (id 'fd001-test-unit-34'): cycle 2, column 5 (s_3) "
        "is nan; every reading must be a finite number (1 such values)"
    }


def test_nan_written_as_string_is_422(client):
    body = _with_readings([["Infinity"] + [0.0] * 23] * 30)
    response = client.post("/v1/predict", json=body)
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "window 1 (id 'fd001-test-unit-34'): cycle 0, column 0 (setting_1) is inf; every reading "
        "must be a finite number (30 such values)"
    )


def test_empty_window_list_and_wrong_types_are_422(client):
    assert client.post("/v1/predict", json={"windows": []}).status_code == 422
    response = client.post("/v1/predict", json={"windows": [{"readings": [["a"] * 24]}]})
    assert response.status_code == 422
    assert response.json() == {  # one sentence naming where and what, never the input echoed back
        "detail": "window 0: cycle 0, column 0 (setting_1): Input should be a valid number, "
        "unable to parse string as a number (got 'a')"
    }


def test_no_models_means_not_ready_with_reason(tmp_path, caplog):
    with make_client(tmp_path) as c:
        response = c.get("/health/ready")
        assert response.status_code == 503
        reason = f"no <name>.onnx files in {tmp_path} (RUL_MODELS_DIR)"
        assert response.json() == {"detail": f"not ready: *: {reason}"}
        assert c.post("/v1/predict", json=EXAMPLE_REQUEST).status_code == 503
    assert any(r.levelname == "ERROR" and reason in r.getMessage() for r in caplog.records)


def test_a_missing_models_directory_is_named_by_its_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with make_client(Path("models")) as c:
        detail = c.get("/health/ready").json()["detail"]
    assert detail == f"not ready: *: models directory {tmp_path / 'models'} does not exist (RUL_MODELS_DIR)"


def test_the_shipped_models_are_found_from_any_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./models here
    assert Settings().models_dir == MODELS_DIR
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "mine.onnx").write_bytes(b"")
    assert Settings().models_dir == tmp_path / "models"  # ./models with models in it comes first


def test_bad_model_is_reported_and_not_ready_while_others_serve(models_copy):
    (models_copy / "fd002.onnx").write_bytes(b"garbage")
    with make_client(models_copy) as c:
        ready = c.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["detail"].startswith("not ready: fd002: fd002.onnx has no model card")
        assert c.post("/v1/models/fd001/predict", json=EXAMPLE_REQUEST).status_code == 200
        assert list(c.get("/v1/models").json()["unavailable"]) == ["fd002"]


def _cuda_really_works() -> bool:
    """Whether the service's own session creation gets the CUDA provider on this host."""
    if CUDA not in ort.get_available_providers():
        return False
    try:
        create_session(MODELS_DIR / "fd001.onnx", SessionConfig(providers="cuda"))
    except ProviderUnavailable:
        return False
    return True


CUDA_WORKS = _cuda_really_works()


@pytest.mark.skipif(CUDA_WORKS, reason="this host has a working CUDA provider")
def test_cuda_requested_without_cuda_is_not_ready_with_reason(models_copy):
    with make_client(models_copy, providers="cuda") as c:
        response = c.get("/health/ready")
        assert response.status_code == 503
        detail = response.json()["detail"]
        assert detail.startswith(
            "not ready: fd001: RUL_PROVIDERS=cuda needs CUDAExecutionProvider, "
            "but ONNX Runtime activated CPUExecutionProvider"
        )
        assert c.post("/v1/predict", json=EXAMPLE_REQUEST).status_code == 503


@pytest.mark.skipif(not CUDA_WORKS, reason="no working CUDA provider on this host (CI has no GPU)")
def test_cuda_provider_is_ready_and_scores_like_the_cpu(client, cmapss_dir):
    """On a GPU host: every shipped model loads on CUDA, readiness says so, and a whole test
    fleet scores as on the CPU (float32 kernels differ, so to a small tolerance)."""
    raw = (cmapss_dir / "test_FD001.txt.gz").read_bytes()
    with make_client(MODELS_DIR, providers="cuda") as gpu:
        ready = gpu.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["models"] == {name: CUDA for name in SHIPPED}
        assert gpu.get("/v1/models/fd001").json()["execution_provider"] == CUDA
        scored = {}
        for name, c in (("cpu", client), ("cuda", gpu)):
            response = c.post("/v1/models/fd001/score", files={"file": ("test_FD001.txt.gz", raw)})
            assert response.status_code == 200
            scored[name] = response.json()["predictions"]
    assert len(scored["cuda"]) == len(scored["cpu"]) == 100
    for on_cpu, on_gpu in zip(scored["cpu"], scored["cuda"], strict=True):
        assert on_gpu["unit"] == on_cpu["unit"] and on_gpu["health_state"] == on_cpu["health_state"]
        assert on_gpu["rul"] == pytest.approx(on_cpu["rul"], abs=0.05)


def test_score_upload_returns_one_prediction_per_unit(client, cmapss_dir):
    raw = (cmapss_dir / "test_FD001.txt.gz").read_bytes()
    response = client.post("/v1/models/fd001/score", files={"file": ("test_FD001.txt.gz", raw)})
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "fd001" and body["units"] == 100 and body["skipped"] == []
    assert [p["unit"] for p in body["predictions"]][:3] == [1, 2, 3]
    assert "trajectories" not in body


def test_score_csv_with_all_cycles(client, cmapss_dir):
    text = gzip.decompress((cmapss_dir / "test_FD001.txt.gz").read_bytes()).decode()
    first_unit = "".join(line + "\n" for line in text.splitlines() if line.split()[0] == "1")
    response = client.post(
        "/v1/models/fd001/score?all_cycles=true",
        files={"file": ("unit1.txt", first_unit)},
        headers={"accept": "text/csv"},
    )
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    lines = response.text.splitlines()
    assert lines[0].split(",") == ["unit", "cycle", "cycles_used", "padded", "rul", "rul_lower", "rul_upper",
                                   "health_state", "p_normal", "p_degrading", "p_critical",
                                   "failure_probability_30", "rul_at_risk", "risk",
                                   "quality_status", "ood_score", "flagged_columns"]  # fmt: skip
    assert len(lines) == 1 + 22 and lines[1].startswith("1,10,10,True,")


def test_score_bad_file_is_422_naming_file_and_line(client):
    response = client.post("/v1/models/fd001/score", files={"file": ("fleet.txt", "1 2 3\n")})
    assert response.status_code == 422
    assert response.json() == {
        "detail": "fleet.txt: line 1 has 3 columns; expected 26: unit, cycle, setting_1..3, s_1..s_21"
    }


def test_score_unknown_model_is_404(client):
    response = client.post("/v1/models/nope/score", files={"file": ("f.txt", "x")})
    assert response.status_code == 404


def test_concurrent_http_requests_are_batched_with_identical_answers():
    import threading

    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.settings import Settings

    one = {"windows": EXAMPLE_REQUEST["windows"][:1]}
    settings = Settings(models_dir=MODELS_DIR, providers="cpu", max_queue_delay_ms=200)
    with TestClient(create_app(settings)) as c:
        single = c.post("/v1/predict", json=one).json()["predictions"][0]["rul"]
        batcher = service_state(c.app).served.batchers["fd001"]
        runs_before = batcher.runs
        answers: list[float] = []

        def ask() -> None:
            answers.append(c.post("/v1/predict", json=one).json()["predictions"][0]["rul"])

        threads = [threading.Thread(target=ask) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(answers) == 16 and answers == pytest.approx([single] * 16, abs=1e-4)
        assert batcher.runs - runs_before < 16  # 16 requests in fewer ONNX Runtime runs


def test_predict_requests_resolve_dependencies_without_the_thread_pool(client, monkeypatch):
    """FastAPI runs a plain `def` dependency in its thread pool: one thread hand-off per
    request, ~14 % of the event loop's time under single-window load (bench/README.md). The
    model lookups are `async def`, so a predict request makes no such hand-off."""
    handed_off = []
    original = fastapi.dependencies.utils.run_in_threadpool

    async def counting(func, *args, **kwargs):
        handed_off.append(getattr(func, "__name__", repr(func)))
        return await original(func, *args, **kwargs)

    monkeypatch.setattr(fastapi.dependencies.utils, "run_in_threadpool", counting)
    for path in ("/v1/models/fd001/predict", "/v1/predict"):
        assert client.post(path, json=EXAMPLE_REQUEST).status_code == 200
    assert client.get("/v1/models/fd001").status_code == 200
    assert handed_off == []


def test_openapi_documents_every_route_with_real_fd001_examples(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in ("/health/live", "/health/ready", "/metrics", "/v1/models", "/v1/models/{model}",
                 "/v1/models/{model}/predict", "/v1/predict", "/v1/models/{model}/score",
                 "/v1/models/reload", "/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/{model}",
                 "/v2/models/{model}/ready", "/v2/models/{model}/infer"):  # fmt: skip
        assert path in paths, path
    predict_example = spec["components"]["schemas"]["PredictRequest"]["examples"][0]
    assert predict_example == EXAMPLE_REQUEST and len(predict_example["windows"][0]["readings"]) == 50
    infer = paths["/v2/models/{model}/infer"]["post"]["requestBody"]["content"]["application/json"]["example"]
    assert infer["inputs"][0]["data"] == EXAMPLE_REQUEST["windows"][0]["readings"]


def test_score_upload_of_test_fd001_reproduces_card_rmse(client, cmapss_dir):
    import numpy as np

    raw = gzip.decompress((cmapss_dir / "test_FD001.txt.gz").read_bytes())
    body = client.post("/v1/models/fd001/score", files={"file": ("test_FD001.txt", raw)}).json()
    true = np.loadtxt(io.BytesIO(gzip.decompress((cmapss_dir / "RUL_FD001.txt.gz").read_bytes())))
    rul = np.array([p["rul"] for p in body["predictions"]])
    assert len(rul) == 100
    assert float(np.sqrt(np.mean((rul - true) ** 2))) == pytest.approx(
        CARD["metrics"]["test"]["rmse"], abs=1e-4
    )


def test_a_window_sent_as_named_columns_gets_the_answer_of_the_table(client):
    features = ["setting_1", "setting_2", "setting_3", *(f"s_{i}" for i in range(1, 22))]
    window = EXAMPLE_REQUEST["windows"][0]
    columns = {name: [row[features.index(name)] for row in window["readings"]] for name in reversed(features)}
    table = client.post("/v1/predict", json={"windows": [window]}).json()["predictions"][0]
    named = client.post("/v1/predict", json={"windows": [{"id": window["id"], "readings": columns}]})
    assert named.status_code == 200 and named.json()["predictions"][0] == table
    missing = client.post(
        "/v1/predict", json={"windows": [{"readings": {k: v for k, v in columns.items() if k != "s_9"}}]}
    )
    assert missing.status_code == 422
    assert missing.json()["detail"].startswith(
        "window 0: readings: named columns: missing s_9; expected each of setting_1..setting_3 and s_1..s_21"
    )


def test_all_cycles_json_is_streamed_unit_by_unit_and_equals_the_scoring_of_the_whole_fleet(
    client, cmapss_dir
):
    import io

    from service.core.fleet_file import read_fleet
    from service.core.predictor import Predictor
    from service.core.scoring import score_fleet

    text = gzip.decompress((cmapss_dir / "test_FD001.txt.gz").read_bytes()).decode()
    three = "".join(line + "\n" for line in text.splitlines() if line.split()[0] in ("1", "2", "3"))
    with client.stream(
        "POST", "/v1/models/fd001/score?all_cycles=true", files={"file": ("u.txt", three)}
    ) as r:
        assert r.status_code == 200 and "content-length" not in r.headers  # streamed, not sized
        chunks = list(r.iter_raw())
    assert len(chunks) == 1 + 3 + 1  # the head, a unit at a time, the end
    body = json.loads(b"".join(chunks))
    assert list(body) == ["model", "model_version", "units", "predictions", "skipped", "trajectories"]
    predictor = Predictor.load(MODELS_DIR / "fd001.onnx", SessionConfig("cpu"))
    whole = score_fleet(predictor, read_fleet(io.BytesIO(three.encode())), all_cycles=True).json({})
    whole = json.loads(whole)
    assert [t["unit"] for t in body["trajectories"]] == [1, 2, 3]
    for streamed, expected in zip(body["trajectories"], whole["trajectories"], strict=True):
        assert [p["cycle"] for p in streamed["points"]] == [p["cycle"] for p in expected["points"]]
        assert [p["rul"] for p in streamed["points"]] == pytest.approx(
            [p["rul"] for p in expected["points"]], abs=1e-3
        )
    assert body["predictions"] == whole["predictions"]
