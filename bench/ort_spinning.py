"""ONNX Runtime's intra-op spinning on and off in our service, side by side in one run.

    python -m bench.ort_spinning --data-dir ../shared/data/cmapss [--rounds 2] [--seconds 6]

After each run ONNX Runtime's intra-op threads busy-wait for the next piece of work (its
default, `session.intra_op.allow_spinning`); on a small CPU that spinning competes with the
HTTP and JSON work between runs. `RUL_INTRA_OP_SPINNING=false` lets the threads sleep. This
serves the shipped fd001 both ways, with dynamic batching on and off, and sends single-window
requests from wrk at 1, 16 and 64 connections, the four servers in turn, `--rounds` times.
Writes bench/results/ort_spinning.json and prints each cell's req/s and p50/p99 per round.
"""

import argparse
import tempfile
import time
from pathlib import Path

from bench.model_compute import machine, write_result
from bench.servers import start_ours
from bench.service_bench import bodies, concurrency_runs, real_windows, wrk


def label(batching: bool, spinning: bool, connections: int) -> str:
    return f"batching {'on' if batching else 'off'}, spinning {'on' if spinning else 'off'}, c={connections}"


def measure(batching: bool, spinning: bool, body: Path, seconds: float) -> dict[str, dict]:
    """One server: req/s, latency and failures at each concurrency."""
    server = start_ours(batching, settings={"RUL_INTRA_OP_SPINNING": str(spinning).lower()})
    try:
        wrk(server, body, 8, 2)  # warm-up, not recorded
        return {
            label(batching, spinning, connections): {k: run[k] for k in ("ok_per_s", "latency_ms", "failed")}
            for connections, run in concurrency_runs(server, body, seconds).items()
        }
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each wrk run (at most 30)")
    args = parser.parse_args()
    if not 0 < args.seconds <= 30:
        parser.error("--seconds must be in (0, 30]")
    cells: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        body = bodies(real_windows(args.data_dir, 1, 50), Path(scratch))["ours"]
        for _ in range(args.rounds):
            for batching in (True, False):
                for spinning in (True, False):
                    for key, cell in measure(batching, spinning, body, args.seconds).items():
                        cells.setdefault(key, []).append(cell)
                        print(key, cell["ok_per_s"], cell["latency_ms"], flush=True)
    result = {"machine": machine("cpu"), "measured": time.strftime("%Y-%m-%d %H:%M"), "model": "fd001",
              "seconds": args.seconds, "rounds": args.rounds, "cells": cells}  # fmt: skip
    write_result("ort_spinning", "cpu", result)


if __name__ == "__main__":
    main()
