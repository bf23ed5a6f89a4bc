"""Fleet uploads cost what their limits allow, checked while the file streams in: a gzip bomb,
too many rows, a line that never ends, a trajectory request too large, too many scoring jobs
at once: each is refused with the limit and its setting named, before the work is done."""

import gzip

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from service.state import service_state
from tests.conftest import MODELS_DIR


@pytest.fixture(scope="module")
def test_fd001(cmapss_dir) -> bytes:
    return (cmapss_dir / "test_FD001.txt.gz").read_bytes()


def client_with(**limits) -> TestClient:
    return TestClient(create_app(Settings(models_dir=MODELS_DIR, providers="cpu", **limits)))


def score(client: TestClient, content: bytes, query: str = ""):
    return client.post(f"/v1/models/fd001/score{query}", files={"file": ("fleet.txt.gz", content)})


def test_a_gzip_bomb_is_413_naming_the_ratio_limit(client):
    bomb = gzip.compress((" ".join(["1"] * 26) + "\n").encode() * 800_000)  # 42 MB of valid-looking rows
    response = score(client, bomb)
    assert response.status_code == 413
    assert "times its size; the limit is 100 (RUL_MAX_DECOMPRESSION_RATIO)" in response.json()["detail"]


def test_decompressed_size_is_bounded(test_fd001):
    with client_with(max_upload_decompressed_bytes=1_000_000) as c:
        response = score(c, test_fd001)  # 3.5 MB of text
    assert response.status_code == 413
    assert response.json()["detail"] == (
        "fleet.txt.gz: the file decompresses to more than 1000000 bytes; the limit is 1000000 "
        "(RUL_MAX_UPLOAD_DECOMPRESSED_BYTES)"
    )


def test_rows_are_bounded(test_fd001):
    with client_with(max_upload_rows=5_000) as c:
        response = score(c, test_fd001)  # 13 096 rows
    assert response.status_code == 413
    assert (
        "more than 5000 rows of readings; the limit is 5000 (RUL_MAX_UPLOAD_ROWS)"
        in response.json()["detail"]
    )


def test_a_line_without_end_is_413(client):
    response = score(client, b"1 " * 100_000)
    assert response.status_code == 413
    assert (
        response.json()["detail"] == "fleet.txt.gz: line 1 is longer than 65536 characters: not a fleet file"
    )


def test_all_cycles_is_bounded_before_any_prediction(test_fd001):
    with client_with(max_trajectory_points=10_000) as c:
        refused = score(c, test_fd001, "?all_cycles=true")  # 12 196 points
        assert refused.status_code == 413
        assert refused.json()["detail"].startswith(
            "all_cycles=true would make 12196 predictions; the limit is 10000 (RUL_MAX_TRAJECTORY_POINTS)"
        )
        assert score(c, test_fd001).status_code == 200  # the last cycles alone are fine


def test_scoring_jobs_beyond_the_limit_get_503_with_retry_after(test_fd001):
    with client_with(max_concurrent_scores=1) as c:
        c.portal.call(service_state(c.app).scoring.acquire)  # one job is running
        busy = score(c, test_fd001)
        assert busy.status_code == 503 and busy.headers["retry-after"] == "5"
        assert busy.json()["detail"].startswith(
            "1 scoring jobs are running, the limit (RUL_MAX_CONCURRENT_SCORES)"
        )
        service_state(c.app).scoring.release()
        assert score(c, test_fd001).status_code == 200


def test_a_fleet_of_more_units_than_allowed_is_413_whatever_their_size(test_fd001):
    with client_with(max_upload_units=99) as c:
        response = score(c, test_fd001)  # 100 units
        assert response.status_code == 413
        assert response.json()["detail"] == (
            "fleet.txt.gz: the file has more than 99 units; the limit is 99 (RUL_MAX_UPLOAD_UNITS): "
            "split the fleet"
        )
        # many tiny units (10 cycles each, a few bytes apiece) are counted the same way
        row = " ".join(["0"] * 24)
        tiny = "".join(f"{u} {c} {row}\n" for u in range(1, 201) for c in range(1, 11))
        refused = c.post("/v1/models/fd001/score", files={"file": ("tiny.txt", tiny)})
        assert refused.status_code == 413 and "more than 99 units" in refused.json()["detail"]
    with client_with(max_upload_units=100) as c:
        assert score(c, test_fd001).status_code == 200


def test_bodies_held_at_once_are_bounded_across_requests(cmapss_dir):
    """RUL_MAX_BODIES_IN_MEMORY_BYTES / RUL_MAX_UPLOADS_ON_DISK_BYTES: each bounds the sum of
    the bodies held at once (a declared body reserved before it is read, a chunked one as it
    arrives); past it a request gets 503 naming the setting with Retry-After, and what a
    request held is given back when it ends."""
    import socket
    import time

    import httpx

    from service.settings import Settings
    from tests.conftest import MODELS_DIR
    from tests.service.conftest import live_server

    settings = Settings(models_dir=MODELS_DIR, providers="cpu", max_bodies_in_memory_bytes=1_000_000,
                        max_uploads_on_disk_bytes=1_500_000, body_timeout_s=30)  # fmt: skip
    small = (cmapss_dir / "test_FD001.txt.gz").read_bytes()
    with live_server(settings) as url, httpx.Client(base_url=url, timeout=30) as client:
        port = int(url.rsplit(":", 1)[1])
        withheld = socket.create_connection(("127.0.0.1", port))  # 800 kB declared, 10 bytes sent
        withheld.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 800000\r\n\r\n{\"windows\"")  # fmt: skip
        time.sleep(0.3)
        refused = client.post(
            "/v1/predict", content=b"x" * 300_000, headers={"content-type": "application/json"}
        )
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert "RUL_MAX_BODIES_IN_MEMORY_BYTES" in refused.json()["detail"]
        chunked = client.post("/v1/predict", content=iter([b"x" * 100_000] * 3))  # 300 kB, chunked
        assert chunked.status_code == 503 and "RUL_MAX_BODIES_IN_MEMORY_BYTES" in chunked.text
        # an upload goes to the disk budget, not the memory one
        assert client.post("/v1/models/fd001/score", files={"file": ("t.gz", small)}).status_code == 200
        withheld.close()  # the client leaves: its reservation is given back
        deadline = time.monotonic() + 10
        while client.post("/v1/predict", json={"windows": []}).status_code == 503:
            assert time.monotonic() < deadline, "the withheld body's bytes were never given back"
            time.sleep(0.2)
        big_upload = client.post("/v1/models/fd001/score", files={"file": ("t.txt", b"1 1 " * 500_000)})
        assert big_upload.status_code == 503 and "RUL_MAX_UPLOADS_ON_DISK_BYTES" in big_upload.text
