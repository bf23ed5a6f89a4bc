"""FastAPI dependencies shared by the v1 and v2 routers: the loaded models and lookups.

The lookups are `async def` on purpose: FastAPI runs a plain `def` dependency in its thread
pool, a thread hand-off per request that cost ~14 % of the event loop's time under
single-window load (py-spy, bench/README.md); these only read app.state and never block."""

from typing import Annotated

import numpy as np
from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from service.batcher import QueueFull
from service.predictor import Predictor, window_label
from service.quality import OUT_OF_DISTRIBUTION, Quality
from service.security import has_valid_key


async def loaded_models(request: Request) -> dict[str, Predictor]:
    return request.app.state.models


def find_model(models: dict[str, Predictor], name: str) -> str | None:
    """The loaded model called `name`, ignoring case (the training CLI says FD001, the files
    are fd001.onnx); None when there is none, or when only case tells two apart and none
    matches exactly."""
    if name in models:
        return name
    matches = [known for known in models if known.casefold() == name.casefold()]
    return matches[0] if len(matches) == 1 else None


async def named_predictor(model: str, request: Request) -> Predictor:
    models = await loaded_models(request)
    name = find_model(models, model)
    if name is None:
        known = ", ".join(sorted(models)) or "none loaded"
        raise HTTPException(404, f"model {model!r} not found; known models: {known}")
    return models[name]


async def default_predictor(request: Request) -> Predictor:
    models = await loaded_models(request)
    name = request.app.state.default_model
    if name is None or name not in models:
        reason = request.app.state.load_errors.get(name or "*", "no model is loaded")
        raise HTTPException(503, f"default model {name!r} is not available: {reason}")
    return models[name]


async def run_model(request: Request, predictor: Predictor, batch: np.ndarray) -> dict[str, np.ndarray]:
    """Run a prepared batch (N, W, C) through the model's dynamic batcher (or straight through
    a worker thread when batching is off); a full queue is a 503 with Retry-After."""
    batcher = request.app.state.batchers.get(predictor.card.name)
    try:
        if batcher is not None and batcher.predictor is predictor:  # not swapped out by a reload
            return await batcher.run(batch)
        return await run_in_threadpool(predictor.run, batch)
    except QueueFull as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": "1"}) from exc


def not_ready_reason(request: Request) -> str | None:
    """Why the service is not ready (a model failed or none is loaded), or None when it is.
    With API keys set, a caller without a valid key gets the category only; the details
    (file names, paths, load errors) need a key."""
    errors: dict[str, str] = request.app.state.load_errors
    if not errors and request.app.state.models:
        return None
    if request.app.state.settings.api_keys and not has_valid_key(request):
        if not errors:
            return "models not loaded yet"
        failed = [name for name in errors if name != "*"]
        category = f"{len(failed)} model(s) failed to load" if failed else "no model is loaded"
        return f"{category} (send an API key for the details)"
    return "; ".join(f"{name}: {why}" for name, why in errors.items()) or "models not loaded yet"


Models = Annotated[dict[str, Predictor], Depends(loaded_models)]
NamedPredictor = Annotated[Predictor, Depends(named_predictor)]
DefaultPredictor = Annotated[Predictor, Depends(default_predictor)]


def refuse_out_of_distribution(qualities: list[tuple[str | None, Quality]]) -> None:
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
