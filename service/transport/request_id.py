"""Request ids: an incoming `X-Request-ID` (if sane) or a new one, echoed in the response and
attached to every log record written while the request is handled."""

import contextvars
import itertools
import logging
import re
import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "x-request-id"
_SANE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")  # anything else is replaced, not logged verbatim
current_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
# New ids: a random prefix per process and a counter (unique without a system call per request,
# which uuid4 makes and which showed in profiles of small requests).
_PREFIX = secrets.token_hex(6)
_counter = itertools.count(1)


def new_request_id() -> str:
    return f"{_PREFIX}-{next(_counter):x}"


class RequestIdFilter(logging.Filter):
    """Adds `record.request_id` so formats can use %(request_id)s."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id.get()
        return True


class RequestId:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(HEADER.encode(), b"").decode("latin-1")
        request_id = incoming if _SANE.match(incoming) else new_request_id()
        token = current_request_id.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (HEADER.encode(), request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            current_request_id.reset(token)
