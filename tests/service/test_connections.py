"""No client can hold a connection open for ever or send unbounded headers: through a real
uvicorn server with the guarded protocol (service/http_protocol.py), on raw sockets."""

import socket
import time
from collections.abc import Iterator

import pytest

from service.settings import Settings
from tests.conftest import MODELS_DIR
from tests.service.conftest import live_server


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    settings = Settings(models_dir=MODELS_DIR, providers="cpu", header_timeout_s=0.5, body_timeout_s=0.5)
    with live_server(settings) as url:
        yield int(url.rsplit(":", 1)[1])


def exchange(port: int, data: bytes, wait: float = 5.0) -> tuple[float, bytes]:
    """Send `data`, read until the server closes (or `wait` passes): (seconds to the answer, answer)."""
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.settimeout(wait)
        started = time.perf_counter()
        conn.sendall(data)
        answer, first = b"", None
        try:
            while chunk := conn.recv(65536):
                first = first or time.perf_counter()
                answer += chunk
        except (TimeoutError, ConnectionResetError):
            pass
    return (first or time.perf_counter()) - started, answer


def test_a_plain_request_is_answered(port):
    _, answer = exchange(port, b"GET /health/live HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK")


def test_oversized_headers_are_431_at_once(port):
    seconds, answer = exchange(
        port, b"GET /health/live HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large")
    assert b"the request headers are over 65536 bytes; the limit is 65536 (RUL_MAX_HEADER_BYTES)" in answer
    assert seconds < 0.5


def test_headers_that_never_end_are_408(port):
    seconds, answer = exchange(port, b"GET /health/live HTTP/1.1\r\nHost: t\r\n")
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout")
    assert b"the request headers did not arrive within 0.5 s (RUL_HEADER_TIMEOUT_S)" in answer
    assert 0.4 < seconds < 2.0


def test_a_body_shorter_than_its_content_length_is_408(port):
    head = b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    head += b"Content-Length: 100\r\n\r\n"
    seconds, answer = exchange(port, head + b'{"win')
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout")
    assert b"(RUL_BODY_TIMEOUT_S)" in answer and 0.4 < seconds < 2.0


def test_a_large_body_in_one_packet_is_not_mistaken_for_headers(port):
    body = (
        b'{"windows": [' + b",".join([b'{"readings": [[' + b",".join([b"1.0"] * 24) + b"]]}"] * 3000) + b"]}"
    )
    head = b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nConnection: close\r\n"
    _, answer = exchange(port, head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    assert answer.startswith(b"HTTP/1.1 422")  # one cycle per window: too short, said so; not a 431
