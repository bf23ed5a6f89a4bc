"""The edges a new user meets first: unknown fields, ids, the error shape of each protocol,
and the small errors that must say what went wrong and what to do."""

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.settings import Settings
from tests.conftest import MODELS_DIR

EXAMPLE = json.loads((Path(__file__).parents[2] / "service/examples/predict_fd001.json").read_text())


def _window(**extra: object) -> dict:
    window = dict(EXAMPLE["windows"][0])
    window.update(extra)
    return window


@pytest.mark.parametrize(
    ("body", "field", "where"),
    [
        ({"model": "fd003", "windows": [_window()]}, "model", ""),
        ({"windows": [_window()], "horizon": [10]}, "horizon", ""),
        ({"windows": [_window(cycle=[1])]}, "cycle", "windows[0]"),
    ],
)
def test_unknown_field_refused_naming_it_and_the_allowed_ones(client: TestClient, body, field, where) -> None:
    response = client.post("/v1/predict", json=body)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert f"unknown field '{field}'" in detail
    assert detail.startswith(where or "the request body")
    allowed = "id, readings, cycles" if where else "windows, horizons, risk"
    assert f"the fields allowed here are {allowed}" in detail


def test_unknown_oip_field_refused_in_the_protocols_shape(client: TestClient) -> None:
    tensor = {"name": "readings", "datatype": "FP32", "shape": [1, 30, 24], "data": [0.0] * 720}
    for body, field in (
        ({"inputs": [{**tensor, "dtype": "FP32"}]}, "dtype"),
        ({"inputs": [tensor], "parameters": {"horizon": [10]}}, "horizon"),
        ({"inputs": [tensor], "model": "fd003"}, "model"),
    ):
        response = client.post("/v2/models/fd001/infer", json=body)
        assert response.status_code == 400, response.text
        assert f"unknown field '{field}'" in response.json()["error"]


def test_integer_id_echoed_back_as_sent(client: TestClient) -> None:
    response = client.post("/v1/predict", json={"windows": [_window(id=17)]})
    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0]["id"] == 17


def test_body_over_the_limit_answered_in_each_protocols_shape() -> None:
    settings = Settings(models_dir=MODELS_DIR, providers="cpu", max_body_bytes=4096)
    body = b'{"inputs": [' + b" " * 8000 + b"]}"
    headers = {"content-type": "application/json"}
    with TestClient(__import__("service.app").app.create_app(settings)) as c:
        v2 = c.post("/v2/models/fd001/infer", content=body, headers=headers)
        v1 = c.post("/v1/predict", content=body, headers=headers)
    assert v2.status_code == v1.status_code == 413
    assert set(v2.json()) == {"error"} and "RUL_MAX_BODY_BYTES" in v2.json()["error"]
    assert set(v1.json()) == {"detail"} and "RUL_MAX_BODY_BYTES" in v1.json()["detail"]


def _readings_with(row: int, column: int, value: float) -> list[list[float]]:
    readings = [list(r) for r in EXAMPLE["windows"][0]["readings"]]
    readings[row][column] = value
    return readings


def test_overflowing_reading_says_it_is_beyond_float32(client: TestClient) -> None:
    response = client.post("/v1/predict", json={"windows": [{"readings": _readings_with(3, 5, 1e300)}]})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith("window 0: cycle 3, column 5 (s_3) is inf (1e+300 is beyond float32's ±3.4e+38")


def test_cycle_written_as_a_float_says_whole_number(client: TestClient) -> None:
    window = _window(cycles=[*EXAMPLE["windows"][0]["cycles"][:-1], 1e20])
    response = client.post("/v1/predict", json={"windows": [window]})
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "windows[0].cycles[49]: Input should be a valid integer (got 1e+20): write a whole number, "
        "without a decimal point or exponent"
    )


def test_empty_and_broken_bodies_say_what_is_wrong_and_where(client: TestClient) -> None:
    headers = {"content-type": "application/json"}
    empty = client.post("/v1/predict", content=b"", headers=headers)
    assert empty.status_code == 422
    assert empty.json()["detail"].startswith("the request body is empty; send a JSON object")
    broken = client.post("/v1/predict", content=b'{"windows": [1,2', headers=headers)
    assert broken.status_code == 400
    assert (
        broken.json()["detail"]
        == "the request body is not valid JSON: Expecting ',' delimiter at character 16"
    )


def test_score_without_a_file_field_says_how_to_send_it(client: TestClient) -> None:
    response = client.post("/v1/models/fd001/score", files={"fleet": ("a.txt", b"1 1 0 0 100")})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("no fleet file in the request: send it as the multipart")


@pytest.mark.parametrize(("path", "key"), [("/v1/predict/", "detail"), ("/v2/models/fd001/infer/", "error")])
def test_trailing_slash_is_a_404_that_says_so(client: TestClient, path: str, key: str) -> None:
    response = client.post(path, json=EXAMPLE, follow_redirects=False)
    assert response.status_code == 404
    assert response.json() == {key: f"no route POST {path}; without the trailing slash: {path.rstrip('/')}"}
