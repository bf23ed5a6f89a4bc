"""GET /metrics (Prometheus) and request ids."""

import logging
import re

from service.transport.request_id import RequestIdFilter, current_request_id
from service.transport.schemas import EXAMPLE_REQUEST
from tests.conftest import MODELS_DIR
from tests.service.conftest import make_client


def _sample(text: str, prefix: str) -> float:
    (line,) = [line for line in text.splitlines() if line.startswith(prefix)]
    return float(line.rsplit(" ", 1)[1])


def test_metrics_count_requests_inference_and_batch_sizes():
    with make_client(MODELS_DIR) as c:
        c.post("/v1/predict", json=EXAMPLE_REQUEST)
        c.post("/v1/predict", json={"windows": EXAMPLE_REQUEST["windows"][:1]})
        c.get("/v1/models/nope")
        text = c.get("/metrics").text
    assert _sample(text, 'rul_requests_total{method="POST",route="/v1/predict",status="200"}') == 2
    assert _sample(text, 'rul_requests_total{method="GET",route="/v1/models/{model}",status="404"}') == 1
    assert (
        _sample(text, 'rul_request_duration_seconds_count{method="POST",route="/v1/predict",status="200"}')
        == 2
    )
    assert _sample(text, 'rul_inference_seconds_count{model="fd001"}') == 2  # warm-up runs not counted
    assert _sample(text, 'rul_batch_size_windows_sum{model="fd001"}') == 3  # 2 windows + 1 window
    assert _sample(text, 'rul_model_info{model="fd001",provider="CPUExecutionProvider",version="') == 1


def test_metrics_stay_open_when_api_keys_are_set():
    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.settings import Settings

    with TestClient(create_app(Settings(models_dir=MODELS_DIR, providers="cpu", api_keys=["k"]))) as c:
        response = c.get("/metrics")
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")


def test_request_id_is_echoed_or_created(client):
    assert (
        client.get("/health/live", headers={"X-Request-ID": "dash-42"}).headers["x-request-id"] == "dash-42"
    )
    created = [client.get("/health/live").headers["x-request-id"] for _ in range(3)]
    assert len(set(created)) == 3 and all(re.fullmatch(r"[0-9a-f]{12}-[0-9a-f]+", c) for c in created)
    # an id that could forge log lines is replaced, not echoed
    assert (
        client.get("/health/live", headers={"X-Request-ID": "a b\\nc"}).headers["x-request-id"] != "a b\\nc"
    )


def test_log_records_carry_the_request_id():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "msg", None, None)
    token = current_request_id.set("req-7")
    try:
        RequestIdFilter().filter(record)
    finally:
        current_request_id.reset(token)
    assert record.request_id == "req-7"


def test_static_files_are_counted_under_their_mount_and_unknown_paths_as_unmatched():
    with make_client(MODELS_DIR) as c:
        assert c.get("/static/app.js").status_code == 200
        assert c.get("/static/style.css").status_code == 200
        assert c.get("/static/nothing.js").status_code == 404
        assert c.get("/no/such/path").status_code == 404
        text = c.get("/metrics").text
    assert 'rul_requests_total{method="GET",route="/static/{path}",status="200"} 2.0' in text
    assert 'rul_requests_total{method="GET",route="/static/{path}",status="404"} 1.0' in text
    assert 'rul_requests_total{method="GET",route="unmatched",status="404"} 1.0' in text
    assert 'route="unmatched",status="200"' not in text


def test_odd_methods_add_no_series():
    """A client may send any token as its method: each would add series to /metrics (780 of
    them made it slow to render); they are all counted as "other"."""
    with make_client(MODELS_DIR) as c:
        for method in ("FOO", "BAR", "PROPFIND", "Get"):
            c.request(method, "/health/live")
        text = c.get("/metrics").text
    assert 'method="other"' in text
    assert not any(f'method="{m}"' in text for m in ("FOO", "BAR", "PROPFIND", "Get"))


def test_nothing_a_client_sends_reaches_the_log_raw(caplog):
    """Log lines are the operator's: a client's path, query, method, request id, forwarded
    address, key, model name, file name or body text never reach a log record as sent (control
    characters that would forge a line or colour a terminal, or the text itself where it has no
    business in the log). Through a live server with the access log on, every route family."""
    import socket
    import threading
    import time

    import httpx
    import uvicorn

    from service.main import server_config
    from service.settings import Settings

    marker = "EVIL\r\n2026-01-01 forged line \x1b[31m"
    settings = Settings(models_dir=MODELS_DIR, providers="cpu", api_keys=["right-key"], port=0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(server_config(settings.model_copy(update={"port": port}), log_level="info"))
    caplog.set_level(logging.INFO)
    caplog.handler.addFilter(RequestIdFilter())  # as rul-serve's handler: the id on every record
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    raw_requests = [
        b"GET /v1/models/EVIL%0D%0Aforged%1B HTTP/1.1\r\nHost: t\r\nX-API-Key: right-key\r\n\r\n",
        b"GET /health/live?x=EVIL%0d%0aforged HTTP/1.1\r\nHost: t\r\nX-Request-ID: EVIL\x1b[31m\r\n\r\n",
        b"EVIL /v1/predict HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /v1/models HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: EVIL\x1b\r\nX-API-Key: EVIL-wrong\r\n\r\n",
        b"GET /EVIL\x7f HTTP/1.1\r\nHost: t\r\n\r\n",
    ]
    try:
        for data in raw_requests:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                conn.sendall(data)
                conn.recv(65536)
        headers = {"X-API-Key": "right-key", "X-Request-ID": "EVIL forged line"}
        httpx.post(url + "/v1/predict", headers=headers, content=marker.encode(), timeout=10)
        httpx.post(
            url + "/v1/predict", headers=headers, json={"windows": [{"id": marker, "readings": [[marker]]}]}
        )
        httpx.post(
            url + "/v1/models/fd001/score",
            headers=headers,
            files={"file": (marker, b"1 1 " + marker.encode())},
        )
        httpx.post(
            url + "/v2/models/fd001/infer", headers=headers, content=b'{"inputs": "' + marker.encode() + b'"}'
        )
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    lines = [record.getMessage() + " " + str(getattr(record, "request_id", "")) for record in caplog.records]
    assert any("/v1/predict" in line for line in lines), lines  # the access log was captured
    for line in lines:
        assert not re.search(r"[\x00-\x1f\x7f]", line), repr(line)
        assert "forged line" not in line, repr(line)
