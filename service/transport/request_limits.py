"""Limits on the size of a predict request, checked before any window is validated: on the
decoded JSON of a small body (`check_windows`), and while a large one is decoded
(`decode_predict_body`): 10^6 windows cost a count, not a validation of 10^6 windows."""

import json
from collections.abc import Callable
from typing import Any

import numpy as np
from fastapi import HTTPException

from service.core.window_input import window_label
from service.settings import Settings


def _too_many_cycles(index: int, window_id: Any, cycles: int, settings: Settings) -> HTTPException:
    label = window_label(index, window_id if isinstance(window_id, str) else None)
    return HTTPException(
        413,
        f"{label} has {cycles} cycles; the limit is {settings.max_cycles_per_window} "
        "(RUL_MAX_CYCLES_PER_WINDOW); the model reads only the last cycles anyway",
    )


def _too_many_windows(count: str, settings: Settings) -> HTTPException:
    """`count`: how many windows the request has, as far as it is known ('12000', 'more than 10000')."""
    limit = settings.max_windows_per_request
    return HTTPException(
        413, f"request has {count} windows; the limit is {limit} (RUL_MAX_WINDOWS_PER_REQUEST)"
    )


BYTES_PER_NUMBER = 64  # the most JSON text a reading may take, whitespace and all, in a sane body
C_MAPSS_WIDTH = 24  # numbers a cycle, where no model is loaded yet to say (C-MAPSS's 3 + 21)


def check_window_text(body: bytes, settings: Settings, width: int = C_MAPSS_WIDTH) -> int:
    """413 when the body holds a stretch of text between two braces longer than any window
    within the limits could be (RUL_MAX_CYCLES_PER_WINDOW cycles of `width` numbers, the widest
    served model's, at BYTES_PER_NUMBER bytes each): a single array of millions of numbers is
    refused from a scan at numpy speed, before a parser holds the interpreter for a second
    reading it. Returns how many objects the body opens (its '{')."""
    text = np.frombuffer(body, dtype=np.uint8)
    is_brace = text == ord("{")  # numpy's comparisons let other threads run meanwhile
    objects = int(is_brace.sum())
    is_brace |= text == ord("}")
    edges = np.concatenate(([-1], np.flatnonzero(is_brace), [len(body)]))
    longest = int(np.diff(edges).max())
    limit = settings.max_cycles_per_window * width * BYTES_PER_NUMBER
    if longest > limit:
        cycles = settings.max_cycles_per_window
        raise HTTPException(413, f"the body holds {longest} bytes of JSON between two braces, more than a "
                                 f"window of {cycles} cycles (RUL_MAX_CYCLES_PER_WINDOW) of {width} numbers "
                                 f"could take ({limit} bytes)")  # fmt: skip
    return objects


def decode_predict_body(body: bytes, settings: Settings, width: int = C_MAPSS_WIDTH) -> Any:
    """A large body, decoded by the standard library's parser with a hook that turns each
    window's readings into float32 as soon as the window is parsed, so that the Python floats
    of one window at a time are alive, not those of the whole body (a 47 MB body of 5 000
    windows: +22 MB peak, against +342 MB decoded whole by orjson), and that stops at the
    window and cycle limits. Slower than orjson (1.25 s against 0.52 s there), and run in a
    worker thread: the hook lets the event loop in between windows."""
    windows = 0

    def window_to_array(obj: dict[str, Any]) -> dict[str, Any]:
        nonlocal windows
        readings = obj.get("readings")
        if not isinstance(readings, list | dict):
            return obj
        windows += 1
        if windows > settings.max_windows_per_request:
            raise _too_many_windows(f"more than {settings.max_windows_per_request}", settings)
        if cycles_in(readings) > settings.max_cycles_per_window:
            raise _too_many_cycles(windows - 1, obj.get("id"), cycles_in(readings), settings)
        if isinstance(readings, dict):
            return obj  # named columns (core/window_input.named_columns)
        try:
            with np.errstate(over="ignore"):
                array = np.asarray(readings, dtype=np.float32)
        except (TypeError, ValueError, OverflowError):
            return obj  # not a table of numbers: the schema names the cycle and column
        if array.ndim == 2:
            obj["readings"] = array
        return obj

    check_window_text(body, settings, width)
    data = stdlib_loads(body, object_hook=window_to_array)
    check_windows(data, settings)  # every item counted, not only those with readings ({} included)
    return data


def _number(text: str) -> float:
    """A JSON number as the parser makes it, in Python bytecode: the interpreter may hand its
    lock to another thread between two (a C builtin such as `float` would not let it)."""
    return float(text)


def _whole(text: str) -> int:
    return int(text)


def stdlib_loads(
    data: bytes,
    object_hook: Callable[[dict[str, Any]], Any] | None = None,
    parse_number: bool = False,
) -> Any:
    """The standard library's json.loads, with JSON nested too deeply for its recursive parser
    a ValueError like any other JSON it cannot read. `parse_number`: every number through a
    Python call (the same values), which lets other threads run during a long parse."""
    try:
        if parse_number:
            return json.loads(data, object_hook=object_hook, parse_float=_number, parse_int=_whole)
        return json.loads(data, object_hook=object_hook)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None


def check_windows(body: Any, settings: Settings) -> None:
    """413 when a body's `windows` list (every item, whatever it holds), or one window's
    `readings` or `cycles`, is over its limit: so that the schema never validates, nor
    describes the errors of, more items than a request may hold. Anything not shaped like a
    predict request is left to the schema to describe."""
    windows = body.get("windows") if isinstance(body, dict) else None
    if not isinstance(windows, list):
        return
    if len(windows) > settings.max_windows_per_request:
        raise _too_many_windows(str(len(windows)), settings)
    for index, window in enumerate(windows):
        if not isinstance(window, dict):
            continue
        for field in ("readings", "cycles"):
            if cycles_in(window.get(field)) > settings.max_cycles_per_window:
                raise _too_many_cycles(index, window.get("id"), cycles_in(window.get(field)), settings)


def cycles_in(readings: Any) -> int:
    """How many cycles a window's readings hold: rows of a table, or the longest of its named
    columns (core/window_input.named_columns); 0 for anything else (the schema describes it)."""
    if isinstance(readings, list | np.ndarray):
        return len(readings)
    if isinstance(readings, dict):
        return max((len(v) for v in readings.values() if isinstance(v, list)), default=0)
    return 0
