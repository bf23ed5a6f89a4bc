"""Error answers in the API's shape: one bounded sentence that names the problem, as
{"detail": ...} under /v1 and {"error": ...} under /v2 (the Open Inference Protocol's)."""

from typing import Any

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException


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
        status, sentence = 400, f"the request body is not valid JSON{f': {reason}' if reason else ''}"
    elif tuple(first.get("loc", ())) == ("body",):
        status, sentence = (
            422,
            f"the request body must be a JSON object; got {type(first.get('input')).__name__}",
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
    key = "error" if request.url.path.startswith("/v2") else "detail"
    return JSONResponse({key: sentence}, status_code=status)


async def http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's {"detail": ...} everywhere but under /v2, where the Open Inference Protocol
    wants {"error": ...}."""
    assert isinstance(exc, StarletteHTTPException)
    if request.url.path.startswith("/v2"):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)
    return await http_exception_handler(request, exc)
