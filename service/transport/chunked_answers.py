"""Answers handed to uvicorn in pieces, so that a client that does not read holds little in
the server's write buffer (the other half of that guard is the connection's high-water mark,
service/transport/http_protocol.py)."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class ChunkedAnswers:
    """ASGI middleware: an answer's body goes to the server in pieces of at most `max_bytes`
    (RUL_MAX_BUFFERED_BYTES). uvicorn writes a piece only once the connection's write buffer is
    below its high-water mark (guarded_protocol sets it to the same size), so a client that
    reads slowly, or not at all, holds at most about two pieces in the buffer, whatever the
    answer's size. Streamed answers' chunks are split the same way."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_in_pieces(message: Message) -> None:
            body = message.get("body", b"")
            if message["type"] != "http.response.body" or len(body) <= self.max_bytes:
                await send(message)
                return
            view, more = memoryview(body), message.get("more_body", False)
            for start in range(0, len(body), self.max_bytes):
                end = start + self.max_bytes
                await send({"type": "http.response.body", "body": bytes(view[start:end]),
                            "more_body": more or end < len(body)})  # fmt: skip

        await self.app(scope, receive, send_in_pieces)
