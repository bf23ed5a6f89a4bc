"""One error shape per protocol, walked status by status on a live server: every refusal under
/v1 is {"detail": sentence}, every one under /v2 {"error": sentence}, whichever layer makes
it (the connection guards, the key gate, the body limit, a route, the answer pipeline)."""

import json
import shutil
import socket
from collections.abc import Iterator

import httpx
import pytest

from service.settings import Settings
from tests.conftest import MODELS_DIR
from tests.service.conftest import live_server

KEY = "the-key"
V1 = "/v1/models/fd001/predict"
V2 = "/v2/models/fd001/infer"


@pytest.fixture(scope="module")
def url(tmp_path_factory) -> Iterator[str]:
    models = tmp_path_factory.mktemp("models")
    for suffix in (".onnx", ".json"):
        shutil.copy(MODELS_DIR / f"fd001{suffix}", models / f"fd001{suffix}")
    settings = Settings(models_dir=models, providers="cpu", api_keys=[KEY], auth_free_failures=1,
                        max_body_bytes=100_000, max_header_bytes=4096, body_timeout_s=0.5,
                        max_windows_per_request=2)  # fmt: skip
    with live_server(settings) as served:
        yield served


def raw(url: str, request: bytes, source: str = "127.0.0.1") -> tuple[int, dict]:
    """Send raw bytes, read the answer to the end: (status, JSON body)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10, source_address=(source, 0)) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def shape(path: str) -> str:
    return "error" if path.startswith("/v2") else "detail"


def one_sentence(status: int, body: dict, path: str, expected: int) -> str:
    assert status == expected, (path, body)
    assert list(body) == [shape(path)], (path, body)
    assert isinstance(body[shape(path)], str) and body[shape(path)], body
    return body[shape(path)]


@pytest.mark.parametrize("path", [V1, V2])
def test_every_refusal_has_the_protocols_shape(url, path):
    keyed = {"x-api-key": KEY}
    with httpx.Client(base_url=url, timeout=10) as client:
        answer = client.post(path, json={})
        assert "API key" in one_sentence(answer.status_code, answer.json(), path, 401)
        unknown = path.replace("fd001", "nope")
        answer = client.post(unknown, json={}, headers=keyed)
        assert "nope" in one_sentence(answer.status_code, answer.json(), unknown, 404)
        answer = client.get(path, headers=keyed)
        one_sentence(answer.status_code, answer.json(), path, 405)
        invalid = {"windows": [{"readings": [[1.0] * 24]}]} if path == V1 else {"inputs": []}
        answer = client.post(path, json=invalid, headers=keyed)
        one_sentence(answer.status_code, answer.json(), path, 422 if path == V1 else 400)
        answer = client.post(
            path, content=b"{not json", headers={**keyed, "content-type": "application/json"}
        )
        assert "JSON" in one_sentence(answer.status_code, answer.json(), path, 400)
        too_many = (
            {"windows": [{"readings": [[0.0] * 24] * 30}] * 3}
            if path == V1
            else {
                "inputs": [
                    {"name": "readings", "datatype": "FP32", "shape": [3, 50, 24], "data": [0.0] * 3600}
                ]
            }
        )
        answer = client.post(path, json=too_many, headers=keyed)
        assert "RUL_MAX_WINDOWS_PER_REQUEST" in one_sentence(answer.status_code, answer.json(), path, 413)
    big = f"POST {path} HTTP/1.1\r\nhost: x\r\nx-api-key: {KEY}\r\ncontent-type: application/json\r\n"
    status, body = raw(url, (big + "content-length: 200000\r\n\r\n").encode())
    assert "RUL_MAX_BODY_BYTES" in one_sentence(status, body, path, 413)
    status, body = raw(url, (big + "content-length: 100\r\n\r\n{").encode())
    assert "RUL_BODY_TIMEOUT_S" in one_sentence(status, body, path, 408)
    status, body = raw(url, (big + f"x-long: {'a' * 5000}\r\n\r\n").encode())
    assert "RUL_MAX_HEADER_BYTES" in one_sentence(status, body, path, 431)
    wrong = f"POST {path} HTTP/1.1\r\nhost: x\r\nx-api-key: wrong\r\nconnection: close\r\n"
    wrong += "content-length: 0\r\n\r\n"
    source = "127.0.0.2" if path == V1 else "127.0.0.3"  # each protocol's guesses from an address of its own
    for _ in range(2):  # RUL_AUTH_FREE_FAILURES=1: the second wrong key starts the wait
        status, body = raw(url, wrong.encode(), source)
        one_sentence(status, body, path, 403)
    status, body = raw(url, wrong.encode(), source)
    assert "retry after" in one_sentence(status, body, path, 429)


def test_not_ready_is_503_in_each_protocols_shape(tmp_path):
    with (
        live_server(Settings(models_dir=tmp_path, providers="cpu")) as url,
        httpx.Client(base_url=url) as client,
    ):
        for path in ("/v1/predict", "/health/ready", "/v2/health/ready"):
            answer = client.request("POST" if path == "/v1/predict" else "GET", path, json={"windows": []})
            one_sentence(answer.status_code, answer.json(), path, 503)
