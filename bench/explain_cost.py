"""What the drivers cost (service/core/drivers.py): a predict of 1 and of 1 000 real windows,
with and without `"explain": true`, side by side on one server, alternating, one connection.

    python -m bench.explain_cost --data-dir ../shared/data/cmapss [--rounds 5]

The server is rul-serve on fd001 (CPU, batching on) with RUL_MAX_WINDOWS_PER_REQUEST=20000: an
explained 1 000-window request runs 15 000 windows (14 read sensors + 1), over the default
10 000. Prints and writes bench/results/explain_cost.json: per request shape, the median
latency of each kind over the rounds and their ratio.
"""

import argparse
import json
import statistics
import time

import httpx
import numpy as np

from bench.model_compute import machine, write_result
from bench.servers import start_ours
from bench.service_bench import real_windows

SHAPES = {"1 window": 1, "1 000 windows": 1000}


def timed(client: httpx.Client, url: str, body: dict, repeats: int) -> float:
    """Median seconds of `repeats` predicts of `body`."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        response = client.post(url, json=body)
        times.append(time.perf_counter() - started)
        response.raise_for_status()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    windows = real_windows(args.data_dir, 1000, 50)
    server = start_ours(True, settings={"RUL_MAX_WINDOWS_PER_REQUEST": "20000"})
    results: dict = {}
    try:
        with httpx.Client(timeout=300) as client:
            for shape, n in SHAPES.items():
                readings = [{"readings": w.tolist()} for w in windows[-n:]]
                repeats = 50 if n == 1 else 2
                plain, explained = [], []
                for _ in range(args.rounds):
                    plain.append(timed(client, server.url + "/v1/predict", {"windows": readings}, repeats))
                    explained.append(
                        timed(
                            client,
                            server.url + "/v1/predict",
                            {"windows": readings, "explain": True},
                            repeats,
                        )
                    )
                results[shape] = {
                    "plain_ms": round(float(np.median(plain)) * 1000, 2),
                    "explain_ms": round(float(np.median(explained)) * 1000, 2),
                    "explain_over_plain": round(float(np.median(explained) / np.median(plain)), 2),
                    "rounds_plain_ms": [round(t * 1000, 2) for t in plain],
                    "rounds_explain_ms": [round(t * 1000, 2) for t in explained],
                }
                print(shape, json.dumps(results[shape]), flush=True)
    finally:
        server.stop()
    out = {"machine": machine("cpu"), "measured": time.strftime("%Y-%m-%d %H:%M"), "model": "fd001",
           "rounds": args.rounds, "results": results}  # fmt: skip
    write_result("explain_cost", "cpu", out)


if __name__ == "__main__":
    main()
