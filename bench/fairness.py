"""Does one large predict request hold up the small ones? Side by side in one run, against a
live `rul-serve` (fd001, CPU, batching on) on loopback:

    python -m bench.fairness

For each setting of RUL_PIECE_WINDOWS (the default 32; and 10 000, i.e. a large request in
one go, as before pieces existed): the latency of a 2-window predict alone (sequential
requests), then the latency of the same requests sent one after another while a 5 000-window
predict runs (45 MB of JSON: 10 000 windows of these readings would pass the 64 MiB body
limit), and how long that large request took; and, alone, the windows per second of five
1 000-window requests in a row (what pieces cost a bulk client). Target (issue "The
front door and the sharp edges"): the small request's p50 and p99 while the large one runs
<= 5x its p50 alone. Writes bench/results/fairness.json. Bounded: about 2 minutes on 2 cores.
"""

import argparse
import json
import statistics
import threading
import time
from pathlib import Path

import httpx

from bench.model_compute import write_result
from bench.servers import start_ours

EXAMPLE = json.loads((Path(__file__).parents[1] / "service/examples/predict_fd001.json").read_text())
READINGS = EXAMPLE["windows"][0]["readings"]
SMALL = json.dumps({"windows": [{"readings": READINGS}] * 2}).encode()
HEADERS = {"content-type": "application/json"}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile, q in [0, 1]."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def small_latencies(client: httpx.Client, until: threading.Event | None, count: int) -> list[float]:
    """ms per 2-window predict, one after another with a 10 ms pause: `count` of them, or
    until `until` is set."""
    latencies: list[float] = []
    while (until is None and len(latencies) < count) or (until is not None and not until.is_set()):
        started = time.perf_counter()
        response = client.post("/v1/models/fd001/predict", content=SMALL, headers=HEADERS)
        response.raise_for_status()
        latencies.append((time.perf_counter() - started) * 1000)
        time.sleep(0.01)
    return latencies


def measure(piece_windows: int, large_windows: int) -> dict[str, float]:
    large = json.dumps({"windows": [{"readings": READINGS}] * large_windows}).encode()
    server = start_ours(batching=True, settings={"RUL_PIECE_WINDOWS": str(piece_windows)})
    try:
        with httpx.Client(base_url=server.url, timeout=300) as client:
            small_latencies(client, None, 50)  # warm-up
            alone = small_latencies(client, None, 200)
            done = threading.Event()
            large_seconds: list[float] = []

            def send_large() -> None:
                try:
                    with httpx.Client(base_url=server.url, timeout=300) as own:
                        started = time.perf_counter()
                        response = own.post("/v1/models/fd001/predict", content=large, headers=HEADERS)
                        large_seconds.append(time.perf_counter() - started)
                        response.raise_for_status()
                finally:
                    done.set()

            batch = json.dumps({"windows": [{"readings": READINGS}] * 1000}).encode()
            client.post("/v1/models/fd001/predict", content=batch, headers=HEADERS).raise_for_status()
            started = time.perf_counter()
            for _ in range(5):  # throughput of 1 000-window requests, nothing else running
                client.post("/v1/models/fd001/predict", content=batch, headers=HEADERS).raise_for_status()
            batch_rate = 5000 / (time.perf_counter() - started)
            thread = threading.Thread(target=send_large)
            thread.start()
            during = small_latencies(client, done, 0)
            thread.join()
        if not large_seconds:
            raise RuntimeError("the large request failed")
    finally:
        server.stop()
    alone_p50 = statistics.median(alone)
    return {
        "piece_windows": piece_windows,
        "large_windows": large_windows,
        "large_seconds": round(large_seconds[0], 2),
        "batch_1000_windows_per_s": round(batch_rate),
        "small_alone_p50_ms": round(alone_p50, 2),
        "small_alone_p99_ms": round(percentile(alone, 0.99), 2),
        "small_during_n": len(during),
        "small_during_p50_ms": round(statistics.median(during), 2),
        "small_during_p99_ms": round(percentile(during, 0.99), 2),
        "small_during_max_ms": round(max(during), 2),
        "p50_ratio": round(statistics.median(during) / alone_p50, 2),
        "p99_ratio": round(percentile(during, 0.99) / alone_p50, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--pieces", type=int, nargs="+", default=[32, 10_000], help="RUL_PIECE_WINDOWS values"
    )
    parser.add_argument(
        "--large-windows", type=int, default=5_000, help="45 MB of JSON (64 MiB is the limit)"
    )
    args = parser.parse_args()
    results = [measure(p, args.large_windows) for p in args.pieces]
    for row in results:
        print(json.dumps(row))
    write_result("fairness", "cpu", {"runs": results})


if __name__ == "__main__":
    main()
