"""Limits on the size of a predict request, checked on the decoded JSON before any window is
validated or converted: 10^6 windows cost a count, not a validation of 10^6 windows."""

from typing import Any

from fastapi import HTTPException

from service.predictor import window_label
from service.settings import Settings


def check_windows(body: Any, settings: Settings) -> None:
    """413 when a body's `windows` list, or one window's `readings`, is over its limit.
    Anything not shaped like a predict request is left to the schema to describe."""
    windows = body.get("windows") if isinstance(body, dict) else None
    if not isinstance(windows, list):
        return
    if len(windows) > settings.max_windows_per_request:
        limit = settings.max_windows_per_request
        raise HTTPException(413, f"request has {len(windows)} windows; the limit is {limit} "
                                 "(RUL_MAX_WINDOWS_PER_REQUEST)")  # fmt: skip
    for index, window in enumerate(windows):
        readings = window.get("readings") if isinstance(window, dict) else None
        if isinstance(readings, list) and len(readings) > settings.max_cycles_per_window:
            window_id = window.get("id")
            label = window_label(index, window_id if isinstance(window_id, str) else None)
            raise HTTPException(
                413,
                f"{label} has {len(readings)} cycles; the limit is {settings.max_cycles_per_window} "
                "(RUL_MAX_CYCLES_PER_WINDOW); the model reads only the last cycles anyway",
            )
