"""API keys, body and request limits, CORS."""

import json

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from service.transport.schemas import EXAMPLE_REQUEST
from tests.conftest import MODELS_DIR


def _client(**settings) -> TestClient:
    return TestClient(create_app(Settings(models_dir=MODELS_DIR, providers="cpu", **settings)))


@pytest.fixture(scope="module")
def keyed():
    with _client(api_keys=["k-one", "k-two"]) as c:
        yield c


def test_missing_key_is_401_with_hint(keyed):
    response = keyed.post("/v1/predict", json=EXAMPLE_REQUEST)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {
        "detail": "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
    }


def test_wrong_key_is_403(keyed):
    for headers in ({"Authorization": "Bearer nope"}, {"X-API-Key": "k-one-"}):
        response = keyed.get("/v1/models", headers=headers)
        assert response.status_code == 403 and response.json() == {"detail": "API key not accepted"}


def test_either_header_with_any_configured_key_passes(keyed):
    assert (
        keyed.post("/v1/predict", json=EXAMPLE_REQUEST, headers={"Authorization": "Bearer k-two"}).status_code
        == 200
    )
    assert keyed.get("/v1/models/fd001", headers={"X-API-Key": "k-one"}).status_code == 200


def test_health_stays_open_with_keys(keyed):
    assert keyed.get("/health/live").status_code == 200
    assert keyed.get("/health/ready").status_code == 200


# What the README's configuration table promises: these need a key, the rest stay open.
KEYED_ROUTES = [("GET", "/v1/models"), ("GET", "/v1/models/fd001"), ("POST", "/v1/predict"),
                ("POST", "/v1/models/fd001/predict"), ("POST", "/v1/models/fd001/score"),
                ("POST", "/v1/models/reload"), ("GET", "/v2/models/fd001"), ("GET", "/v2/models/fd001/ready"),
                ("POST", "/v2/models/fd001/infer")]  # fmt: skip
OPEN_ROUTES = ["/health/live", "/health/ready", "/v2", "/v2/health/live", "/v2/health/ready", "/metrics", "/",
               "/docs"]  # fmt: skip


def test_every_v1_route_and_v2_model_route_needs_a_key_and_the_rest_stay_open(keyed):
    for method, path in KEYED_ROUTES:
        assert keyed.request(method, path).status_code == 401, path
    for path in OPEN_ROUTES:
        assert keyed.get(path).status_code == 200, path
    keyed_paths = {path for _, path in KEYED_ROUTES} | set(OPEN_ROUTES)
    routes = {getattr(r, "path", "") for r in keyed.app.routes}
    api_routes = {p for p in routes if p.startswith(("/v1", "/v2")) and "{model_version}" not in p}
    named = {p.replace("fd001", "{model}") for p in keyed_paths}
    assert api_routes <= named, f"routes the promise does not cover: {sorted(api_routes - named)}"


def test_api_keys_from_environment_are_comma_separated(monkeypatch):
    monkeypatch.setenv("RUL_API_KEYS", " a ,b,, ")
    assert Settings().api_keys == ["a", "b"]


def test_declared_body_over_limit_is_413():
    with _client(max_body_bytes=1000) as c:
        response = c.post("/v1/predict", json=EXAMPLE_REQUEST)
        assert response.status_code == 413
        assert response.json()["detail"].startswith("request body is ")
        assert response.json()["detail"].endswith("bytes; the limit is 1000 bytes (RUL_MAX_BODY_BYTES)")


def test_chunked_body_over_limit_is_413():
    def chunks():
        for _ in range(10):
            yield b"x" * 500

    with _client(max_body_bytes=1000) as c:
        response = c.post("/v1/predict", content=chunks(), headers={"content-type": "application/json"})
        assert response.status_code == 413
        assert response.json() == {
            "detail": "request body is over 1000 bytes; the limit is 1000 bytes (RUL_MAX_BODY_BYTES)"
        }
        assert c.get("/health/live").status_code == 200  # and the server keeps serving


def test_too_many_windows_and_too_long_window_are_413():
    with _client(max_windows_per_request=1, max_cycles_per_window=49) as c:
        response = c.post("/v1/predict", json=EXAMPLE_REQUEST)
        assert response.status_code == 413
        assert response.json() == {
            "detail": "request has 2 windows; the limit is 1 (RUL_MAX_WINDOWS_PER_REQUEST)"
        }
        one = {"windows": EXAMPLE_REQUEST["windows"][:1]}
        response = c.post("/v1/predict", json=one)
        assert response.status_code == 413
        assert response.json() == {
            "detail": "window 0 (id 'fd001-test-unit-9') has 50 cycles; the limit is 49 "
            "(RUL_MAX_CYCLES_PER_WINDOW); the model reads only the last cycles anyway"
        }


def test_named_column_windows_obey_the_same_cycle_limit_on_both_parsers():
    features = ["setting_1", "setting_2", "setting_3", *(f"s_{i}" for i in range(1, 22))]
    window = EXAMPLE_REQUEST["windows"][0]
    columns = {name: [row[i] for row in window["readings"]] for i, name in enumerate(features)}
    small = {"windows": [{"id": "named", "readings": columns}]}
    # past fast_json.INLINE_BYTES (the streaming parser's path), in short stretches between braces
    large = {**small, "padding": [{}] * 100_000}
    with _client(max_cycles_per_window=49) as c:
        for body in (json.dumps(small), json.dumps(large)):
            response = c.post("/v1/predict", content=body, headers={"Content-Type": "application/json"})
            assert response.status_code == 413, response.text
            assert response.json()["detail"].startswith(
                "window 0 (id 'named') has 50 cycles; the limit is 49"
            )


def test_cors_allows_configured_origin_only():
    with _client(cors_origins=["https://dash.example"]) as c:
        ok = c.options(
            "/v1/predict", headers={"Origin": "https://dash.example", "Access-Control-Request-Method": "POST"}
        )
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://dash.example"
        other = c.options(
            "/v1/predict", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
        )
        assert "access-control-allow-origin" not in other.headers


def test_fleet_upload_over_limit_is_413(cmapss_dir):
    raw = (cmapss_dir / "test_FD001.txt.gz").read_bytes()
    with _client(max_body_bytes=len(raw) // 2) as c:
        response = c.post("/v1/models/fd001/score", files={"file": ("test_FD001.txt.gz", raw)})
        assert response.status_code == 413 and "RUL_MAX_BODY_BYTES" in response.json()["detail"]


def test_a_request_without_a_valid_key_is_refused_before_its_body_is_read():
    import asyncio

    from service.transport.key_gate import Backoff, KeyGate

    reached: list[str] = []

    async def app(scope, receive, send):  # the service behind the gate: would read the body
        reached.append(scope["path"])

    async def never_receive():
        raise AssertionError("the gate read the body")

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    gate = KeyGate(app, ["k-one"], Backoff(5, 300))
    scope = {"type": "http", "method": "POST", "path": "/v1/predict", "client": ("10.0.0.1", 1),
             "headers": [(b"content-length", b"54000000")]}  # fmt: skip
    asyncio.run(gate(scope, never_receive, send))
    assert sent[0]["status"] == 401 and reached == []
    sent.clear()
    asyncio.run(gate({**scope, "path": "/v2/models/fd001/infer", "headers": [(b"x-api-key", b"nope")]},
                     never_receive, send))  # fmt: skip
    assert sent[0]["status"] == 403 and json.loads(sent[1]["body"]) == {"error": "API key not accepted"}
    asyncio.run(gate({**scope, "headers": [(b"authorization", b"Bearer k-one")]}, never_receive, send))
    assert reached == ["/v1/predict"]  # a right key passes, to the app that reads the body


def test_a_large_body_without_a_key_gets_its_401_at_once_through_http(keyed):
    import time

    body = b'{"windows": [' + b",".join([b'{"readings": [[1.0]]}'] * 2_000_000) + b"]}"  # ~42 MB
    started = time.perf_counter()
    response = keyed.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 401 and time.perf_counter() - started < 2.0  # parsing it took 2.75 s
    broken = keyed.post("/v1/predict", content=b"{not json", headers={"content-type": "application/json"})
    assert broken.status_code == 401  # not the parser's 400: the key is checked first


def test_repeated_wrong_keys_from_one_address_wait_longer_each_time_and_others_do_not():
    from service.transport.key_gate import Backoff

    now = [100.0]
    backoff = Backoff(free_failures=3, max_wait_s=8, clock=lambda: now[0])
    for _ in range(3):
        backoff.failed("a")
    assert backoff.wait("a") == 0  # within the free failures
    waits = []
    for _ in range(6):
        backoff.failed("a")
        waits.append(backoff.wait("a"))
    assert waits == [1, 2, 4, 8, 8, 8]  # doubling, capped
    assert backoff.wait("b") == 0  # another client is not slowed
    now[0] += 8
    assert backoff.wait("a") == 0
    backoff.failed("a")
    assert backoff.wait("a") == 8  # the record stays: the next wrong key waits the longest again
    long = "x" * 60_000  # a forwarded address can be anything: stored as a bounded hash
    backoff.failed(long)
    assert backoff.wait(long) == 0 and all(len(k) <= 64 for k in backoff.failures)


def test_a_guessing_client_gets_429_with_retry_after_and_open_routes_keep_answering():
    with _client(api_keys=["k-one"], auth_free_failures=2, auth_max_backoff_s=60) as c:
        wrong = {"X-API-Key": "guess"}
        assert [c.get("/v1/models", headers=wrong).status_code for _ in range(3)] == [403, 403, 403]
        slowed = c.get("/v1/models", headers=wrong)
        assert slowed.status_code == 429 and slowed.headers["retry-after"] == "1"
        assert slowed.json()["detail"].startswith("too many wrong API keys from testclient; retry after 1 s")
        assert c.get("/v1/models").status_code == 429  # a missing key waits too
        # a right key from the same address is served: whoever shares it (a proxy, a NAT)
        assert c.get("/v1/models", headers={"X-API-Key": "k-one"}).status_code == 200
        assert c.get("/health/live").status_code == 200  # open routes are not gated


@pytest.mark.parametrize("trusted", [[], ["127.0.0.1"]], ids=["no proxy trusted", "loopback trusted"])
def test_forwarded_addresses_count_only_from_a_trusted_proxy(trusted):
    """RUL_TRUSTED_PROXIES: X-Forwarded-For names the client only when the connection comes
    from a trusted proxy (then the client is the right-most address it did not add); with none
    trusted (the default) a client cannot dodge the backoff, nor aim it at another address, by
    sending the header."""
    import httpx

    from tests.service.conftest import live_server

    settings = Settings(models_dir=MODELS_DIR, providers="cpu", api_keys=["k"], auth_free_failures=1,
                        trusted_proxies=trusted)  # fmt: skip
    with live_server(settings) as url, httpx.Client(base_url=url) as client:

        def wrong(forwarded: str) -> int:
            headers = {"x-api-key": "guess", "x-forwarded-for": forwarded}
            return client.get("/v1/models", headers=headers).status_code

        assert [wrong("10.0.0.1"), wrong("10.0.0.1")] == [403, 403]
        after = wrong("10.0.0.1")
        other = wrong("6.6.6.6, 10.0.0.2")  # the right-most address the proxy did not add: 10.0.0.2
        if trusted:
            assert (after, other) == (429, 403)  # each forwarded client has its own record
        else:
            assert (after, other) == (429, 429)  # one client: the TCP peer, whatever the header says
        right = client.get("/v1/models", headers={"x-api-key": "k", "x-forwarded-for": "10.0.0.1"})
        assert right.status_code == 200
