"""With API keys set, a request to a route that needs one is answered before its body is read,
and a client that keeps guessing is slowed down.

This is the one key check (security.py compares the keys). It is ASGI middleware, not a
FastAPI dependency, because FastAPI reads and parses a body before it solves dependencies: as a
dependency, a 54 MB predict body without a key took 2.75 s of parsing to get its 401 (issue
"No request stalls the event loop"). It decides from the headers alone, for exactly the routes
that need a key (`needs_key`): 401 missing, 403 not accepted, in the API's error shape. The body is never
read by the app; uvicorn discards what the client still sends and keeps the connection.

Guessing: after RUL_AUTH_FREE_FAILURES wrong keys from one client address, each further wrong
key doubles that address's wait (1 s, 2 s, 4 s, ... up to RUL_AUTH_MAX_BACKOFF_S); while it
waits, every wrong or missing key from it gets 429 with Retry-After. A right key is always
served, whoever shares the address (the clients behind one proxy or NAT): one client's wrong
keys never refuse another's right one, and a right key does not clear the guesser's record
(it expires). What keeps a key from being guessed is its length (docs/configuration.md: 128
random bits); the wait slows a client that keeps sending wrong keys. The table of addresses is
bounded: MAX_CLIENTS entries, each address at most MAX_ADDRESS characters (a longer one, as a
forwarded header may carry, is stored as its hash).
"""

import hashlib
import math
import time
from collections import OrderedDict

from starlette.types import ASGIApp, Receive, Scope, Send

from service.transport.errors import send_error
from service.transport.security import accepted, presented_key

MAX_CLIENTS = 10_000  # addresses remembered; the oldest is forgotten first
MAX_ADDRESS = 64  # an IPv6 address with its zone fits; longer ones are stored as their hash


def address_key(client: str) -> str:
    """The backoff table's key for a client address, at most MAX_ADDRESS characters."""
    if len(client) <= MAX_ADDRESS:
        return client
    return "sha256:" + hashlib.sha256(client.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def needs_key(path: str) -> bool:
    """The routes behind a key: every /v1 route and the Open Inference Protocol's model routes
    (its server metadata and health stay open, as /health/*, /metrics, the dashboard and /docs)."""
    return path.startswith("/v1/") or path.startswith("/v2/models")


class Backoff:
    """Wrong keys per client address and the wait they have earned (monotonic seconds)."""

    def __init__(self, free_failures: int, max_wait_s: float, clock=time.monotonic):
        self.free_failures, self.max_wait_s, self.clock = free_failures, max_wait_s, clock
        self.failures: OrderedDict[str, tuple[int, float]] = OrderedDict()  # address -> (count, until)

    def wait(self, client: str) -> float:
        """Seconds `client` must still wait (0: none)."""
        _, until = self.failures.get(address_key(client), (0, 0.0))
        return max(until - self.clock(), 0.0)

    def failed(self, client: str) -> None:
        client = address_key(client)
        count = self.failures.pop(client, (0, 0.0))[0] + 1
        beyond = count - self.free_failures
        until = self.clock() + min(2.0 ** (beyond - 1), self.max_wait_s) if beyond > 0 else 0.0
        self.failures[client] = (count, until)
        while len(self.failures) > MAX_CLIENTS:
            self.failures.popitem(last=False)


class KeyGate:
    """ASGI middleware: the key check of the routes that need one, before their body."""

    def __init__(self, app: ASGIApp, keys: list[str], backoff: Backoff):
        self.app, self.keys, self.backoff = app, keys, backoff

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not self.keys or scope["method"] == "OPTIONS" or not needs_key(path):
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("unknown", 0))[0]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        # a refused request's body is not read: close the connection after the answer
        has_body = headers.get("content-length", "0") not in ("", "0") or "transfer-encoding" in headers
        close = [("connection", "close")] if has_body else []
        key = presented_key(headers)
        if key and accepted(key, self.keys):  # a right key is always served
            await self.app(scope, receive, send)
            return
        wait = self.backoff.wait(client)
        if wait > 0:
            seconds = math.ceil(wait)
            shown = client if len(client) <= MAX_ADDRESS else "your address"
            await self._refuse(send, path, 429, f"too many wrong API keys from {shown}; retry after "
                               f"{seconds} s", [("retry-after", str(seconds)), *close])  # fmt: skip
            return
        if not key:
            await self._refuse(send, path, 401, "missing API key: send 'Authorization: Bearer <key>' or "
                               "'X-API-Key: <key>'", [("www-authenticate", "Bearer"), *close])  # fmt: skip
            return
        self.backoff.failed(client)
        await self._refuse(send, path, 403, "API key not accepted", close)

    async def _refuse(
        self, send: Send, path: str, status: int, detail: str, extra: list[tuple[str, str]]
    ) -> None:
        await send_error(send, path, status, detail, extra)
