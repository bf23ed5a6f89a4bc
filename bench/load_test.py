"""Bounded load test on loopback: send single-window predict requests at a target rate for a
fixed time and report errors (must be 0), throughput and latency percentiles.

    python -m bench.load_test --rate 200 --seconds 10 --concurrency 64            # starts its own server
    python -m bench.load_test --url http://127.0.0.1:8000 --rate 100 --seconds 5   # an existing one

Only loopback URLs are accepted. With --compare-batching it starts the service twice (dynamic
batching on, then off) and runs the same load against each, side by side in one run.
Writes bench/results/load_test.json.
"""

import argparse
import asyncio
import json
import os
import platform
import time
from urllib.parse import urlparse

import httpx
import numpy as np

from bench.servers import LOOPBACK, ROOT, start_ours

BODY = json.loads((ROOT / "service" / "examples" / "predict_fd001.json").read_text())
ONE_WINDOW = {"windows": BODY["windows"][:1]}


async def run_load(url: str, rate: float, seconds: float, concurrency: int) -> dict:
    """Open-loop arrivals at `rate`/s for `seconds`, at most `concurrency` in flight."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    limit = asyncio.Semaphore(concurrency)

    async def one(client: httpx.AsyncClient) -> None:
        async with limit:
            started = time.perf_counter()
            try:
                response = await client.post(f"{url}/v1/predict", json=ONE_WINDOW)
                if response.status_code != 200:
                    errors[str(response.status_code)] = errors.get(str(response.status_code), 0) + 1
                    return
            except httpx.HTTPError as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                return
            latencies.append(time.perf_counter() - started)

    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=concurrency)) as client:
        tasks, started = [], time.perf_counter()
        n = int(rate * seconds)
        for i in range(n):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(client)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    quantiles = (("p50", 50), ("p90", 90), ("p99", 99))
    return {
        "requests": n, "ok": len(latencies), "errors": errors, "seconds": round(elapsed, 2),
        "throughput_per_s": round(len(latencies) / elapsed, 1),
        "latency_ms": {p: round(float(np.percentile(ms, q)), 2) for p, q in quantiles} if len(ms) else {},
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="an already running service on loopback (default: start one)")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second offered")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to offer them (bounded)")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight at most")
    parser.add_argument("--compare-batching", action="store_true", help="batching on vs off, side by side")
    args = parser.parse_args()
    if args.seconds > 120 or args.rate * args.seconds > 100_000:
        parser.error("bounded on purpose: at most 120 s and 100 000 requests")
    if args.url and urlparse(args.url).hostname not in LOOPBACK:
        parser.error("loopback only: --url must be http://127.0.0.1:PORT or http://localhost:PORT")
    results: dict[str, dict] = {}
    if args.url:
        results["given_server"] = asyncio.run(run_load(args.url, args.rate, args.seconds, args.concurrency))
    else:
        for batching in [True, False] if args.compare_batching else [True]:
            server = start_ours(batching, model=None)
            url = server.url
            try:
                asyncio.run(run_load(url, min(args.rate, 50), 1, 8))  # warm-up, not recorded
                results[f"batching_{'on' if batching else 'off'}"] = asyncio.run(
                    run_load(url, args.rate, args.seconds, args.concurrency))  # fmt: skip
            finally:
                server.stop()
    out = {"offered_rate_per_s": args.rate, "seconds": args.seconds, "concurrency": args.concurrency,
           "machine": f"{platform.machine()}, {os.cpu_count()} cores, CPUExecutionProvider",
           "measured": time.strftime("%Y-%m-%d %H:%M"), "results": results}  # fmt: skip
    (ROOT / "bench" / "results" / "load_test.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
