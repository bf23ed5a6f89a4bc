"""Prometheus metrics (prometheus-client), one registry per app so that several apps (tests,
reloads) never collide. Served by GET /metrics in the text exposition format."""

import collections
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.core.window_quality import OUT_OF_DISTRIBUTION, WindowQuality

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "rul_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "rul_request_duration_seconds",
            "HTTP request latency by route template, method and status",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.inference = Histogram(
            "rul_inference_seconds",
            "ONNX Runtime run time per batch",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "rul_batch_size_windows",
            "windows per ONNX Runtime run",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.queue_time = Histogram(
            "rul_queue_seconds",
            "time a request waited in the dynamic batcher's queue",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.flagged = Counter(
            "rul_quality_flagged_windows",
            'windows with an input column (or, column "window", the whole window) flagged by the model\'s '
            "checks, by model, column and check",
            ["model", "column", "problem"],
            registry=self.registry,
        )
        self.out_of_distribution = Counter(
            "rul_out_of_distribution_windows",
            "windows whose quality status is out_of_distribution, by model",
            ["model"],
            registry=self.registry,
        )
        self.model_info = Gauge(
            "rul_model_info",
            "1 for each served model, labelled with its version and the execution provider in use",
            ["model", "version", "provider"],
            registry=self.registry,
        )

    def observe_queue(self, model: str, seconds: float) -> None:
        self.queue_time.labels(model).observe(seconds)

    def observe_run(self, model: str, windows: int, seconds: float) -> None:
        self.inference.labels(model).observe(seconds)
        self.batch_size.labels(model).observe(windows)

    def observe_quality(self, model: str, qualities: list[WindowQuality]) -> None:
        """Count flagged columns and out-of-distribution windows: sensor trouble and drift.
        Counted first, then one increment per series: 20 000 flagged windows are a pass over
        their flags, not 340 000 increments. Python work: callers run it off the event loop
        for large answers."""
        flagged = collections.Counter(
            (column or "window", check) for q in qualities for column, check, *_ in q.flag_rows
        )
        for (column, check), count in flagged.items():
            self.flagged.labels(model, column, check).inc(count)
        outside = sum(q.status == OUT_OF_DISTRIBUTION for q in qualities)
        if outside:
            self.out_of_distribution.labels(model).inc(outside)

    def set_models(self, models: dict[str, tuple[str, str]]) -> None:
        """{name: (version, provider)} -> rul_model_info, replacing what was there."""
        self.model_info.clear()
        for name, (version, provider) in models.items():
            self.model_info.labels(name, version, provider).set(1)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class RequestMetrics:
    """ASGI middleware counting requests and timing them by route template (not raw path,
    which would give every unknown URL its own series)."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            template, method = route_template(scope), method_label(scope["method"])
            self.metrics.requests.labels(template, method, str(status)).inc()
            elapsed = time.perf_counter() - started
            self.metrics.latency.labels(template, method, str(status)).observe(elapsed)


METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    """The request method as a label value: one of METHODS, else "other". A client may send any
    token as its method; each would otherwise add series (780 of them, made by odd methods,
    made /metrics take 0.5 s to render)."""
    return method if method in METHODS else "other"


def route_template(scope: Scope) -> str:
    """The route a request matched, as its template (/v1/models/{model}/predict): bounded label
    values. A mounted app (the dashboard's /static files) is its mount path plus {path}, taken
    from the part of root_path the mount added; anything else "unmatched"."""
    route = scope.get("route")
    if route is not None:
        return str(route.path)
    if "endpoint" in scope and scope.get("root_path", "") != scope.get("app_root_path", ""):
        mount = scope["root_path"][len(scope.get("app_root_path", "")) :]
        return f"{mount}/{{path}}"
    return "unmatched"
