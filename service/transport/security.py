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
"""

import hmac
from collections.abc import Mapping

from fastapi import HTTPException, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


class BodySizeLimit:
    """ASGI middleware answering 413 for request bodies over `max_bytes`."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, send: Send, path: str, size: str) -> None:
        detail = f"request body is {size}; the limit is {self.max_bytes} bytes (RUL_MAX_BODY_BYTES)"
        await send_error(send, path, 413, detail)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send, scope["path"], f"{int(declared)} bytes")
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send, scope["path"], f"over {self.max_bytes} bytes")
