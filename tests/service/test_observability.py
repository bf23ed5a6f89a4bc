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
