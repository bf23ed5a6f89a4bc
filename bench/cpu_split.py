"""Where the CPU goes when our service takes single-window requests at 64 connections: the
event-loop thread (HTTP, JSON, validation, responses) against the threads that run the model
(ONNX Runtime's and the worker thread that calls it), per request, with dynamic batching on
and off; and how full the batches are and how much of the time the model is running.

    python -m bench.cpu_split --data-dir ../shared/data/cmapss [--seconds 10]

It explains the batching ratio of service_bench.py on a small CPU: every request costs the
event loop some CPU that batching cannot remove, on the same cores the model needs. Reads
/proc/<pid>/task/*/stat before and after one wrk run per configuration, and the service's
own /metrics (rul_batch_size_windows, rul_inference_seconds) for the batches. Writes
bench/results/cpu_split.json and prints one line per configuration.
"""

import argparse
import tempfile
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.model_compute import machine, write_result
from bench.servers import Server, start_ours, thread_cpu_seconds
from bench.service_bench import MODEL, bodies, real_windows, wrk

CONNECTIONS = 64


def model_counters(server: Server) -> dict[str, float]:
    """Sums and counts of the model's batch-size and inference-time histograms so far."""
    wanted = {"rul_batch_size_windows_sum", "rul_batch_size_windows_count", "rul_inference_seconds_sum"}
    values = {name: 0.0 for name in wanted}
    for family in text_string_to_metric_families(httpx.get(f"{server.url}/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name in wanted and sample.labels.get("model") == MODEL:
                values[sample.name] = sample.value
    return values


def measure(batching: bool, body: Path, seconds: float) -> dict:
    server = start_ours(batching)
    try:
        wrk(server, body, 8, 2)  # warm-up, not recorded
        server.wait_idle()
        pid = server.process.pid
        threads_before, counters_before = thread_cpu_seconds(pid), model_counters(server)
        started = time.perf_counter()
        run = wrk(server, body, CONNECTIONS, seconds)
        elapsed = time.perf_counter() - started  # includes wrk's idle wait (~0.5 s): an upper bound
        threads_after, counters_after = thread_cpu_seconds(pid), model_counters(server)
    finally:
        server.stop()
    spent = {tid: cpu - threads_before.get(tid, 0.0) for tid, cpu in threads_after.items()}
    event_loop = spent.get(pid, 0.0)
    other = sum(spent.values()) - event_loop
    delta = {name: counters_after[name] - counters_before[name] for name in counters_after}
    requests, runs = run["requests"], max(delta["rul_batch_size_windows_count"], 1)
    return {
        "batching": batching,
        "connections": CONNECTIONS,
        "ok_per_s": run["ok_per_s"],
        "requests": requests,
        "event_loop_cpu_ms_per_request": round(1e3 * event_loop / requests, 3),
        "model_threads_cpu_ms_per_request": round(1e3 * other / requests, 3),
        "cores_busy": round((event_loop + other) / elapsed, 2),
        "model_runs": int(delta["rul_batch_size_windows_count"]),
        "mean_batch_windows": round(delta["rul_batch_size_windows_sum"] / runs, 1),
        # seconds of model runs per second of load: the model's busy share with batching on (one
        # run at a time); above 1 with batching off, where requests' runs overlap
        "model_run_seconds_per_second": round(delta["rul_inference_seconds_sum"] / elapsed, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each wrk run (at most 60)")
    args = parser.parse_args()
    if not 0 < args.seconds <= 60:
        parser.error("--seconds must be in (0, 60]")
    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        body = bodies(real_windows(args.data_dir, 1, 50), Path(scratch))["ours"]
        for batching in (True, False):
            runs.append(measure(batching, body, args.seconds))
            print(runs[-1], flush=True)
    result = {"machine": machine("cpu"), "measured": time.strftime("%Y-%m-%d %H:%M"), "model": MODEL,
              "seconds": args.seconds, "runs": runs}  # fmt: skip
    write_result("cpu_split", "cpu", result)


if __name__ == "__main__":
    main()
