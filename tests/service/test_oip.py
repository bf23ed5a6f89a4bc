"""The Open Inference Protocol v2, through the official tritonclient[http] against a live
uvicorn server on loopback, and its error shape through the TestClient."""

import json
from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from service.core.predictor import Predictor
from service.core.providers import SessionConfig
from service.settings import Settings
from service.transport.schemas import EXAMPLE_REQUEST
from tests.conftest import MODELS_DIR, SHIPPED
from tests.service.conftest import live_server

WINDOWS = np.asarray([w["readings"] for w in EXAMPLE_REQUEST["windows"]], dtype=np.float32)  # (2, 50, 24)


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with live_server(Settings(models_dir=MODELS_DIR, providers="cpu")) as url:
        yield url.removeprefix("http://")  # tritonclient takes host:port


@pytest.fixture(scope="module")
def client(server_url) -> httpclient.InferenceServerClient:
    return httpclient.InferenceServerClient(url=server_url)


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    return Predictor.load(MODELS_DIR / "fd001.onnx", SessionConfig("cpu")).run(WINDOWS)


def test_health_and_metadata_through_tritonclient(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("fd001")
    assert client.get_server_metadata()["name"] == "rul-service"
    metadata = client.get_model_metadata("fd001")
    assert metadata["inputs"] == [{"name": "readings", "datatype": "FP32", "shape": [-1, 50, 24]}]
    assert [o["name"] for o in metadata["outputs"]] == [
        "rul", "health_probs", "rul_lower", "rul_upper", "quality_flags", "ood_score", "window_flags",
        "rul_quantiles", "quality", "failure_probabilities", "rul_at_risk", "answer", "drivers",
    ]  # fmt: skip
    assert metadata["outputs"][1]["shape"] == [-1, 3]
    assert metadata["outputs"][4] == {"name": "quality_flags", "datatype": "INT32", "shape": [-1, 50, 24]}
    assert metadata["outputs"][6] == {"name": "window_flags", "datatype": "INT32", "shape": [-1]}
    assert metadata["outputs"][7] == {"name": "rul_quantiles", "datatype": "FP32", "shape": [-1, 20]}
    assert metadata["outputs"][8] == {"name": "quality", "datatype": "BYTES", "shape": [-1]}
    assert "out_of_distribution" in metadata["parameters"]["quality"]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_through_tritonclient_equals_the_predictor(client, expected, binary):
    readings = httpclient.InferInput("readings", list(WINDOWS.shape), "FP32")
    readings.set_data_from_numpy(WINDOWS, binary_data=binary)
    names = ["rul", "health_probs", "rul_lower", "quality_flags", "ood_score"]
    outputs = [
        httpclient.InferRequestedOutput(n, binary_data=binary) for n in [*names, "rul_upper", "quality"]
    ]
    result = client.infer("fd001", [readings], outputs=outputs, request_id="req-1")
    for name in names:
        np.testing.assert_array_equal(result.as_numpy(name), expected[name])
    # rul_upper: +inf where the interval is open, as the graph gives it (binary); -1 in JSON
    open_value = np.float32(np.inf) if binary else np.float32(-1.0)
    upper = np.where(np.isfinite(expected["rul_upper"]), expected["rul_upper"], open_value)
    np.testing.assert_array_equal(result.as_numpy("rul_upper"), upper)
    qualities = [json.loads(q) for q in result.as_numpy("quality")]
    assert [q["status"] for q in qualities] == ["ok", "ok"]
    assert result.get_response()["model_name"] == "fd001" and result.get_response()["id"] == "req-1"


def test_infer_without_requested_outputs_returns_all(client, expected):
    readings = httpclient.InferInput("readings", [1, 50, 24], "FP32")
    readings.set_data_from_numpy(WINDOWS[:1])
    result = client.infer("fd001", [readings])
    assert result.as_numpy("health_probs").shape == (1, 3)
    np.testing.assert_allclose(result.as_numpy("rul"), expected["rul"][:1], rtol=0, atol=1e-4)  # batch 1 vs 2


def test_wrong_shape_error_reaches_tritonclient(client):
    readings = httpclient.InferInput("readings", [1, 20, 24], "FP32")
    readings.set_data_from_numpy(np.zeros((1, 20, 24), dtype=np.float32))
    with pytest.raises(
        InferenceServerException, match=r"has shape \[1, 20, 24\]; expected \[batch, 50, 24\]"
    ):
        client.infer("fd001", [readings])


def test_unknown_model_error_reaches_tritonclient(client):
    with pytest.raises(
        InferenceServerException, match=f"model 'fd999' not found; known models: {', '.join(SHIPPED)}"
    ):
        client.get_model_metadata("fd999")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"inputs": []}, "expected exactly one input, 'readings'"),
        ({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 50, 24], "data": []}]},
         "unknown input 'x'; model fd001 takes 'readings'"),
        ({"inputs": [{"name": "readings", "datatype": "INT8", "shape": [1, 50, 24], "data": []}]},
         "input 'readings' has datatype 'INT8'; expected FP32"),
        ({"inputs": [{"name": "readings", "datatype": "FP32", "shape": [1, 50, 24], "data": [1.0, 2.0]}]},
         "input 'readings' has 2 values; shape [1, 50, 24] needs 1200"),
        ({"inputs": [{"name": "readings", "datatype": "FP32", "shape": [1, 50, 24], "data": ["a"] * 1200}]},
         "input 'readings' data holds strings; FP32 data must be JSON numbers"),
        ({"inputs": [{"name": "readings", "datatype": "FP32", "shape": [1, 50, 24], "data": ["1.5"] * 1200}]},
         "input 'readings' data holds strings; FP32 data must be JSON numbers"),
        ({"inputs": [{"name": "readings", "datatype": "FP32", "shape": [1, 50, 24], "data": [True] * 1200}]},
         "input 'readings' data holds booleans; FP32 data must be JSON numbers"),
        ({"inputs": [{"name": "readings", "datatype": "FP32", "shape": [1, 50, 24],
                      "data": [[0.5] * 24] * 49 + [[0.5] * 23 + [False]]}]},
         "input 'readings' data holds booleans; FP32 data must be JSON numbers"),
        ({"inputs": [{"name": "readings", "datatype": "FP32", "shape": [1, 50, 24], "data": [None] * 1200}]},
         "input 'readings' data holds values that are not numbers; FP32 data must be JSON numbers"),
        ({"inputs": [{"name": "readings", "datatype": "FP32", "shape": [1, 50, 24], "data": [1e39] * 1200}]},
         "input 'readings' window 0, row 0, column 0 (setting_1) is inf; values must be finite, except whole "
         "rows of NaN before a window's first cycle (a short history's padding)"),
        ({"inputs": [{"name": "readings", "datatype": "FP32", "shape": [1, 50, 24], "data": [0.0] * 1200}],
          "outputs": [{"name": "risk"}]},
         "unknown outputs ['risk']; model fd001 has ['rul', 'health_probs', 'rul_lower', 'rul_upper', "
         "'quality_flags', 'ood_score', 'window_flags', 'rul_quantiles', 'quality', 'failure_probabilities', "
         "'rul_at_risk', 'answer', 'drivers']"),
        ({"inputs": [{"name": "readings", "datatype": "FP32", "shape": [1, 50, 24], "data": [0.0] * 1200}],
          "outputs": [{"name": n} for n in ("rul", "quality", "rul", "quality", "quality")]},
         "outputs requested more than once: 'quality' 3 times, 'rul' 2 times; ask for each output once"),
        ({"inputs": [{"name": "readings", "datatype": "FP32", "shape": [1, 50, 24],
                      "parameters": {"binary_data_size": 10**9}}]},
         "input 'readings' declares binary_data_size 1000000000, but 0 bytes follow the JSON header"),
    ],
)  # fmt: skip
def test_infer_errors_are_400_with_error_field(body, error):
    from tests.service.conftest import make_client

    with make_client(MODELS_DIR) as c:
        response = c.post("/v2/models/fd001/infer", json=body)
        assert response.status_code == 400 and response.json() == {"error": error}
        invalid = c.post(
            "/v2/models/fd001/infer", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert invalid.status_code == 400 and invalid.json()["error"].startswith(
            "the inference request is not valid JSON"
        )
        assert c.get("/v2/models/nope/ready").json() == {
            "error": f"model 'nope' not found; known models: {', '.join(SHIPPED)}"
        }


def test_v2_ready_is_503_with_error_when_no_model(tmp_path):
    from tests.service.conftest import make_client

    with make_client(tmp_path) as c:
        response = c.get("/v2/health/ready")
        assert response.status_code == 503 and response.json()["error"].startswith("not ready: ")


def test_the_tritonclient_snippet_of_docs_api_runs_as_written(server_url, expected, monkeypatch, capsys):
    from tests.conftest import ROOT

    text = (ROOT / "docs" / "api.md").read_text()
    snippet = text.split("```python\n", 1)[1].split("```", 1)[0]
    assert 'url="localhost:8000"' in snippet
    monkeypatch.chdir(ROOT)
    exec(snippet.replace('url="localhost:8000"', f'url="{server_url}"'), {})  # noqa: S102
    printed = capsys.readouterr().out
    assert f"{expected['rul'][0]:.4g}"[:4] in printed


def _binary_request(
    windows: np.ndarray, declared: int | None = None, extra: bytes = b""
) -> tuple[bytes, dict]:
    tensor = windows.astype(np.float32).tobytes()
    size = len(tensor) if declared is None else declared
    inputs = [{"name": "readings", "datatype": "FP32", "shape": list(windows.shape),
               "parameters": {"binary_data_size": size}}]  # fmt: skip
    header = json.dumps({"inputs": inputs}).encode()
    return header + tensor + extra, {"inference-header-content-length": str(len(header)),
                                     "content-type": "application/octet-stream"}  # fmt: skip


def test_v2_binary_data_must_be_as_long_as_declared_and_obeys_the_window_limit():
    from service.settings import Settings as S
    from tests.service.conftest import TestClient, create_app

    with TestClient(create_app(S(models_dir=MODELS_DIR, providers="cpu", max_windows_per_request=2))) as c:
        body, headers = _binary_request(WINDOWS)
        assert c.post("/v2/models/fd001/infer", content=body, headers=headers).status_code == 200
        short, headers = _binary_request(WINDOWS, declared=10**9)
        refused = c.post("/v2/models/fd001/infer", content=short, headers=headers)
        assert refused.status_code == 400 and refused.json()["error"] == (
            "input 'readings' declares binary_data_size 1000000000, but 9600 bytes follow the JSON header"
        )
        longer, headers = _binary_request(WINDOWS, extra=b"\0" * 8)
        assert c.post("/v2/models/fd001/infer", content=longer, headers=headers).status_code == 400
        three, headers = _binary_request(np.concatenate([WINDOWS, WINDOWS[:1]]))
        too_many = c.post("/v2/models/fd001/infer", content=three, headers=headers)
        assert too_many.status_code == 413 and too_many.json() == {
            "error": "request has 3 windows; the limit is 2 (RUL_MAX_WINDOWS_PER_REQUEST)"
        }


def test_an_output_asked_for_100_000_times_is_refused_at_once():
    import time

    from tests.service.conftest import make_client

    body = {"inputs": [{"name": "readings", "datatype": "FP32", "shape": [1, 50, 24], "data": [0.0] * 1200}],
            "outputs": [{"name": "quality"}] * 100_000}  # fmt: skip
    with make_client(MODELS_DIR) as c:
        started = time.perf_counter()
        response = c.post("/v2/models/fd001/infer", json=body)
        assert time.perf_counter() - started < 5.0  # the repeats are counted in one pass
    assert response.status_code == 400 and response.json() == {
        "error": "outputs requested more than once: 'quality' 100000 times; ask for each output once"
    }


def test_a_list_of_more_outputs_than_the_model_has_is_refused_from_the_names():
    from tests.service.conftest import make_client

    tensor = {"name": "readings", "datatype": "FP32", "shape": [1, 50, 24], "data": [0.0] * 1200}
    invented = [{"name": f"o{i}"} for i in range(5000)]
    repeated_pair = [{"name": "rul"}, {"name": "quality"}] * 40
    with make_client(MODELS_DIR) as c:
        invented, repeated_pair, not_names = (
            c.post("/v2/models/fd001/infer", json={"inputs": [tensor], "outputs": outputs})
            for outputs in (invented, repeated_pair, [{"name": 7}] * 40)
        )
    assert invented.status_code == 400
    assert invented.json()["error"].startswith("unknown outputs ['o0', 'o1', 'o2', 'o3', 'o4' and 4995 more]")
    assert repeated_pair.status_code == 400 and repeated_pair.json()["error"] == (
        "outputs requested more than once: 'quality' 40 times, 'rul' 40 times; ask for each output once"
    )
    assert not_names.status_code == 400 and "unknown outputs ['7']" in not_names.json()["error"]
