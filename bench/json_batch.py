"""The JSON batch path against bare ONNX Runtime, side by side in one run.

    python -m bench.json_batch --data-dir ../shared/data/cmapss [--rounds 4] [--seconds 8] \
        [--baseline-tree /tmp/before]    # git worktree add /tmp/before <commit>

A 1 000-window predict request (real 50-cycle FD001 test windows, values rounded as in the
C-MAPSS text files) posted to `rul-serve` (fd001 only, CPU, batching on) from one connection,
closed loop, for --seconds; and `session.run` on the same 1 000 windows in this process for as
long; interleaved, --rounds times each, so that the machine's noise falls on both. With
--baseline-tree, the service of that checkout (an earlier commit) runs in the same rounds.
Reports windows/s of each and the ratio service / bare (median of the rounds). Writes
bench/results/json_batch.json.
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import httpx

from bench.model_compute import machine, write_result
from bench.servers import start_ours
from bench.service_bench import MODEL, bare_onnxruntime, real_windows


def service_rate(url: str, body: bytes, n_windows: int, seconds: float) -> float:
    """Windows/s of closed-loop 1-connection requests carrying `body`, after one warm request."""
    headers = {"Content-Type": "application/json"}
    with httpx.Client(base_url=url, timeout=120) as client:
        client.post("/v1/predict", content=body, headers=headers).raise_for_status()
        calls, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            client.post("/v1/predict", content=body, headers=headers).raise_for_status()
            calls += 1
        return calls * n_windows / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--windows", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--baseline-tree", type=Path, help="also the service of this checkout, same rounds")
    args = parser.parse_args()
    windows = real_windows(args.data_dir, args.windows, 50)
    body = json.dumps({"windows": [{"readings": w.tolist()} for w in windows]}).encode()
    server = start_ours(batching=True, model=MODEL)
    baseline = start_ours(batching=True, model=MODEL, tree=args.baseline_tree) if args.baseline_tree else None
    rounds = []
    try:
        for _ in range(args.rounds):
            bare = bare_onnxruntime(windows, args.seconds, "cpu")
            ours = service_rate(server.url, body, len(windows), args.seconds)
            entry = {"bare_windows_per_s": round(bare, 1), "service_windows_per_s": round(ours, 1),
                     "ratio": round(ours / bare, 3)}  # fmt: skip
            if baseline:
                before = service_rate(baseline.url, body, len(windows), args.seconds)
                entry |= {
                    "baseline_windows_per_s": round(before, 1),
                    "baseline_ratio": round(before / bare, 3),
                }
            rounds.append(entry)
            print(json.dumps(entry), flush=True)
    finally:
        server.stop()
        if baseline:
            baseline.stop()
    result = {
        "machine": machine("cpu"),
        "at": time.strftime("%Y-%m-%d %H:%M"),
        "windows_per_request": len(windows),
        "body_bytes": len(body),
        "rounds": rounds,
        "median_ratio": statistics.median(r["ratio"] for r in rounds),
    }
    if baseline:
        result["baseline_tree"] = str(args.baseline_tree)
        result["baseline_median_ratio"] = statistics.median(r["baseline_ratio"] for r in rounds)
    write_result("json_batch", "cpu", result)
    print(json.dumps({k: v for k, v in result.items() if "median" in k}))


if __name__ == "__main__":
    main()
