"""No request gets a 500: the malformed bodies that once did (issue "No single request can
take the service down", its table) are 4xx in the protocol's error shape with one bounded
sentence, and a property test generates more of them. Also: one rule for both key headers,
and readiness details only with a key."""

import json
import time

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.app import create_app
from service.settings import Settings
from service.transport.fast_json import INLINE_BYTES, ORJSON_BYTES
from service.transport.schemas import EXAMPLE_REQUEST
from tests.conftest import MODELS_DIR

ZEROS = [0.0] * 1200


def oip_body(tensor: dict | None = None, **request) -> str:
    base = {"name": "readings", "datatype": "FP32", "shape": [1, 50, 24], "data": ZEROS}
    return json.dumps({"inputs": [{**base, **(tensor or {})}], **request})


@pytest.mark.parametrize(
    "body, error",
    [
        (
            '{"a":' * 3000 + "1" + "}" * 3000,
            "the inference request is not valid JSON: the JSON is nested too deeply",
        ),
        (oip_body({"shape": [True, 50, 24]}), "inputs.0.shape.0: Input should be a valid integer"),
        (oip_body({"parameters": [1]}), "inputs.0.parameters: Input should be a valid dictionary"),
        (oip_body({"parameters": "x"}), "inputs.0.parameters: Input should be a valid dictionary"),
        (oip_body(parameters=[1]), "parameters: Input should be a valid dictionary"),
        (oip_body(parameters="x"), "parameters: Input should be a valid dictionary"),
        (oip_body(outputs=5), "outputs: Input should be a valid list"),
        (
            oip_body(outputs=[{"name": "rul", "parameters": [1]}]),
            "outputs.0.parameters: Input should be a valid",
        ),
        (
            oip_body({"parameters": {"binary_data_size": float("inf")}}),
            "binary_data_size: Input should be a valid",
        ),
        (
            oip_body({"data": [1e400] * 1200}),
            "input 'readings' window 0, row 0, column 0 (setting_1) is inf; "
            "values must be finite, except whole rows of NaN before a window's first cycle "
            "(a short history's padding)",
        ),
    ],
)
def test_malformed_inference_requests_are_400_with_a_sentence(client, body, error):
    response = client.post(
        "/v2/models/fd001/infer", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert error in response.json()["error"]
    assert response.headers["x-request-id"]


@pytest.mark.parametrize(
    "body",
    [
        '{"windows": [{"id": "\\ud800", "readings": [[1.0]]}]}',
        '{"windows": [{"readings": [["\\ud800"]]}]}',
        '{"windows": [{"id": "\\ud800", "readings": "x"}]}',
    ],
)
def test_a_lone_surrogate_is_a_422_not_a_500(client, body):
    response = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    # the schema (not a list) or the model (a value that is not a number, named by its column)
    assert response.json()["detail"].startswith(("windows[0].", "window 0: "))


def test_a_validation_error_is_one_bounded_sentence_without_the_input(client):
    window = [[0.0] * 24 for _ in range(1000)]
    window[500][3] = None
    response = client.post("/v1/predict", json={"windows": [{"readings": window}]})
    assert response.status_code == 422
    assert response.json() == {
        "detail": "window 0: cycle 500, column 3 (s_1): Input should be a valid number (got None)"
    }


def test_a_body_that_is_not_json_is_415_or_400(client):
    text = client.post("/v1/predict", content="hello", headers={"content-type": "text/plain"})
    assert text.status_code == 415
    assert text.json() == {
        "detail": "the request body must be JSON (Content-Type: application/json); got text/plain"
    }
    broken = client.post("/v1/predict", content='{"windows": [', headers={"content-type": "application/json"})
    assert broken.status_code == 400 and broken.json()["detail"].startswith(
        "the request body is not valid JSON"
    )
    array = client.post("/v1/predict", json=[1, 2])
    assert array.status_code == 422 and array.json() == {
        "detail": "the request body must be a JSON object; got list"
    }


def test_out_of_range_unit_and_cycle_numbers_are_422_naming_the_line(client):
    row = " ".join(["1"] * 24)
    for line, expected in [
        (f"1e19 1 {row}", "line 1: the unit number is 1e+19; it must be a whole number from 0 to 2147483647"),
        (
            f"1 1e300 {row}",
            "line 1: the cycle number is 1e+300; it must be a whole number from 0 to 16777216",
        ),
    ]:
        response = client.post("/v1/models/fd001/score", files={"file": ("f.txt", line + "\n")})
        assert response.status_code == 422 and response.json() == {"detail": f"f.txt: {expected}"}


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
KEYS = st.sampled_from(
    ["inputs", "outputs", "parameters", "id", "name", "datatype", "shape", "data", "windows", "readings",
     "binary_data_size", "binary_data", "binary_data_output"]
)  # fmt: skip


def mutated(base: object, draw_value: st.DrawFn) -> object:
    """The base body with a few of its fields (at any depth) replaced by arbitrary JSON."""
    if isinstance(base, dict):
        out = {k: mutated(v, draw_value) for k, v in base.items()}
        if draw_value(st.booleans()):
            out[draw_value(KEYS)] = draw_value(JSON_VALUES)
        return out
    if isinstance(base, list) and base and draw_value(st.booleans()):
        return [mutated(base[0], draw_value)] + base[1:3]
    return draw_value(JSON_VALUES) if draw_value(st.integers(0, 5)) == 0 else base


@st.composite
def malformed_bodies(draw: st.DrawFn) -> tuple[str, str]:
    kind = draw(st.sampled_from(["v2", "v1"]))
    if kind == "v2":
        tensor = {"name": "readings", "datatype": "FP32", "shape": [1, 50, 24], "data": [0.0] * 4}
        output = {"name": "rul", "parameters": {"binary_data": False}}
        small = {"inputs": [tensor], "outputs": [output], "parameters": {}}
        body = json.dumps(mutated(small, draw))
        path = "/v2/models/fd001/infer"
    else:
        small = {"windows": [{"id": "w", "readings": [[0.0] * 24] * 2}]}
        body = json.dumps(mutated(small, draw))
        path = "/v1/predict"
    if draw(st.booleans()):  # a lone surrogate, or a number too large for a float, somewhere
        body = body.replace('"w"', '"\\udc00"', 1).replace(
            "0.0", draw(st.sampled_from(["1e400", "-1e999"])), 1
        )
    return path, body


@given(malformed_bodies())
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_malformed_body_gets_a_server_error(client, request_body):
    path, body = request_body
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code < 500, (path, body[:300], response.text[:300])
    key = "error" if path.startswith("/v2") else "detail"
    if response.status_code >= 400:
        assert isinstance(response.json()[key], str) and len(response.content) < 2000


@pytest.fixture(scope="module")
def keyed():
    with TestClient(create_app(Settings(models_dir=MODELS_DIR, providers="cpu", api_keys=["k1"]))) as c:
        yield c


def test_both_key_headers_are_trimmed_the_same_way(keyed):
    for headers in (
        {"X-API-Key": " k1 "},
        {"Authorization": "Bearer   k1  "},
        {"Authorization": " bearer k1"},
    ):
        assert keyed.post("/v1/predict", json=EXAMPLE_REQUEST, headers=headers).status_code == 200, headers


def test_with_both_key_headers_the_authorization_header_decides(keyed):
    wrong_bearer = {"Authorization": "Bearer nope", "X-API-Key": "k1"}
    assert keyed.get("/v1/models", headers=wrong_bearer).status_code == 403
    right_bearer = {"Authorization": "Bearer k1", "X-API-Key": "nope"}
    assert keyed.get("/v1/models", headers=right_bearer).status_code == 200


def test_readiness_details_need_a_key(models_copy):
    (models_copy / "fd001.onnx").write_bytes(b"not a model")
    with TestClient(create_app(Settings(models_dir=models_copy, providers="cpu", api_keys=["k1"]))) as c:
        anonymous = c.get("/health/ready")
        assert anonymous.status_code == 503
        assert anonymous.json() == {
            "detail": "not ready: 1 model(s) failed to load (send an API key for the details)"
        }
        assert c.get("/v2/health/ready").json() == {
            "error": "not ready: 1 model(s) failed to load (send an API key for the details)"
        }
        detailed = c.get("/health/ready", headers={"X-API-Key": "k1"})
        assert detailed.status_code == 503 and "fd001: fd001.onnx has sha256" in detailed.json()["detail"]


def test_a_large_body_is_decoded_window_by_window_with_the_same_answers(client):
    windows = [
        {"id": f"w{i}", "readings": w["readings"]} for i in range(150) for w in EXAMPLE_REQUEST["windows"]
    ]
    large = json.dumps({"windows": windows}).encode()
    assert len(large) > 256 * 1024  # past fast_json.INLINE_BYTES: the window-by-window decoder
    big = client.post("/v1/predict", content=large, headers={"content-type": "application/json"}).json()
    small = client.post("/v1/predict", json=EXAMPLE_REQUEST).json()
    assert big["predictions"][:2] == [{**p, "id": "w0"} for p in small["predictions"]]


def test_a_large_body_stops_at_the_window_limit_and_names_bad_values(client):
    with TestClient(
        create_app(Settings(models_dir=MODELS_DIR, providers="cpu", max_windows_per_request=100))
    ) as c:
        # decoded whole (under fast_json.ORJSON_BYTES): the count is known
        many = json.dumps({"windows": [{"readings": [[0.0] * 24] * 10}] * 600}).encode()
        assert INLINE_BYTES < len(many) <= ORJSON_BYTES
        response = c.post("/v1/predict", content=many, headers={"content-type": "application/json"})
        assert response.status_code == 413
        assert response.json() == {
            "detail": "request has 600 windows; the limit is 100 (RUL_MAX_WINDOWS_PER_REQUEST)"
        }
        # decoded window by window (over ORJSON_BYTES): it stops at the 101st
        more = json.dumps({"windows": [{"readings": [[0.0] * 24] * 10}] * 7500}).encode()
        assert len(more) > ORJSON_BYTES
        response = c.post("/v1/predict", content=more, headers={"content-type": "application/json"})
        assert response.status_code == 413
        assert response.json() == {
            "detail": "request has more than 100 windows; the limit is 100 (RUL_MAX_WINDOWS_PER_REQUEST)"
        }
    window = [[0.0] * 24 for _ in range(50)]
    window[7][2] = "x"
    bad = json.dumps({"windows": [{"readings": [[0.0] * 24] * 50}] * 200 + [{"readings": window}]}).encode()
    response = client.post("/v1/predict", content=bad, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"].startswith(
        "window 200: cycle 7, column 2 (setting_3): Input should be a valid number"
    )


def test_one_giant_array_is_refused_by_a_scan_before_it_is_parsed(client):
    flat = b'{"windows": [{"readings": [' + b",".join([b"1"] * 2_000_000) + b"]}]}"
    started = time.perf_counter()
    response = client.post("/v1/predict", content=flat, headers={"content-type": "application/json"})
    assert response.status_code == 413 and time.perf_counter() - started < 1.0
    assert response.json()["detail"].startswith("the body holds 4000014 bytes of JSON between two braces")
    assert "(RUL_MAX_CYCLES_PER_WINDOW)" in response.json()["detail"]
