"""FastAPI dependencies shared by the v1 and v2 routers: the loaded models and lookups.

The lookups are `async def` on purpose: FastAPI runs a plain `def` dependency in its thread
pool, a thread hand-off per request that cost ~14 % of the event loop's time under
single-window load (py-spy, bench/README.md); these only read the ServiceState
(service/state.py) and never block."""

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Annotated, TypeVar

import numpy as np
from fastapi import Depends, HTTPException, Request

from service.core import drivers, pipeline
from service.core.answers import Answers
from service.core.batcher import QueueFull
from service.core.planning import Planning
from service.core.predictor import Predictor
from service.core.threads import INLINE_WINDOWS, in_worker_unless_alone, maybe_in_worker
from service.core.window_input import window_label
from service.core.window_quality import OUT_OF_DISTRIBUTION, WindowQuality
from service.settings import Settings
from service.state import ServedModels, service_state
from service.transport.metrics import Metrics
from service.transport.security import has_valid_key

T = TypeVar("T")


async def get_settings(request: Request) -> Settings:
    return service_state(request.app).settings


async def get_metrics(request: Request) -> Metrics:
    return service_state(request.app).metrics


async def get_served(request: Request) -> ServedModels:
    """The served models as they are now; a reload replaces them, never changes these."""
    return service_state(request.app).served


async def named_predictor(model: str, request: Request) -> Predictor:
    served = service_state(request.app).served
    name = served.find(model)
    if name is None:
        known = ", ".join(sorted(served.models)) or "none loaded"
        raise HTTPException(404, f"model {model!r} not found; known models: {known}")
    return served.models[name]


async def default_predictor(request: Request) -> Predictor:
    served = service_state(request.app).served
    name = served.default_model
    if name is None or name not in served.models:
        reason = served.load_errors.get(name or "*", "no model is loaded")
        raise HTTPException(503, f"default model {name!r} is not available: {reason}")
    return served.models[name]


async def run_model(request: Request, predictor: Predictor, batch: np.ndarray) -> dict[str, np.ndarray]:
    """Run a prepared batch (N, W, C) through the model's dynamic batcher (or straight, where
    service/core/threads.py says, when batching is off); a full queue is a 503 with Retry-After."""
    state = service_state(request.app)
    batcher = state.served.batchers.get(predictor.card.name)
    try:
        if batcher is not None and batcher.predictor is predictor:  # not swapped out by a reload
            return await batcher.run(batch)
        return await in_worker_unless_alone(len(batch), state.requests.alone, predictor.run, batch)
    except QueueFull as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": "1"}) from exc


def check_explained_count(
    predictor: Predictor, count: int, settings: Settings, what: str = "windows"
) -> None:
    """413 when explaining `count` windows (a fleet's units: `what`) would run the model more
    times than a request may hold windows (core/drivers.py: K + 1 runs per window)."""
    checks = predictor.card.quality
    limit = settings.max_windows_per_request
    refused = checks and drivers.too_many_to_explain(count, len(checks.columns), limit, what)
    if refused:
        raise HTTPException(413, refused)


def not_ready_reason(request: Request) -> str | None:
    """Why the service is not ready (a model failed or none is loaded), or None when it is.
    With API keys set, a caller without a valid key gets the category only; the details
    (file names, paths, load errors) need a key."""
    state = service_state(request.app)
    errors = state.served.load_errors
    if not errors and state.served.models:
        return None
    if state.settings.api_keys and not has_valid_key(request):
        if not errors:
            return "models not loaded yet"
        failed = [name for name in errors if name != "*"]
        category = f"{len(failed)} model(s) failed to load" if failed else "no model is loaded"
        return f"{category} (send an API key for the details)"
    return "; ".join(f"{name}: {why}" for name, why in errors.items()) or "models not loaded yet"


SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
ServedDep = Annotated[ServedModels, Depends(get_served)]
NamedPredictor = Annotated[Predictor, Depends(named_predictor)]
DefaultPredictor = Annotated[Predictor, Depends(default_predictor)]


DISCONNECT_POLL_S = 0.25  # how often a long request asks whether its client is still there


async def until_gone(request: Request, on_gone: Callable[[], object], finished: Callable[[], bool]) -> None:
    """Ask every DISCONNECT_POLL_S whether the client has gone, until `finished()`; once it has,
    call `on_gone()` (cancel the work, or raise the flag it reads). The body must already be
    read: a disconnect is what comes next."""
    while not finished():
        if await request.is_disconnected():
            on_gone()
            return
        await asyncio.sleep(DISCONNECT_POLL_S)


async def cancelled_when_gone(request: Request, work: Awaitable[T]) -> T:
    """`work`, cancelled once the client has gone (asked every quarter of a second): a large
    predict stops queueing its pieces within about a second of its client leaving, instead of
    running on for nobody."""
    task: asyncio.Task[T] = asyncio.ensure_future(work)
    watcher = asyncio.create_task(until_gone(request, task.cancel, task.done))
    try:
        return await task
    except asyncio.CancelledError:
        if watcher.done() and not watcher.cancelled():  # the client left: 499, which nobody reads
            raise HTTPException(499, "the client went away; the request was stopped") from None
        raise
    finally:
        watcher.cancel()


async def answer_request(
    request: Request, predictor: Predictor, prepared: pipeline.Prepared, planning: Planning
) -> Answers:
    """The answer pipeline for an HTTP request (v1 predict, OIP infer): run on the model's
    batcher, explain, answer (service/core/pipeline.py); the qualities counted in the metrics;
    with RUL_REJECT_OUT_OF_DISTRIBUTION, a 422 naming each out-of-distribution window."""
    state = service_state(request.app)
    work = pipeline.answer(predictor, prepared, planning, partial(run_model, request, predictor))
    if len(prepared) > INLINE_WINDOWS:  # long enough to be worth stopping for a client that left
        answers = await cancelled_when_gone(request, work)
    else:
        answers = await work
    await maybe_in_worker(len(prepared), state.metrics.observe_quality, predictor.card.name, answers.quality)
    if state.settings.reject_out_of_distribution:
        refuse_out_of_distribution(list(zip(prepared.ids, answers.quality, strict=True)))
    return answers


def refuse_out_of_distribution(qualities: list[tuple[str | int | None, WindowQuality]]) -> None:
    """RUL_REJECT_OUT_OF_DISTRIBUTION: a 422 naming each out-of-distribution window and why."""
    refused = [(i, wid, q) for i, (wid, q) in enumerate(qualities) if q.status == OUT_OF_DISTRIBUTION]
    if not refused:
        return
    reasons = []
    for index, window_id, quality in refused[:5]:
        reasons.append(f"{window_label(index, window_id)} is {quality.why_out_of_distribution()}")
    more = f" (and {len(refused) - 5} more)" if len(refused) > 5 else ""
    raise HTTPException(422, ". ".join(reasons) + more + ". The service refuses such windows "
                        "(RUL_REJECT_OUT_OF_DISTRIBUTION=true); check the sensors and the engine type "
                        "the model is for")  # fmt: skip
