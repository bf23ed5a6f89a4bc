"""What a one-window predict costs in the server process, the model's run left out: our
`/v1/predict` against the minimal FastAPI peer's `/predict` (bench/peers/minimal_fastapi.py),
both driven in one process by raw ASGI calls (no network, no uvicorn), the model run replaced
by its cached outputs. Alternated in rounds; the median per-request time of each.

    python -m bench.route_cost --data-dir ../shared/data/cmapss [--rounds 15 --requests 2000]

The served one-connection gap to the peer (service_bench's c1_alternating) is this difference
plus what uvicorn and the network add to both; the model's run is the same in both processes.
"""

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.service_bench import MODEL, bodies, single_window

ROOT = Path(__file__).resolve().parents[1]
BATCHING = os.environ.get("RUL_BATCHING", "true") == "true"


async def lifespan_started(app) -> asyncio.Queue:
    """Start `app`'s lifespan; returns the queue that ends it."""
    inbox: asyncio.Queue = asyncio.Queue()
    started = asyncio.Event()
    await inbox.put({"type": "lifespan.startup"})

    async def send(message: dict) -> None:
        if message["type"].startswith("lifespan.startup"):
            if message["type"].endswith("failed"):
                raise SystemExit(message.get("message"))
            started.set()

    asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, send))
    await started.wait()
    return inbox


async def post(app, path: str, body: bytes) -> int:
    """One POST of `body` to `path` through the ASGI app; its status."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],  # fmt: skip
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent = False
    status = 0

    async def receive() -> dict:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def per_request_us(app, path: str, body: bytes, requests: int) -> float:
    started = time.perf_counter()
    for _ in range(requests):
        status = await post(app, path, body)
        if status != 200:
            raise SystemExit(f"{path} answered {status}")
    return (time.perf_counter() - started) / requests * 1e6


def ours_app():
    """Our app on fd001 alone, the model's run stubbed with its cached outputs."""
    from bench.servers import only_model_dir
    from service.app import create_app
    from service.core.predictor import Predictor
    from service.settings import Settings

    real_run = Predictor.run
    cache: dict = {}

    def cached_run(self, batch, give_back=None):
        key = (self.card.name, batch.tobytes())
        if key not in cache:
            cache[key] = real_run(self, batch, give_back)
        return cache[key]

    Predictor.run = cached_run  # type: ignore[method-assign]
    settings = Settings(models_dir=only_model_dir(MODEL), log_level="warning", batching=BATCHING)
    return create_app(settings)


def peer_app():
    """The minimal FastAPI peer, its session.run stubbed with its cached outputs."""
    os.environ["PEER_MODEL"] = str(ROOT / "models" / f"{MODEL}.onnx")
    from bench.peers import minimal_fastapi

    real = minimal_fastapi.session
    cache: dict = {}

    class Cached:
        def run(self, names, feed):
            key = next(iter(feed.values())).tobytes()
            if key not in cache:
                cache[key] = real.run(names, feed)
            return cache[key]

    minimal_fastapi.session = Cached()
    return minimal_fastapi.app


async def main_async(args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        paths = bodies(single_window(args.data_dir), Path(tmp))
        ours_body, peer_body = paths["ours"].read_bytes(), paths["peer"].read_bytes()
    ours, peer = ours_app(), peer_app()
    await lifespan_started(ours)
    ours.state.service.requests.bind({"the one request"})  # as uvicorn's task set holds it alone
    times: dict[str, list[float]] = {"ours": [], "peer": []}
    for app, path, body in ((ours, "/v1/predict", ours_body), (peer, "/predict", peer_body)):
        await per_request_us(app, path, body, 200)  # warm-up
    for _ in range(args.rounds):
        times["ours"].append(await per_request_us(ours, "/v1/predict", ours_body, args.requests))
        times["peer"].append(await per_request_us(peer, "/predict", peer_body, args.requests))
    median = {name: round(float(np.median(t)), 1) for name, t in times.items()}
    return {"rounds": args.rounds, "requests": args.requests, "per_request_us_median": median,
            "ours_over_peer_time": round(median["ours"] / median["peer"], 2)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args)), indent=2))


if __name__ == "__main__":
    main()
