"""The FastAPI application: `create_app(settings)` builds it; a lifespan loads every model
once, warms it up and only then reports ready. Routes stay a few lines each; the work is in
`service.predictor`, which runs off the event loop."""

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException

from service import oip
from service.answers import Answers, json_array
from service.dependencies import (
    DefaultPredictor,
    MetricsDep,
    NamedPredictor,
    ServedDep,
    SettingsDep,
    not_ready_reason,
    refuse_out_of_distribution,
    run_model,
)
from service.errors import http_error, validation_error
from service.fast_json import FastJSONRoute
from service.http_protocol import ChunkedAnswers
from service.key_gate import Backoff, KeyGate
from service.metrics import Metrics, RequestMetrics
from service.model_set import load_and_install, reload_models, shutdown
from service.planning import PlanningError, asked
from service.predictor import Predictor
from service.request_id import RequestId
from service.schemas import (
    ModelList,
    ModelSummary,
    PredictRequest,
    PredictResponse,
    Readiness,
    card_summary,
)
from service.score_route import score_api
from service.security import BodySizeLimit
from service.settings import Settings
from service.state import LOADING, ServiceState
from service.window_input import WindowError

logger = logging.getLogger("service.app")
T = TypeVar("T")
router = APIRouter()  # open: health
# /v1: needs a key when keys are set (checked before the body: key_gate.py); JSON bodies parsed with orjson
api = APIRouter(route_class=FastJSONRoute)


# Requests with at most this many windows are validated on the event loop (~0.1 ms for a
# 50-cycle window, less than a hop to a worker thread and back under load);
# bigger ones in a worker thread so that they never hold up other requests.
INLINE_PREPARE_WINDOWS = 4


def _summary(predictor: Predictor) -> ModelSummary:
    return card_summary(predictor.card.model_dump(), predictor.provider)


async def _predict(
    request: Request, predictor: Predictor, body: PredictRequest, settings: Settings, metrics: Metrics
) -> Response:
    """The window and cycle limits were checked on the decoded JSON (service/request_limits.py).
    Beyond INLINE_PREPARE_WINDOWS windows every step but the model's queue runs in a worker
    thread, the answer's JSON included (5 000 predictions: ~0.25 s of Python that would
    otherwise hold up every other request)."""
    windows = [(w.id, w.readings) for w in body.windows]
    cycles = [w.cycles for w in body.windows]
    inline = len(windows) <= INLINE_PREPARE_WINDOWS  # microseconds: a worker thread would cost more

    async def off_loop(work: Callable[..., T], *args: Any) -> T:
        return work(*args) if inline else await run_in_threadpool(work, *args)

    try:
        planning = asked(body.horizons, body.risk, settings.planning(), predictor.card.rul_cap)
        batch = await off_loop(predictor.prepare_batch, windows, cycles)
    except (PlanningError, WindowError) as exc:
        raise HTTPException(422, str(exc)) from exc
    outputs = await run_model(request, predictor, batch.windows)
    answers = await off_loop(predictor.answer_batch, batch, outputs, planning)
    await off_loop(metrics.observe_quality, predictor.card.name, answers.quality)
    if settings.reject_out_of_distribution:
        refuse_out_of_distribution(list(zip(batch.ids, answers.quality, strict=True)))
    answer_json = await off_loop(_predict_body, predictor, batch.ids, answers)
    await off_loop(answers.release)
    return Response(answer_json, media_type="application/json")


def _predict_body(predictor: Predictor, ids: list[str | None], answers: Answers) -> bytes:
    """The PredictResponse as JSON: each prediction its id, then its answer (schemas.Prediction)."""

    def records(piece: slice) -> list[dict]:
        return [{"id": i, **a} for i, a in zip(ids[piece], answers.select(piece).records(), strict=True)]

    head = orjson.dumps({"model": predictor.card.name, "model_version": predictor.card.version})
    return b"".join([head[:-1], b',"predictions":', *json_array(len(answers), records), b"}"])


STATIC_DIR = Path(__file__).parent / "static"


@router.get("/", include_in_schema=False)
async def dashboard() -> FileResponse:
    """The fleet dashboard (static files in service/static, no internet needed)."""
    return FileResponse(STATIC_DIR / "index.html")


@router.get("/metrics", tags=["health"], response_class=PlainTextResponse)
async def prometheus_metrics(metrics: MetricsDep) -> Response:
    """Prometheus metrics: requests and latency by route and status, inference time and batch
    size by model, model info (version, provider)."""
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


@router.get("/health/live", tags=["health"])
async def live() -> dict[str, str]:
    """The process is up (says nothing about the models)."""
    return {"status": "live"}


@router.get(
    "/health/ready",
    tags=["health"],
    response_model=Readiness,
    responses={503: {"description": "a model is missing or failed to load; detail says why"}},
)
async def ready(request: Request, served: ServedDep) -> Readiness | JSONResponse:
    """200 once every model is loaded and warmed up; names the execution provider in use."""
    reason = not_ready_reason(request)
    if reason:
        return JSONResponse({"detail": f"not ready: {reason}"}, status_code=503)
    providers = {name: p.provider for name, p in served.models.items()}
    distinct = set(providers.values())
    return Readiness(
        status="ready",
        execution_provider=distinct.pop() if len(distinct) == 1 else "mixed",
        models=providers,
    )


@api.get("/v1/models", tags=["models"])
async def list_models(served: ServedDep, settings: SettingsDep) -> ModelList:
    """Every served model's card with the execution provider in use, models that failed, and
    the horizons and risk answered when a request does not ask."""
    return ModelList(
        default_model=served.default_model,
        models=[_summary(served.models[name]) for name in sorted(served.models)],
        unavailable=served.load_errors,
        default_horizons=settings.default_horizons,
        default_risk=settings.default_risk,
    )


@api.get("/v1/models/{model}", tags=["models"], responses={404: {"description": "unknown model"}})
async def get_model(predictor: NamedPredictor) -> ModelSummary:
    """One model's card with the execution provider in use."""
    return _summary(predictor)


@api.post(
    "/v1/models/{model}/predict",
    response_model=PredictResponse,
    tags=["predict"],
    responses={404: {"description": "unknown model"}, 422: {"description": "a window is invalid"}},
)
async def predict(
    request: Request,
    body: PredictRequest,
    predictor: NamedPredictor,
    settings: SettingsDep,
    metrics: MetricsDep,
) -> Response:
    """RUL, interval, health state, failure probabilities within the horizons asked and the RUL
    at the risk asked, for each window, with the named model."""
    return await _predict(request, predictor, body, settings, metrics)


@api.post(
    "/v1/predict",
    response_model=PredictResponse,
    tags=["predict"],
    responses={
        422: {"description": "a window is invalid"},
        503: {"description": "no default model"},
    },
)
async def predict_default(
    request: Request,
    body: PredictRequest,
    predictor: DefaultPredictor,
    settings: SettingsDep,
    metrics: MetricsDep,
) -> Response:
    """As /v1/models/{model}/predict, with the default model (RUL_DEFAULT_MODEL)."""
    return await _predict(request, predictor, body, settings, metrics)


@api.post(
    "/v1/models/reload",
    tags=["models"],
    responses={
        409: {
            "description": "a model failed to load, or a served model would be dropped without "
            "allow_removal; the previous models keep serving"
        },
    },  # fmt: skip
)
async def reload(
    request: Request,
    allow_removal: Annotated[
        bool,
        Query(description="stop serving models whose files are gone (otherwise such a reload is refused)"),
    ] = False,
) -> dict[str, Any]:
    """Reload every model from the models directory, atomically: all load and replace the
    served set, or nothing changes (also on SIGHUP, which never drops a model). The answer
    names what was added, replaced (another file), removed and unchanged. Needs a key when
    keys are set."""
    result = await reload_models(request.app, allow_removal)
    if not result.reloaded:
        raise HTTPException(409, result.detail)
    return {"status": "reloaded", "detail": result.detail, **result.changes}


def _on_sighup(app: FastAPI) -> None:
    """SIGHUP reloads the models, like POST /v1/models/reload (only in the main thread, as
    under rul-serve; elsewhere, e.g. in tests, the route is the way)."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(reload_models(app)))
    except (ValueError, RuntimeError, NotImplementedError, AttributeError) as exc:
        logger.info("SIGHUP reload not available here (%s); use POST /v1/models/reload", exc)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await load_and_install(app)
        _on_sighup(app)
        yield
        await shutdown(app)

    # FastAPIOffline: /docs with Swagger UI's assets served from the installed package
    # (FastAPI's own page loads them from a CDN: blank without the internet). No /redoc: ReDoc
    # still fetches its logo from its CDN
    app = FastAPIOffline(
        redoc_url=None,
        title="RUL service",
        summary="Remaining useful life and health state of turbofan engines from sensor windows",
        version="1",
        lifespan=lifespan,
    )
    metrics = Metrics()
    app.state.service = ServiceState(
        settings, metrics, LOADING, asyncio.Lock(), asyncio.Semaphore(settings.max_concurrent_scores)
    )
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(api)
    app.include_router(score_api)
    app.include_router(oip.health)
    app.include_router(oip.api)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    # add_middleware wraps what is there: the last added runs first on a request
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    # the key is checked from the headers, before any body is read (key_gate.py)
    backoff = Backoff(settings.auth_free_failures, settings.auth_max_backoff_s)
    app.add_middleware(KeyGate, keys=settings.api_keys, backoff=backoff)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
        )
    app.add_middleware(RequestMetrics, metrics=metrics)
    app.add_middleware(RequestId)
    app.add_middleware(ChunkedAnswers, max_bytes=settings.max_buffered_bytes)  # http_protocol.py
    return app
