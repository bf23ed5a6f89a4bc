"""Open routes (no key): the dashboard, Prometheus metrics, liveness and readiness."""

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from service.core.threads import in_worker
from service.transport.dependencies import MetricsDep, ServedDep, not_ready_reason
from service.transport.schemas import Readiness

router = APIRouter()
STATIC_DIR = Path(__file__).parent.parent / "static"


@router.get("/", include_in_schema=False)
async def dashboard() -> FileResponse:
    """The fleet dashboard (static files in service/static, no internet needed)."""
    return FileResponse(STATIC_DIR / "index.html")


@router.get("/metrics", tags=["health"], response_class=PlainTextResponse)
async def prometheus_metrics(metrics: MetricsDep) -> Response:
    """Prometheus metrics: requests and latency by route and status, inference time and batch
    size by model, model info (version, provider)."""
    # rendered in a worker thread: its time grows with the series, never the loop's to pay
    return Response(await in_worker(metrics.exposition), media_type=CONTENT_TYPE_LATEST)


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
