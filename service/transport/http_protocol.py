"""uvicorn's httptools protocol with the guards it lacks, so that no client can hold the server:
- request headers are limited in size (431), counted as they arrive, before they are parsed
  whole (a 64 MB header took 6 s and stalled every other request);
- a request must send its headers within `header_timeout` seconds of its first byte (or of
  the connection, for the first request) and its body within `body_timeout` seconds of its
  headers, else 408 and the connection is closed: a client sending a byte a second, or a body
  shorter than its Content-Length, is cut off instead of held open for ever.
- an answer the client does not drain within `write_timeout` seconds (the transport's write
  buffer stays above its high-water mark) closes the connection: a client that requests a large
  answer and never reads it holds nothing for long;
- at most about twice `max_buffered` bytes of an answer wait in a connection's write buffer:
  the high-water mark is set to it and `ChunkedAnswers` (chunked_answers.py) hands an
  answer's body to uvicorn in pieces of that size, each written only once the buffer is below
  the mark (a 7.6 MB answer
  sent in one piece sat whole in the buffer of a client that did not read it);
- one client address may hold at most `max_per_client` connections; a request on a further one
  gets 503 and the connection is closed (what a reverse proxy's per-client limit would otherwise
  do), unless it asks a probe: behind a NodePort the kubelet shares the node's address;
- chunked trailers and chunk framing count against the header limit as they arrive (431): a
  96 MiB trailer line, which httptools concatenates piece by piece, held the loop for seconds;
- the liveness and readiness probes (/health/*, /v2/health/*) are served even when uvicorn's
  connection limit (RUL_MAX_CONNECTIONS) is reached, so that an orchestrator does not restart a
  healthy but busy pod.
Idle keep-alive connections are closed by uvicorn's own `timeout_keep_alive`.
"""

import asyncio
import inspect
import re
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

from uvicorn.protocols.http import httptools_impl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.core.threads import OpenRequests
from service.transport.errors import error_body

# The uvicorn releases this subclass is tested with (pyproject pins them): it relies on
# HttpToolsProtocol's callbacks and on attributes that uvicorn does not document.
TESTED_UVICORN = "0.54"
CALLBACKS = ("connection_made", "connection_lost", "data_received", "on_message_begin",
             "on_headers_complete", "on_body", "on_message_complete", "pause_writing",
             "resume_writing")  # fmt: skip
# attribute -> the HttpToolsProtocol method that sets it
ATTRIBUTES = {"loop": "__init__", "logger": "__init__", "cycle": "__init__", "transport": "connection_made",
              "connections": "__init__", "client": "connection_made", "limit_concurrency": "__init__",
              "url": "on_url"}  # fmt: skip
PROBES = ("/health/live", "/health/ready", "/v2/health/live", "/v2/health/ready")

END_OF_HEADERS = b"\r\n\r\n"
# A chunk's size line and the line end after its data, with room for a short extension: what
# a chunked body may send besides its data before the rest counts against the header limit.
CHUNK_FRAMING_BYTES = 64
# A connection over its address's cap is kept this long for its request line (a probe's comes
# at once), then answered 503 and closed: idle connections over the cap hold nothing for long.
OVER_LIMIT_WAIT_S = 1.0


def _response(status: int, reason: str, detail: str, path: str | None) -> bytes:
    body = error_body(path, detail)
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")  # fmt: skip
    return head.encode("ascii") + body


def missing_internals() -> list[str]:
    """What this module relies on that the installed uvicorn lacks (empty when all is there)."""
    missing = [
        f"HttpToolsProtocol.{name}()"
        for name in CALLBACKS
        if not callable(getattr(HttpToolsProtocol, name, None))
    ]
    for attribute, method in ATTRIBUTES.items():
        code = getattr(HttpToolsProtocol, method, None)
        # an assignment, annotated or not: `self.cycle: RequestResponseCycle = None`
        if code is None or not re.search(rf"self\.{attribute}\b[^=\n]*=[^=]", inspect.getsource(code)):
            missing.append(f"HttpToolsProtocol.{attribute} (set in {method})")
    if "response_started" not in inspect.getsource(httptools_impl.RequestResponseCycle):
        missing.append("RequestResponseCycle.response_started")
    return missing


def check_uvicorn() -> None:
    """Refuse to start, in one sentence, on a uvicorn whose internals this module cannot use."""
    missing = missing_internals()
    if missing:
        raise RuntimeError(
            f"uvicorn {version('uvicorn')} lacks what the connection guards "
            "(service/transport/http_protocol.py) "
            f"rely on: {', '.join(missing)}; install the tested release: "
            f"pip install 'uvicorn[standard]~={TESTED_UVICORN}.0'"
        )


@dataclass(frozen=True)
class ProtocolLimits:
    """The connection guards' limits (seconds, bytes, connections)."""

    max_header_bytes: int
    header_timeout: float
    body_timeout: float
    write_timeout: float = 30.0
    max_per_client: int = 100
    max_buffered: int = 256 * 1024

    def headers_late(self) -> str:
        return f"the request headers did not arrive within {self.header_timeout:g} s (RUL_HEADER_TIMEOUT_S)"


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with the guards above; `guarded_protocol` makes the subclass that
    carries the configured limits."""

    limits: "ProtocolLimits"
    requests: OpenRequests | None = None  # told which requests the server holds (threads.py)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reading_headers = True
        self.header_bytes = 0
        self.tail = b""  # the last bytes seen, to find END_OF_HEADERS across packets
        self.start = b""  # this request's first bytes: its path, for a refusal before the parser has it
        self.read_timer: asyncio.TimerHandle | None = None
        self.refused = False  # answered and closing: what else arrives is dropped
        self.write_timer: asyncio.TimerHandle | None = None  # armed while the client is not reading
        self.over_limit = ""  # why this connection is over its address's limit: refused unless a probe
        self.after_headers = 0  # this request's bytes after its headers, as they arrive
        self.body_bytes = 0  # of them, the body the parser found (the rest: chunk framing, trailers)
        self.chunks = 0

    def _arm(self, seconds: float, detail: str) -> None:
        self._disarm()
        self.read_timer = self.loop.call_later(seconds, self._timed_out, detail)

    def _disarm(self) -> None:
        if self.read_timer is not None:
            self.read_timer.cancel()
            self.read_timer = None

    def _refuse(self, status: int, reason: str, detail: str) -> None:
        """Answer and close. The close waits a moment, dropping what the client still
        sends: closing a socket with unread data resets it, and the client would never
        read the answer."""
        self._disarm()
        if self.transport.is_closing() or self.refused:
            return
        self.refused = True
        if self.cycle is None or not self.cycle.response_started:
            path = self._path()
            self.transport.write(_response(status, reason, detail, path))
        self.loop.call_later(1.0, self.transport.close)

    def _path(self) -> str:
        """The request's path (its error shape depends on it), from the parser or, before the
        parser has read it, from the request line's first bytes; "" where none was sent."""
        url = getattr(self, "url", b"") or (self.start.split(b" ", 2)[1:2] or [b""])[0]
        return url.split(b"?", 1)[0].decode("latin-1")

    def _timed_out(self, detail: str) -> None:
        self.read_timer = None
        self.logger.warning("closing a connection: %s", detail)
        self._refuse(408, "Request Timeout", detail)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        transport.set_write_buffer_limits(high=self.limits.max_buffered)
        if self.requests is not None:
            self.requests.bind(self.tasks)  # uvicorn's set of request tasks, one per server
        address = self.client[0] if self.client else None
        peers = [getattr(c, "client", None) for c in self.connections]
        same = sum(1 for peer in peers if peer and peer[0] == address) if address else 0
        if same > self.limits.max_per_client:
            # decided once the request line names the path: the probes are still answered
            limit = self.limits.max_per_client
            self.over_limit = (f"{same - 1} connections from {address} are open; the limit per client "
                               f"address is {limit} (RUL_MAX_CONNECTIONS_PER_CLIENT)")  # fmt: skip
            # a probe sends its request line at once; an idle connection over the cap is closed
            self._disarm()
            self.read_timer = self.loop.call_later(OVER_LIMIT_WAIT_S, self._refuse_over_limit)
            return
        self._arm(self.limits.header_timeout, self.limits.headers_late())

    def _refuse_over_limit(self) -> None:
        self.read_timer = None
        self.logger.warning("closing a connection: %s", self.over_limit)
        self._refuse(503, "Service Unavailable", self.over_limit)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self.write_timer is not None:
            self.write_timer.cancel()
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.write_timer is None:
            self.write_timer = self.loop.call_later(self.limits.write_timeout, self._write_timed_out)

    def resume_writing(self) -> None:
        if self.write_timer is not None:
            self.write_timer.cancel()
            self.write_timer = None
        super().resume_writing()

    def _write_timed_out(self) -> None:
        """The client has not read the answer for write_timeout seconds: drop the connection
        and what is buffered for it (a close would wait to flush it)."""
        self.write_timer = None
        self.logger.warning("closing a connection: the client did not read its answer within %g s "
                            "(RUL_WRITE_TIMEOUT_S)", self.limits.write_timeout)  # fmt: skip
        self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        if self.reading_headers:
            if not self._headers_within_limits(data):
                return
        else:
            self.after_headers += len(data)
        super().data_received(data)
        framing = self.after_headers - self.body_bytes - CHUNK_FRAMING_BYTES * self.chunks
        if not self.reading_headers and framing > self.limits.max_header_bytes and not self.refused:
            limit = self.limits.max_header_bytes
            self._refuse(431, "Request Header Fields Too Large", f"the request sends over {limit} bytes "
                         f"besides its headers and body (chunked trailers); the limit is {limit} "
                         "(RUL_MAX_HEADER_BYTES)")  # fmt: skip

    def _headers_within_limits(self, data: bytes) -> bool:
        """Count the header bytes of `data` (and what follows the headers in it), before the
        parser reads them; refuse a request whose headers are over the limit, or one whose
        connection is over its address's limit once its path is known (not a probe)."""
        if len(self.start) < 2048:
            self.start += data[: 2048 - len(self.start)]
        if self.over_limit and b"\r\n" in self.start:
            if self._path() not in PROBES:
                self.logger.warning("refusing a request: %s", self.over_limit)
                self._refuse(503, "Service Unavailable", self.over_limit)
                return False
            self.over_limit = ""  # a probe: answered as any other connection's
            self._arm(self.limits.header_timeout, self.limits.headers_late())
        seen = self.tail + data
        end = seen.find(END_OF_HEADERS)
        if end < 0:
            self.header_bytes += len(data)
        else:
            self.header_bytes += max(end + len(END_OF_HEADERS) - len(self.tail), 0)
            self.after_headers = len(seen) - end - len(END_OF_HEADERS)  # the body's first bytes
        self.tail = seen[-(len(END_OF_HEADERS) - 1) :]
        if self.header_bytes > self.limits.max_header_bytes:
            limit = self.limits.max_header_bytes
            self._refuse(431, "Request Header Fields Too Large", f"the request headers are over {limit} "
                         f"bytes; the limit is {limit} (RUL_MAX_HEADER_BYTES)")  # fmt: skip
            return False
        return True

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        super().on_body(body)

    def on_chunk_header(self) -> None:
        """httptools' callback for each chunk of a chunked body (not uvicorn's): its framing
        is not counted as trailer bytes."""
        self.chunks += 1

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self.reading_headers:  # a further request on a kept-alive connection
            self.reading_headers, self.header_bytes, self.tail, self.start = True, 0, b"", b""
            self.after_headers = self.body_bytes = self.chunks = 0
            self._arm(self.limits.header_timeout, self.limits.headers_late())

    def on_headers_complete(self) -> None:
        self.reading_headers = False
        late = self.limits.body_timeout
        self._arm(late, f"the request body did not arrive within {late:g} s (RUL_BODY_TIMEOUT_S): shorter "
                        "than its Content-Length?")  # fmt: skip
        if self.url.split(b"?", 1)[0].decode("latin-1") not in PROBES:
            super().on_headers_complete()
            return
        limit, self.limit_concurrency = self.limit_concurrency, None  # probes pass the limit
        try:
            super().on_headers_complete()
        finally:
            self.limit_concurrency = limit

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()


def guarded_protocol(
    max_header_bytes: int,
    header_timeout: float,
    body_timeout: float,
    write_timeout: float = 30.0,
    max_per_client: int = 100,
    max_buffered: int = 256 * 1024,
    requests: OpenRequests | None = None,
) -> type:
    """The protocol class for uvicorn's `http` setting, with these limits (seconds, bytes,
    connections); `requests`: the app's OpenRequests, bound to the server's request tasks."""
    check_uvicorn()
    limits = ProtocolLimits(max_header_bytes, header_timeout, body_timeout, write_timeout, max_per_client,
                            max_buffered)  # fmt: skip
    return type(
        "GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"limits": limits, "requests": requests}
    )
