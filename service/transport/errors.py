"""Error answers in the API's shape: one bounded sentence that names the problem, as
{"detail": ...} under /v1 and {"error": ...} under /v2 (the Open Inference Protocol's).

Every error the service sends goes through `error_key`: the exception handlers below, the
ASGI middlewares that answer before a route runs (key_gate.py, security.py) and the HTTP
protocol's own refusals (http_protocol.py: 408, 431, 503 per client; a connection refused as
it opens has sent no path yet and gets {"detail"}). tests/service/test_error_shapes.py walks
every status on both protocols."""

import json
from collections.abc import Iterable
from typing import Any

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Send


def error_key(path: str | None) -> str:
    """ "error" under /v2 (the Open Inference Protocol), "detail" elsewhere (FastAPI's), and
    where no path was read yet."""
    return "error" if path and path.startswith("/v2") else "detail"


def error_body(path: str | None, sentence: str) -> bytes:
    """The JSON body of an error answer on `path`."""
    return json.dumps({error_key(path): sentence}).encode()


async def send_error(
    send: Send, path: str, status: int, sentence: str, headers: Iterable[tuple[str, str]] = ()
) -> None:
    """Answer an error from ASGI middleware (before any route), in the path's shape."""
    body = error_body(path, sentence)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _location(loc: tuple[int | str, ...]) -> str:
    """("body", "windows", 0, "readings") -> "windows[0].readings"."""
    text = ""
    for part in loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text or "the request body"


def describe_invalid(errors: list[Any], content_type: str) -> tuple[int, str]:
    """(status, one bounded sentence) for pydantic's errors of a request: where and what, never
    the whole input echoed back; 400 for malformed JSON, 415 for a body sent as another content
    type. Shared by the handler below and by bodies validated in a worker thread (fast_json.py)."""
    first: dict[str, Any] = dict(errors[0]) if errors else {"loc": (), "msg": "invalid request"}
    if tuple(first.get("loc", ())) == ("body",) and "json" not in content_type:
        status, sentence = (
            415,
            f"the request body must be JSON (Content-Type: application/json); got {content_type}",
        )
    elif first.get("type") == "json_invalid":
        reason = (first.get("ctx") or {}).get("error", "")
        loc = tuple(first.get("loc", ()))
        where = f" at character {loc[1]}" if len(loc) > 1 and isinstance(loc[1], int) else ""
        status, sentence = 400, f"the request body is not valid JSON{f': {reason}' if reason else ''}{where}"
    elif tuple(first.get("loc", ())) == ("body",) and first.get("input") in (None, b"", ""):
        status, sentence = 422, 'the request body is empty; send a JSON object, e.g. {"windows": [...]}'
    elif tuple(first.get("loc", ())) == ("body",) and str(first.get("type", "")).endswith("_type"):
        status, sentence = (
            422,
            f"the request body must be a JSON object; got {type(first.get('input')).__name__}",
        )
    elif tuple(first.get("loc", ())) == ("body", "file") and first.get("type") == "missing":
        status, sentence = (
            422,
            (
                "no fleet file in the request: send it as the multipart/form-data field 'file', "
                "e.g. curl -F file=@fleet.csv URL"
            ),
        )
    elif first.get("type") in ("int_type", "int_from_float") and isinstance(first.get("input"), float):
        status, sentence = (
            422,
            (
                f"{_location(tuple(first['loc']))}: Input should be a valid integer "
                f"(got {first['input']!r:.60}): "
                "write a whole number, without a decimal point or exponent"
            ),
        )
    else:
        got = f" (got {first['input']!r:.60})" if str(first.get("type", "")).endswith("_type") else ""
        more = f"; and {len(errors) - 1} more problems" if len(errors) > 1 else ""
        message = str(first["msg"]).removeprefix("Value error, ")
        status, sentence = 422, f"{_location(tuple(first['loc']))}: {message}{got}{more}"
    return status, sentence[:500].encode("utf-8", "backslashreplace").decode("utf-8")


async def validation_error(request: Request, exc: Exception) -> Response:
    """A request that does not fit the schema, answered in the path's error shape."""
    assert isinstance(exc, RequestValidationError)
    status, sentence = describe_invalid(list(exc.errors()), request.headers.get("content-type", "none"))
    return JSONResponse({error_key(request.url.path): sentence}, status_code=status)


async def http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's {"detail": ...} everywhere but under /v2, where the Open Inference Protocol
    wants {"error": ...}."""
    assert isinstance(exc, StarletteHTTPException)
    path = request.url.path
    if exc.status_code == 404 and exc.detail == "Not Found" and len(path) > 1 and path.endswith("/"):
        exc = StarletteHTTPException(404, f"no route {request.method} {path}; without the trailing slash: "
                                          f"{path.rstrip('/')}")  # fmt: skip
    if error_key(path) == "error":
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)
    return await http_exception_handler(request, exc)
