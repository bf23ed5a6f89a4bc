"""No client can hold a connection open for ever or send unbounded headers: through a real
uvicorn server with the guarded protocol (service/transport/http_protocol.py), on raw sockets."""

import contextlib
import json
import socket
import threading
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


@pytest.mark.parametrize("shape", ["many units", "one long unit"])
def test_scoring_stops_when_its_client_goes_away(cmapss_dir, shape):
    """A fleet whose every-cycle scoring takes minutes (many units, or one unit of 80 000
    cycles); the client hangs up after two seconds. With one scoring job allowed, a second
    upload is answered (not 503) within seconds: the first job stopped rather than run on for
    nobody, also in the middle of a unit (its trajectory is made a piece at a time)."""
    import gzip

    import httpx

    text = gzip.decompress((cmapss_dir / "train_FD001.txt.gz").read_bytes()).decode().splitlines()
    if shape == "many units":
        copies = [
            f"{int(line.split()[0]) + 1000 * k} {line.split(' ', 1)[1]}" for k in range(15) for line in text
        ]  # ~300 000 trajectory points
    else:  # unit 1, cycles 1 to 80 000: the readings of the training file one after the other
        rows = [line.split(" ", 2)[2] for line in text]
        copies = [f"1 {cycle + 1} {rows[cycle % len(rows)]}" for cycle in range(80_000)]
    fleet = gzip.compress(("\n".join(copies) + "\n").encode())
    settings = Settings(models_dir=MODELS_DIR, providers="cpu", max_concurrent_scores=1)
    with live_server(settings) as url:
        port = int(url.rsplit(":", 1)[1])
        boundary = "b0undary"
        part = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="f.gz"\r\n\r\n'
        body = part.encode() + fleet + f"\r\n--{boundary}--\r\n".encode()
        head = "POST /v1/models/fd001/score?all_cycles=true HTTP/1.1\r\nHost: t\r\n"
        head += f"Content-Length: {len(body)}\r\n"
        head += f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
        with socket.create_connection(("127.0.0.1", port)) as conn:
            conn.sendall(head.encode() + body)
            time.sleep(2.0)  # read and scoring under way
        small = (cmapss_dir / "test_FD001.txt.gz").read_bytes()
        deadline, status = time.monotonic() + 20, None
        while time.monotonic() < deadline:
            status = httpx.post(
                url + "/v1/models/fd001/score", files={"file": ("t.gz", small)}, timeout=30
            ).status_code
            if status != 503:
                break
            time.sleep(0.5)
        assert status == 200


def test_the_installed_uvicorn_has_what_the_connection_guards_rely_on():
    from service.transport.http_protocol import missing_internals

    assert missing_internals() == []


def test_a_uvicorn_without_those_internals_is_refused_at_start_in_one_sentence(monkeypatch):
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from service.transport import http_protocol

    monkeypatch.delattr(HttpToolsProtocol, "on_headers_complete")
    assert http_protocol.missing_internals() == ["HttpToolsProtocol.on_headers_complete()"]
    with pytest.raises(RuntimeError, match=r"^uvicorn 0\.54\.\d+ lacks what the connection guards "
                       r".* rely on: HttpToolsProtocol\.on_headers_complete\(\); install the tested release: "
                       r"pip install 'uvicorn\[standard\]~=0\.54\.0'$"):  # fmt: skip
        http_protocol.guarded_protocol(1024, 1.0, 1.0)


def _get(port: int, path: str, source: str = "127.0.0.1") -> bytes:
    """One GET over a fresh connection from `source` (any 127.x address is this host)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0)) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
        return data


def test_one_address_gets_its_cap_of_connections_and_other_addresses_are_still_served():
    """Over its address's cap, a request is refused (503 naming the setting) unless it asks a
    probe: behind a NodePort the kubelet's probes come from the node's address."""
    settings = Settings(models_dir=MODELS_DIR, providers="cpu", max_connections_per_client=5)
    with live_server(settings) as url:
        port = int(url.rsplit(":", 1)[1])
        held = [
            socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.2", 0)) for _ in range(5)
        ]
        try:
            time.sleep(0.3)
            refused = _get(port, "/v1/models", source="127.0.0.2")
            assert refused.startswith(b"HTTP/1.1 503") and b"RUL_MAX_CONNECTIONS_PER_CLIENT" in refused
            assert b"5 connections from 127.0.0.2 are open; the limit per client address is 5" in refused
            for probe in ("/health/live", "/health/ready", "/v2/health/live"):
                assert _get(port, probe, source="127.0.0.2").startswith(b"HTTP/1.1 200"), probe
            assert _get(port, "/v1/models", source="127.0.0.3").startswith(b"HTTP/1.1 200")
        finally:
            for conn in held:
                conn.close()
        time.sleep(0.3)
        assert _get(port, "/health/live", source="127.0.0.2").startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("trailer", [b"x-t: " + b"a" * (8 << 20) + b"\r\n",
                                     b"".join(b"t%d: v\r\n" % i for i in range(400_000))],
                         ids=["one long trailer", "many small trailers"])  # fmt: skip
def test_chunked_trailers_count_against_the_header_limit_without_a_key(trailer):
    """A chunked body's trailers arrive after the headers (the app may have answered already:
    405, 401); they are counted as they arrive and the connection is closed once they pass
    the header limit (431 if nothing was answered yet), on any path and before any key check:
    the parser never gets the megabytes it would concatenate, and liveness keeps answering."""
    settings = Settings(models_dir=MODELS_DIR, providers="cpu", api_keys=["k"], max_header_bytes=16_384)
    with live_server(settings) as url:
        port = int(url.rsplit(":", 1)[1])
        for path in ("/health/live", "/v1/models/fd001/predict"):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
                head = f"POST {path} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                conn.sendall(head.encode() + b"2\r\n{}\r\n0\r\n")
                started = time.monotonic()
                with contextlib.suppress(OSError):  # closed while the trailer is still being sent
                    conn.sendall(trailer + b"\r\n")
                answer = b""
                with contextlib.suppress(OSError):
                    while chunk := conn.recv(65536):
                        answer += chunk
                closed_after = time.monotonic() - started
            assert answer.startswith(b"HTTP/1.1 4"), answer[:200]
            assert closed_after < 3, closed_after  # dropped, not parsed to the end (keep-alive: 5 s)
            probe = time.monotonic()
            assert _get(port, "/health/live").startswith(b"HTTP/1.1 200")
            assert time.monotonic() - probe < 1.0


def test_probes_answer_when_the_connection_limit_is_reached():
    settings = Settings(models_dir=MODELS_DIR, providers="cpu", max_connections=4)
    with live_server(settings) as url:
        port = int(url.rsplit(":", 1)[1])
        held = [
            socket.create_connection(("127.0.0.1", port), source_address=(f"127.0.1.{i}", 0))
            for i in range(6)
        ]
        try:
            time.sleep(0.3)
            assert _get(port, "/v1/models", source="127.0.2.1").startswith(b"HTTP/1.1 503")  # over the limit
            for probe in ("/health/live", "/health/ready", "/v2/health/live", "/v2/health/ready"):
                assert _get(port, probe, source="127.0.2.1").startswith(b"HTTP/1.1 200"), probe
        finally:
            for conn in held:
                conn.close()


def test_an_answer_the_client_does_not_drain_within_the_write_timeout_drops_the_connection():
    """The transport calls pause_writing when its buffer passes the high-water mark (the client
    is not reading) and resume_writing when it drains: the connection is aborted if it stays
    paused for write_timeout. A loopback socket buffers more than a test's answer, so the
    protocol is driven as the transport drives it."""
    import asyncio
    import logging

    from service.transport.http_protocol import guarded_protocol

    class Transport:
        aborted = False

        def abort(self):
            self.aborted = True

    class Flow:
        def pause_writing(self):
            pass

        def resume_writing(self):
            pass

    async def scenario(drain_after: float | None) -> bool:
        cls = guarded_protocol(1024, 10.0, 10.0, write_timeout=0.2)
        protocol = cls.__new__(cls)  # no uvicorn server: only what these two callbacks use
        protocol.loop, protocol.flow, protocol.transport = asyncio.get_running_loop(), Flow(), Transport()
        protocol.logger, protocol.write_timer = logging.getLogger("test"), None
        protocol.pause_writing()
        if drain_after is not None:
            await asyncio.sleep(drain_after)
            protocol.resume_writing()
        await asyncio.sleep(0.4)
        return protocol.transport.aborted

    assert asyncio.run(scenario(None)) is True  # never drained: dropped after 0.2 s
    assert asyncio.run(scenario(0.05)) is False  # drained in time: kept


def test_an_unread_answer_holds_at_most_two_pieces_in_its_write_buffer():
    """RUL_MAX_BUFFERED_BYTES: a client that does not read a 60 kB answer (the OpenAPI document)
    leaves at most about two pieces of 4 kB waiting in the server's buffer, not the whole
    answer; once it reads, the answer arrives whole. The kernel's buffers are made small on
    both sides, so that the server's own buffer is what fills."""
    import json

    from tests.service.conftest import live_uvicorn

    settings = Settings(models_dir=MODELS_DIR, providers="cpu", max_buffered_bytes=4096)
    with live_uvicorn(settings) as (url, server):
        conn = socket.socket()
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        conn.connect(("127.0.0.1", int(url.rsplit(":", 1)[1])))
        deadline = time.monotonic() + 5
        while not server.server_state.connections and time.monotonic() < deadline:
            time.sleep(0.01)
        (protocol,) = server.server_state.connections
        protocol.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        conn.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        time.sleep(1.0)
        waiting = protocol.transport.get_write_buffer_size()
        assert 0 < waiting <= 2 * 4096, waiting
        answer = b""
        conn.settimeout(5)
        while chunk := conn.recv(65536):
            answer += chunk
        conn.close()
    head, body = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK") and len(body) > 40_000
    assert json.loads(body)["openapi"]


def test_answers_reach_the_server_in_pieces_no_larger_than_the_cap():
    import asyncio

    from service.transport.chunked_answers import ChunkedAnswers

    whole, streamed = bytes(range(256)) * 400, b"x" * 25_000  # 102 400 bytes; 25 000

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if scope["path"] == "/whole":
            await send({"type": "http.response.body", "body": whole})
        else:
            await send({"type": "http.response.body", "body": streamed, "more_body": True})
            await send({"type": "http.response.body", "body": b"end", "more_body": False})

    def pieces(path: str) -> list[dict]:
        sent: list[dict] = []

        async def send(message):
            sent.append(message)

        asyncio.run(ChunkedAnswers(app, max_bytes=10_000)({"type": "http", "path": path}, None, send))
        return [m for m in sent if m["type"] == "http.response.body"]

    body = pieces("/whole")
    assert [len(m["body"]) for m in body] == [10_000] * 10 + [2_400]
    assert b"".join(m["body"] for m in body) == whole
    assert [m["more_body"] for m in body] == [True] * 10 + [False]
    body = pieces("/streamed")
    assert [len(m["body"]) for m in body] == [10_000, 10_000, 5_000, 3]
    assert [m.get("more_body") for m in body] == [True, True, True, False]


def test_a_large_predict_stops_when_its_client_goes_away(cmapss_dir):
    """A predict of 2 000 windows runs in pieces (RUL_PIECE_WINDOWS); its client hangs up:
    within about a second no further piece runs (the windows counted by /metrics stop
    growing), instead of the whole request running on for nobody."""
    import re

    from service.transport.schemas import EXAMPLE_REQUEST

    window = EXAMPLE_REQUEST["windows"][0]["readings"]
    body = json.dumps({"windows": [{"readings": window}] * 2000}).encode()
    settings = Settings(models_dir=MODELS_DIR, providers="cpu", piece_windows=8)

    def windows_run(port: int) -> float:
        text = _get(port, "/metrics").decode()
        return sum(float(v) for v in re.findall(r'rul_batch_size_windows_sum\{model="fd001"\} (\S+)', text))

    with live_server(settings) as url:
        port = int(url.rsplit(":", 1)[1])
        before = windows_run(port)
        with socket.create_connection(("127.0.0.1", port)) as conn:
            head = "POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            conn.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
            deadline = time.monotonic() + 20
            while windows_run(port) - before < 16:  # the first pieces are running
                assert time.monotonic() < deadline
                time.sleep(0.05)
        time.sleep(1.5)  # the client has gone: the request notices within a quarter second
        stopped_at = windows_run(port)
        time.sleep(1.5)
        assert windows_run(port) == stopped_at, "pieces kept running after the client left"
        assert stopped_at - before < 2000


def test_a_model_runs_on_the_loop_only_for_the_one_request_the_server_holds():
    """service/core/threads.py: the connection protocol tells the app which requests are open
    (uvicorn's request tasks); a lone one-window predict runs its model on the loop, and while
    another request is open (here: headers sent, body still missing) the same predict runs it
    in a worker thread, where concurrent requests batch."""
    import httpx

    from service.state import service_state
    from service.transport.schemas import EXAMPLE_REQUEST
    from tests.service.conftest import live_uvicorn

    one = {"windows": EXAMPLE_REQUEST["windows"][:1]}
    with live_uvicorn(Settings(models_dir=MODELS_DIR, providers="cpu")) as (url, server):
        predictor = service_state(server.config.app).served.models["fd001"]
        threads: list[str] = []
        observe = predictor.on_run
        predictor.on_run = lambda *args: (threads.append(threading.current_thread().name), observe(*args))
        assert httpx.post(url + "/v1/predict", json=one).status_code == 200
        with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))) as held:
            held.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n{")
            time.sleep(0.2)
            assert httpx.post(url + "/v1/predict", json=one).status_code == 200
    assert len(threads) == 2
    assert not threads[0].startswith("AnyIO worker"), threads
    assert threads[1].startswith("AnyIO worker"), threads


@pytest.mark.parametrize(
    "path, settings, status",
    [
        ("/v1/no-such-route", {}, b"404"),  # answered without reading the body
        ("/v1/models", {}, b"405"),  # a GET route
        ("/v1/predict", {"max_bodies_in_memory_bytes": 8 << 20}, b"503"),  # over the memory budget
    ],
)
def test_an_answer_given_before_the_body_is_read_closes_the_connection(path, settings, status):
    """A client that is answered while its body is still on its way is not kept alive: the
    server closes after the answer instead of reading (and discarding) the rest of a large body,
    so the client's sending fails at once rather than pushing 40 MiB through for nothing."""
    size = 40 << 20
    with live_server(Settings(models_dir=MODELS_DIR, providers="cpu", **settings)) as url:
        head = f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        head += f"Content-Length: {size}\r\n\r\n"
        with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))) as conn:
            conn.settimeout(5)
            conn.sendall(head.encode() + b"[" + b" " * (1 << 20))
            sent = 1 << 20
            with contextlib.suppress(OSError):
                while sent < size:
                    time.sleep(0.001)
                    sent += conn.send(b" " * (1 << 20))
            answer = b""
            with contextlib.suppress(OSError):
                while chunk := conn.recv(65536):
                    answer += chunk
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:200]
    assert b"connection: close" in answer.lower(), answer[:400]
    assert sent < size, "the server read the whole body of a request it had already answered"
