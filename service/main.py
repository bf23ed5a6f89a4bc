"""`rul-serve`: run the service with uvicorn.

    rul-serve --models-dir models --host 0.0.0.0 --port 8000

Flags override the RUL_* environment variables (service.settings.Settings).
"""

import argparse
import logging
import sys

import uvicorn

from service.app import create_app
from service.core.memory import return_large_blocks_at_once
from service.settings import Settings
from service.state import service_state
from service.transport.http_protocol import guarded_protocol
from service.transport.request_id import RequestIdFilter


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", help="bind address (RUL_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (RUL_PORT, default 8000)")
    parser.add_argument(
        "--models-dir",
        help="directory of <name>.onnx + <name>.json (RUL_MODELS_DIR, default models)",
    )
    parser.add_argument(
        "--providers",
        choices=["auto", "cuda", "tensorrt", "cpu"],
        help="execution provider (RUL_PROVIDERS, default auto)",
    )
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    settings = Settings(**overrides)
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"))
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler])
    return_large_blocks_at_once()
    try:
        config = server_config(settings)
    except RuntimeError as exc:  # a uvicorn the connection guards cannot use (http_protocol.py)
        sys.exit(f"rul-serve: {exc}")
    uvicorn.Server(config).run()


def server_config(settings: Settings, log_level: str | None = None) -> uvicorn.Config:
    """uvicorn's configuration for the app: the connection guards of service/transport/http_protocol.py,
    keep-alive and connection limits from the settings. log_config=None: uvicorn's own loggers
    (the access log too) go through the handler that main() installs."""
    app = create_app(settings)
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        log_level=log_level,
        http=guarded_protocol(
            settings.max_header_bytes,
            settings.header_timeout_s,
            settings.body_timeout_s,
            settings.write_timeout_s,
            settings.max_connections_per_client,
            settings.max_buffered_bytes,
            service_state(app).requests,
        ),  # fmt: skip
        timeout_keep_alive=settings.keep_alive_timeout_s,
        # X-Forwarded-For is read only from the trusted proxies (the client: the right-most
        # address they did not add); without any, never (uvicorn would trust 127.0.0.1)
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=",".join(settings.trusted_proxies) or "",
        limit_concurrency=settings.max_connections,
    )


if __name__ == "__main__":
    main()
