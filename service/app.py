"""The FastAPI application: `create_app(settings)` wires the three layers together.

- `service/core/`: the framework-free work (model, batcher, checks' explanations, planning,
  answers, fleet files, scoring, the threading policy); no fastapi or starlette import.
- `service/transport/`: what HTTP needs (protocol guards, keys, body limit, request ids, body
  decoding, request limits, the API's schemas, errors in each protocol's shape, metrics).
- `service/routes/`: thin route modules (health, models, predict, score, oip) on top.

The import contract (`[tool.importlinter]` in pyproject.toml, checked in CI) keeps it so. A
lifespan loads every model once, warms it up and only then reports ready."""

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.core.threads import OpenRequests
from service.model_set import load_and_install, reload_models, shutdown
from service.routes import health, models, oip, predict
from service.routes.score import score_api
from service.settings import Settings
from service.state import LOADING, ServiceState
from service.transport.chunked_answers import ChunkedAnswers
from service.transport.errors import http_error, validation_error
from service.transport.key_gate import Backoff, KeyGate
from service.transport.metrics import Metrics, RequestMetrics
from service.transport.request_id import RequestId
from service.transport.security import BodyBudget, BodySizeLimit

logger = logging.getLogger("service.app")


def _on_sighup(app: FastAPI) -> None:
    """SIGHUP reloads the models, like POST /v1/models/reload (only in the main thread, as
    under rul-serve; elsewhere, e.g. in tests, the route is the way)."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(reload_models(app)))
    except (ValueError, RuntimeError, NotImplementedError, AttributeError) as exc:
        logger.info("SIGHUP reload not available here (%s); use POST /v1/models/reload", exc)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    await load_and_install(app)
    _on_sighup(app)
    yield
    await shutdown(app)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    # FastAPIOffline: /docs with Swagger UI's assets served from the installed package
    # (FastAPI's own page loads them from a CDN: blank without the internet). No /redoc: ReDoc
    # still fetches its logo from its CDN
    app = FastAPIOffline(
        redoc_url=None,
        redirect_slashes=False,  # a bare 307 helps no one: 404 saying "without the trailing slash"
        title="RUL service",
        summary="Remaining useful life and health state of turbofan engines from sensor windows",
        version="1",
        lifespan=_lifespan,
    )
    metrics = Metrics()
    app.state.service = ServiceState(
        settings,
        metrics,
        LOADING,
        asyncio.Lock(),
        asyncio.Semaphore(settings.max_concurrent_scores),
        OpenRequests(),
    )
    _add_routes(app)
    _add_middleware(app, settings, metrics)
    return app


def _add_routes(app: FastAPI) -> None:
    """The routes, the static files and the error handlers (one error shape per protocol)."""
    # predict first: routes are matched in order, and single-window predict is the hot path
    app.include_router(predict.api)
    app.include_router(health.router)
    app.mount("/static", StaticFiles(directory=health.STATIC_DIR), name="static")
    app.include_router(models.api)
    app.include_router(score_api)
    app.include_router(oip.health)
    app.include_router(oip.api)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)


def _add_middleware(app: FastAPI, settings: Settings, metrics: Metrics) -> None:
    """The transport's middleware. add_middleware wraps what is there: the last added runs first
    on a request."""
    memory = BodyBudget(
        settings.max_bodies_in_memory_bytes, "RUL_MAX_BODIES_IN_MEMORY_BYTES", "held in memory"
    )
    disk = BodyBudget(settings.max_uploads_on_disk_bytes, "RUL_MAX_UPLOADS_ON_DISK_BYTES", "spooled to disk")
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes, memory=memory, disk=disk)
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
    app.add_middleware(ChunkedAnswers, max_bytes=settings.max_buffered_bytes)  # with http_protocol.py
