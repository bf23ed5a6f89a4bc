"""JSON request bodies parsed with orjson: on bodies of sensor readings (thousands of
numbers per window) it is several times faster than the standard library, which FastAPI
uses by default (bench/README.md). Whatever orjson refuses is parsed again by the standard
library, so the NaN/Infinity literals that Python's json.dumps writes still reach the
per-window checks and get their precise error message; malformed JSON fails there as before.
Bodies over INLINE_BYTES are decoded in a worker thread: up to ORJSON_BYTES by orjson, larger
ones window by window into float32 (service/transport/request_limits.py), which bounds their memory; a
predict body's window and cycle counts are checked before FastAPI validates it. A large body
is also validated against the route's body model in that thread: validating 2 000 windows on
the event loop, while another body was being decoded, stalled it 0.4-0.8 s (bench/README.md,
"Abuse, second round"); FastAPI then finds a model instance and does not validate it again.
"""

import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import orjson
from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

from service.core.threads import in_worker
from service.state import service_state
from service.transport.errors import describe_invalid
from service.transport.request_limits import (
    C_MAPSS_WIDTH,
    check_window_text,
    check_windows,
    decode_predict_body,
    stdlib_loads,
)

T = TypeVar("T")


def loads_fairly(data: bytes) -> Any:
    """`loads` for a body decoded in a worker thread: over ORJSON_BYTES, by the standard
    library calling back for every number, so that the event loop gets its turns during the
    parse (orjson parses in one C call, holding the interpreter: a 46 MB /v2 JSON body, 0.4 s)."""
    if len(data) > ORJSON_BYTES:
        return stdlib_loads(data, parse_number=True)
    return loads(data)


def loads(data: bytes) -> Any:
    """Raises ValueError (json.JSONDecodeError included) for anything that is not JSON, also
    JSON nested too deeply for the standard library's recursive parser. What orjson refuses
    (NaN literals, say) is parsed by the standard library calling back for every number, so
    that a large body's parse, in a worker thread, lets the event loop in (parsed in one C
    call, a 7.9 MB body held it 0.5 s)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return stdlib_loads(data, parse_number=True)


INLINE_BYTES = 256 * 1024  # larger bodies are decoded in a worker thread, never on the event loop
# A body opening more objects than this ('{') is parsed object by object (decode_large): a
# predict body opens one or two per window (10 000 windows at most, by default).
MANY_OBJECTS = 100_000
# Up to this, a body is decoded by orjson whole, in one native call that holds the interpreter
# (700 windows, 6.6 MB: 219 ms in which the event loop could not run; bench/abuse_round3.py);
# beyond it the window-by-window parser lets the loop in between windows and keeps the Python
# floats of one window alive at a time, which bounds the memory of large bodies. The 700
# windows took as long either way (292 against 298 ms with their validation, one-off timing).
ORJSON_BYTES = 1024 * 1024


# Large bodies are decoded one at a time. Decoding is Python work, bound by the interpreter
# lock: five bodies decoded at once take as long as one after the other, and every thread that
# wants the lock delays the event loop's next turn (five 19 MB predict bodies at once:
# /health/live p99 104 ms, max 280-870 ms; bench/README.md, "Abuse, second round").
DECODING = threading.Lock()


def in_turn(size: int, work: Callable[..., T], *args: Any) -> T:
    """`work(*args)` (in a worker thread), decoding a body of `size` bytes: over INLINE_BYTES,
    one body at a time (DECODING); a small one never waits for a large one."""
    if size <= INLINE_BYTES:
        return work(*args)
    with DECODING:
        return work(*args)


def decode_large(
    body: bytes, settings: Any, model: type[BaseModel] | None = None, width: int = C_MAPSS_WIDTH
) -> Any:
    """A body over INLINE_BYTES (in a worker thread), within the window and cycle limits, and
    validated as `model` when given: its instance, or the HTTPException of its first problem
    (FastAPI would answer a RequestValidationError raised here with its own 400)."""
    with DECODING:
        if len(body) > ORJSON_BYTES:
            data = decode_predict_body(body, settings, width)
        elif check_window_text(body, settings, width) > MANY_OBJECTS:
            # far more objects than a predict body has ({} x 2 M): parsed with a Python call per
            # object, so that the loop gets turns while they are built (orjson: 0.15 s in one go)
            data = decode_predict_body(body, settings, width)
        else:
            data = loads(body)
            check_windows(data, settings)
        if model is None:
            return data
        try:
            return validated_in_steps(model, data)
        except ValidationError as exc:
            errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
            status, sentence = describe_invalid(errors, "application/json")
            raise HTTPException(status, sentence) from None


def validated_in_steps(model: type[BaseModel], data: Any) -> BaseModel:
    """`model.model_validate(data)` with a body's `windows` validated one window per call, up to
    the first window that fails: pydantic validates in one native call that holds the
    interpreter and collects every window's errors, and 700 failing windows (a 6.6 MB body of
    NaN readings) held it 0.19 s (bench/abuse_round3.py). The error locates its problem as one
    call would (windows, index, ...)."""
    windows = data.get("windows") if isinstance(data, dict) else None
    field = model.model_fields.get("windows")
    item = (getattr(field.annotation, "__args__", None) or [None])[0] if field else None
    if not isinstance(windows, list) or len(windows) < 2 or not isinstance(item, type):
        return model.model_validate(data)
    shell = model.model_validate({**data, "windows": windows[:1]})  # every other field checked
    checked = []
    for index, window in enumerate(windows):
        try:
            checked.append(item.model_validate(window))  # type: ignore[attr-defined]
        except ValidationError as exc:
            errors = [{**e, "loc": ("windows", index, *e["loc"])} for e in exc.errors(include_url=False)]
            raise ValidationError.from_exception_data(exc.title, errors) from None  # type: ignore[arg-type]
    return shell.model_copy(update={"windows": checked})


class FastJSONRequest(Request):
    """A Request whose `json()` decodes with `loads` within the request limits, once (its own
    cache: nothing of Starlette's private state is read or written); a large body is validated
    as `body_model` (the route's) in the decoding thread."""

    decoded: Any = None
    has_decoded = False
    body_model: type[BaseModel] | None = None

    async def json(self) -> Any:
        if not self.has_decoded:
            state = service_state(self.app)
            body, settings = await self.body(), state.settings
            if len(body) <= INLINE_BYTES:
                data = loads(body)
                check_windows(data, settings)  # 413 before any window is validated
            else:  # checks the same limits while it decodes, and validates
                widths = [len(p.card.input_features) for p in state.served.models.values()]
                width = max(widths, default=C_MAPSS_WIDTH)  # numbers a cycle of the widest model
                data = await in_worker(decode_large, body, settings, self.body_model, width)
            self.decoded, self.has_decoded = data, True
        return self.decoded


class FastJSONRoute(APIRoute):
    """An APIRoute whose handler reads JSON bodies with `loads` (FastAPI's documented way to
    customise the request: a Request subclass handed over by the route class). `body_model`:
    the pydantic model of a route whose one body parameter is a whole JSON body."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.body_model: type[BaseModel] | None = None
        if len(self.dependant.body_params) == 1:
            info = self.dependant.body_params[0].field_info
            model = info.annotation
            if not getattr(info, "embed", False) and isinstance(model, type) and issubclass(model, BaseModel):
                self.body_model = model

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def fast_json_handler(request: Request) -> Response:
            fast = FastJSONRequest(request.scope, request.receive)
            fast.body_model = self.body_model
            return await handler(fast)

        return fast_json_handler
