"""Service configuration: one pydantic-settings class, every field overridable by an
environment variable with the prefix RUL_ (e.g. RUL_MODELS_DIR, RUL_PROVIDERS)."""

import ipaddress
import sys
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.core.planning import (
    DEFAULT_HORIZONS,
    DEFAULT_RISK,
    MAX_HORIZONS,
    MAX_RISK,
    Planning,
    planning_problem,
)
from service.core.providers import ProviderChoice, SessionConfig

# A comma-separated environment variable: RUL_API_KEYS=key1,key2
CommaList = Annotated[list[str], NoDecode]


def default_models_dir() -> Path:
    """`./models` when it holds models (the repository root), else the models shipped with the
    package: the repository's `models/` beside the `service` package (a checkout or an editable
    install), or `<prefix>/share/rul-service/models` (a wheel install, pyproject's data-files);
    `./models` when none has any."""
    candidates = [
        Path("models"),
        Path(__file__).resolve().parents[1] / "models",
        Path(sys.prefix) / "share" / "rul-service" / "models",
    ]
    found = next((c for c in candidates if any(c.glob("*.onnx"))), candidates[0])
    return found.resolve()


def split_list(value: Any) -> Any:
    """'a, b,,c' -> ['a', 'b', 'c'] for comma-separated settings; lists pass through."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RUL_")

    host: str = "127.0.0.1"  # bind address; 0.0.0.0 in the container
    port: int = 8000
    # every <name>.onnx with a <name>.json card is served; default: the shipped models, found
    # from any working directory (default_models_dir)
    models_dir: Path = Field(default_factory=default_models_dir)
    default_model: str = ""  # served by POST /v1/predict; empty: 'fd001' if present, else the first name
    providers: ProviderChoice = "auto"  # auto: CUDA when it really loads, else CPU with a warning
    intra_op_threads: int = 0  # ONNX Runtime intra-op threads per session; 0: its default
    intra_op_spinning: bool = True  # ONNX Runtime's threads busy-wait between runs (its default)
    tensorrt_cache_dir: Path = Path("/tmp/rul-tensorrt-cache")  # engine cache for RUL_PROVIDERS=tensorrt
    log_level: str = "info"
    api_keys: CommaList = []  # empty: no authentication; else /v1 and /v2/models routes need one of them
    auth_free_failures: int = Field(default=5, ge=0)  # wrong keys from one address before it must wait
    auth_max_backoff_s: float = Field(default=300.0, gt=0)  # the longest wait (it doubles from 1 s)
    # proxies whose X-Forwarded-For names the client (addresses or networks, e.g. 10.0.0.0/8);
    # empty: none, every client is its TCP peer (uvicorn's own default trusts 127.0.0.1)
    trusted_proxies: CommaList = []
    max_body_bytes: int = 64 * 1024 * 1024  # larger request bodies get 413 (fleet files included)
    # across all requests at once: request bodies held in memory, and fleet uploads spooled to
    # disk (multipart); one that would pass its total gets 503 naming the setting
    max_bodies_in_memory_bytes: int = Field(default=256 * 1024 * 1024, ge=0)
    max_uploads_on_disk_bytes: int = Field(default=512 * 1024 * 1024, ge=0)
    max_windows_per_request: int = 10_000  # more windows in one predict request get 413
    max_cycles_per_window: int = 1_000  # longer windows get 413 (C-MAPSS units live <= 543 cycles)
    batching: bool = True  # coalesce concurrent requests into one ONNX Runtime run per model
    max_batch_size: int = 256  # windows per coalesced run of small requests
    # requests of more windows run in pieces of this many, taking turns with other requests
    piece_windows: int = Field(default=32, ge=1)
    # how long the first request waits for others to join; 0: none waits, and the requests that
    # arrive while a run is in progress form the next batch (measured best on CPU, bench/README.md)
    max_queue_delay_ms: float = 0.0
    max_queue_size: int = 1000  # requests waiting per model; more get 503 with Retry-After
    # Connections (service/transport/http_protocol.py): no client can hold the server.
    max_header_bytes: int = 64 * 1024  # a request's headers; more get 431
    header_timeout_s: float = 10.0  # a request's headers must arrive within this; else 408, closed
    body_timeout_s: float = 60.0  # its body within this after the headers; else 408, closed
    keep_alive_timeout_s: int = 5  # an idle kept-alive connection is closed after this
    max_connections: int = 1000  # open connections and running requests; more get 503 (not the probes)
    max_connections_per_client: int = Field(default=100, ge=1)  # from one address; more get 503, closed
    write_timeout_s: float = Field(default=30.0, gt=0)  # an answer not drained in this closes its connection
    # an answer's bytes waiting in one connection's write buffer: about twice this at most
    max_buffered_bytes: int = Field(default=256 * 1024, ge=4096)
    # Fleet-file uploads (POST /v1/models/{model}/score): limits checked while the file streams
    # in, 413 beyond them; scoring jobs at a time, 503 + Retry-After beyond.
    max_upload_rows: int = 2_000_000  # rows of readings (all of C-MAPSS has 160 359 training rows)
    max_upload_units: int = Field(default=20_000, ge=1)  # distinct units in one file (C-MAPSS: at most 260)
    max_upload_decompressed_bytes: int = 1024 * 1024 * 1024  # text after gunzip
    max_decompression_ratio: float = 100.0  # C-MAPSS text compresses about 5x; a gzip bomb 1000x
    max_trajectory_points: int = 500_000  # all_cycles=true: predictions in one answer
    max_concurrent_scores: int = 2  # scoring jobs running at once
    # true: a window whose quality status is out_of_distribution gets a 422 naming the window
    # and the problem instead of an answer (predict and /v2 infer); false: answered and flagged
    reject_out_of_distribution: bool = False
    cors_origins: CommaList = []  # browser origins allowed to call the API (dashboards); empty: none
    # A planner's questions when a request does not ask (service/core/planning.py): P(failure within
    # each horizon, cycles), and the RUL left at this risk. RUL_DEFAULT_HORIZONS=10,30
    default_horizons: Annotated[list[int], NoDecode] = Field(
        default=list(DEFAULT_HORIZONS), min_length=1, max_length=MAX_HORIZONS
    )
    default_risk: float = Field(default=DEFAULT_RISK, gt=0, le=MAX_RISK)

    _split = field_validator(
        "api_keys", "cors_origins", "default_horizons", "trusted_proxies", mode="before"
    )(split_list)

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, proxies: list[str]) -> list[str]:
        for proxy in proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(f"{proxy!r} is not an address or a network (e.g. 10.0.0.0/8)") from None
        return proxies

    @field_validator("default_horizons")
    @classmethod
    def _horizons(cls, horizons: list[int]) -> list[int]:
        problem = planning_problem(horizons, DEFAULT_RISK, float("inf"))
        if problem:
            raise ValueError(problem[1])
        return horizons

    def planning(self) -> Planning:
        """The horizons and risk answered when a request does not ask."""
        return Planning(tuple(self.default_horizons), self.default_risk)

    def session_config(self) -> SessionConfig:
        return SessionConfig(
            self.providers, self.intra_op_threads, self.tensorrt_cache_dir, self.intra_op_spinning
        )
