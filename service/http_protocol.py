"""uvicorn's httptools protocol with the guards it lacks, so that no client can hold the server:
- request headers are limited in size (431), counted as they arrive, before they are parsed
  whole (a 64 MB header took 6 s and stalled every other request);
- a request must send its headers within `header_timeout` seconds of its first byte (or of
  the connection, for the first request) and its body within `body_timeout` seconds of its
  headers, else 408 and the connection is closed: a client sending a byte a second, or a body
  shorter than its Content-Length, is cut off instead of held open for ever.
Idle keep-alive connections are closed by uvicorn's own `timeout_keep_alive`.
"""

import asyncio
import inspect
import json
import re
from importlib.metadata import version
from typing import Any

from uvicorn.protocols.http import httptools_impl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# The uvicorn releases this subclass is tested with (pyproject pins them): it relies on
# HttpToolsProtocol's callbacks and on attributes that uvicorn does not document.
TESTED_UVICORN = "0.54"
CALLBACKS = ("connection_made", "connection_lost", "data_received", "on_message_begin",
             "on_headers_complete", "on_message_complete")  # fmt: skip
# attribute -> the HttpToolsProtocol method that sets it
ATTRIBUTES = {"loop": "__init__", "logger": "__init__", "cycle": "__init__", "transport": "connection_made"}

END_OF_HEADERS = b"\r\n\r\n"


def _response(status: int, reason: str, detail: str) -> bytes:
    body = json.dumps({"detail": detail}).encode()
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
            f"uvicorn {version('uvicorn')} lacks what the connection guards (service/http_protocol.py) "
            f"rely on: {', '.join(missing)}; install the tested release: "
            f"pip install 'uvicorn[standard]~={TESTED_UVICORN}.0'"
        )


def guarded_protocol(max_header_bytes: int, header_timeout: float, body_timeout: float) -> type:
    """The protocol class for uvicorn's `http` setting, with these limits (seconds, bytes)."""
    check_uvicorn()
    headers_late = f"the request headers did not arrive within {header_timeout:g} s (RUL_HEADER_TIMEOUT_S)"

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.reading_headers = True
            self.header_bytes = 0
            self.tail = b""  # the last bytes seen, to find END_OF_HEADERS across packets
            self.read_timer: asyncio.TimerHandle | None = None
            self.refused = False  # answered and closing: what else arrives is dropped

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
                self.transport.write(_response(status, reason, detail))
            self.loop.call_later(1.0, self.transport.close)

        def _timed_out(self, detail: str) -> None:
            self.read_timer = None
            self.logger.warning("closing a connection: %s", detail)
            self._refuse(408, "Request Timeout", detail)

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm(header_timeout, headers_late)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self.refused:
                return
            if self.reading_headers:
                seen = self.tail + data
                end = seen.find(END_OF_HEADERS)
                self.header_bytes += (
                    len(data) if end < 0 else max(end + len(END_OF_HEADERS) - len(self.tail), 0)
                )
                self.tail = seen[-(len(END_OF_HEADERS) - 1) :]
                if self.header_bytes > max_header_bytes:
                    self._refuse(431, "Request Header Fields Too Large",
                                 f"the request headers are over {max_header_bytes} bytes; the limit is "
                                 f"{max_header_bytes} (RUL_MAX_HEADER_BYTES)")  # fmt: skip
                    return
            super().data_received(data)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if not self.reading_headers:  # a further request on a kept-alive connection
                self.reading_headers, self.header_bytes, self.tail = True, 0, b""
                self._arm(header_timeout, headers_late)

        def on_headers_complete(self) -> None:
            self.reading_headers = False
            self._arm(body_timeout, f"the request body did not arrive within {body_timeout:g} s "
                                    "(RUL_BODY_TIMEOUT_S): shorter than its Content-Length?")  # fmt: skip
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._disarm()
            super().on_message_complete()

    return GuardedHttpToolsProtocol
