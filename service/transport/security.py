"""Request safety: optional API keys and a request-body size limit.

- API keys (RUL_API_KEYS, comma-separated): every /v1 and /v2/models route needs
  `Authorization: Bearer <key>` or `X-API-Key: <key>` (whitespace around the key trimmed in
  both; the Authorization header wins when both are sent); missing -> 401, not accepted -> 403,
  answered by key_gate.py from the headers, before the body. Keys are compared in
  constant time (hmac.compare_digest) against every configured key, so the answer time does
  not tell how much of a guess was right. Health, docs and metrics stay open; /health/ready
  tells a caller without a key why it is not ready only by category.
- Body limit (RUL_MAX_BODY_BYTES): a declared Content-Length over the limit is refused before
  reading; a chunked body is counted as it arrives and refused once it passes the limit.
- Body budgets, across requests: the bytes of request bodies held at once in memory
  (RUL_MAX_BODIES_IN_MEMORY_BYTES) and of fleet uploads spooled to disk
  (RUL_MAX_UPLOADS_ON_DISK_BYTES; multipart bodies, which Starlette writes to a temporary
  file past 1 MB). A declared body is reserved whole before it is read, a chunked one as it
  arrives; one that would take a budget over its total gets 503 naming the setting, with
  Retry-After, and what a request held is given back when it ends. Each limit bounds one
  request; the budgets bound their sum (40 clients each withholding the last byte of a
  63 MiB body held 2.8 GB).
"""

import asyncio
import hmac
from collections.abc import Mapping

from fastapi import HTTPException, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.core.memory import collect_and_trim
from service.core.threads import in_worker
from service.state import service_state
from service.transport.errors import send_error


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a request presents (headers by lower-case name), surrounding whitespace trimmed
    the same way in both headers. `Authorization: Bearer <key>` wins when both are sent."""
    scheme, _, credentials = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip()
    return headers.get("x-api-key", "").strip()


def accepted(presented: str, keys: list[str]) -> bool:
    matched = False
    for key in keys:  # no early exit: the time taken does not depend on which key matched
        matched |= hmac.compare_digest(presented.encode(), key.encode())
    return matched


def has_valid_key(request: Request) -> bool:
    """Whether the request presents one of the configured keys (False when none are set)."""
    keys = service_state(request.app).settings.api_keys
    presented = presented_key(request.headers)
    return bool(keys and presented and accepted(presented, keys))


class BodyTooLarge(HTTPException):
    """Raised from `receive`; an HTTPException so FastAPI's body parsing passes it on as a 413
    instead of turning it into a 400."""

    def __init__(self, max_bytes: int):
        super().__init__(413, f"request body is over {max_bytes} bytes; the limit is {max_bytes} bytes "
                              "(RUL_MAX_BODY_BYTES)")  # fmt: skip


# A refused body is not read: the connection is closed after the answer, rather than kept alive
# while uvicorn reads and discards the rest (40 clients' 60 MiB bodies held the loop 0.2 s).
CLOSE = ("connection", "close")
RETRY = ("retry-after", "1")
TRIM_AFTER_BYTES = 8 * 1024 * 1024  # bodies at least this large: the C heap trimmed after them
RELEASED_AFTER_S = 0.2  # by then the request that held the body has unwound


_TRIMS: set[asyncio.Future] = set()  # trims under way (a task nobody holds may be collected)


def trim_once_released() -> None:
    """Trim the C heap a moment after a large body's request ends. Not at once: a body cut
    off by its client is still referenced by the exception unwinding through the middlewares
    (and the 500 they try to send), so a trim now finds its pages in use; 40 withheld 60 MiB
    bodies left the RSS 2.1x idle that way (bench/abuse_round3.py)."""

    def start() -> None:
        trim = asyncio.ensure_future(in_worker(collect_and_trim))
        _TRIMS.add(trim)
        trim.add_done_callback(_TRIMS.discard)

    asyncio.get_running_loop().call_later(RELEASED_AFTER_S, start)


def closing(start: Message) -> Message:
    """A response start that closes its connection (unless it already says what to do with it)."""
    headers = start.get("headers", [])
    if any(name.lower() == b"connection" for name, _ in headers):
        return start
    return {**start, "headers": [*headers, (b"connection", b"close")]}


class BodyBudget:
    """Bytes of request bodies held at once, across every request, and their total allowed."""

    def __init__(self, total: int, setting: str, where: str):
        self.total, self.setting, self.where = total, setting, where
        self.held = 0

    def take(self, size: int) -> bool:
        if self.held + size > self.total:
            return False
        self.held += size
        return True

    def give(self, size: int) -> None:
        self.held -= size

    def refusal(self, size: int) -> str:
        return (f"request bodies {self.where} would exceed {self.total} bytes ({self.setting}): "
                f"{self.held} bytes are held by other requests and this one needs {size} more; "
                "retry shortly")  # fmt: skip


class OverBudget(HTTPException):
    """Raised from `receive` when a chunked body takes its budget over its total."""

    def __init__(self, detail: str):
        super().__init__(503, detail, headers={"Retry-After": "1"})


class BodySizeLimit:
    """ASGI middleware answering 413 for request bodies over `max_bytes`, and 503 for one that
    would take its budget (memory, or disk for multipart uploads) over its total."""

    def __init__(self, app: ASGIApp, max_bytes: int, memory: BodyBudget, disk: BodyBudget):
        self.app = app
        self.max_bytes = max_bytes
        self.memory, self.disk = memory, disk

    async def _refuse(self, send: Send, path: str, size: str) -> None:
        detail = f"request body is {size}; the limit is {self.max_bytes} bytes (RUL_MAX_BODY_BYTES)"
        await send_error(send, path, 413, detail, [CLOSE])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send, scope["path"], f"{int(declared)} bytes")
            return
        content_type = headers.get(b"content-type", b"").lower()
        budget = self.disk if content_type.startswith(b"multipart/form-data") else self.memory
        held = 0
        if declared is not None and declared.isdigit() and int(declared) > 0:
            if not budget.take(int(declared)):
                await send_error(send, scope["path"], 503, budget.refusal(int(declared)), [RETRY, CLOSE])
                return
            held = int(declared)
        received = 0
        started = False
        # a body still on its way when the answer starts is not read to its end: the connection
        # closes after the answer (a 404, a 503, ... must not make uvicorn drain 60 MiB for a
        # keep-alive that the client would spend on the next upload)
        body_done = not (declared not in (None, b"0") or b"chunked" in headers.get(b"transfer-encoding", b""))

        async def counting_receive() -> Message:
            nonlocal received, held, body_done
            message = await receive()
            if message["type"] == "http.request":
                body_done = body_done or not message.get("more_body", False)
                chunk = len(message.get("body", b""))
                received += chunk
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
                if received > held:  # chunked (or longer than declared): taken as it comes
                    if not budget.take(received - held):
                        raise OverBudget(budget.refusal(received - held))
                    held = received
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = message if body_done else closing(message)
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send, scope["path"], f"over {self.max_bytes} bytes")
        except OverBudget as exc:
            if not started:
                await send_error(send, scope["path"], 503, str(exc.detail), [RETRY, CLOSE])
        finally:
            budget.give(held)
            if held >= TRIM_AFTER_BYTES:  # a large body's pages back to the system (core/memory.py)
                trim_once_released()
