"""Service benchmark: our service against bare ONNX Runtime and against the peers a user would
otherwise deploy, side by side in one run, with load from wrk (a separate C process) on
loopback, every run bounded in time.

    apt-get install wrk    # the load generator
    python -m bench.service_bench --data-dir ../shared/data/cmapss [--seconds 10] \
        [--bentoml /tmp/bento/bin/bentoml] [--provider cuda]

Every server serves the same shipped model (fd001) on the same provider (CPU, or with
`--provider cuda` ONNX Runtime's CUDA provider, results in service_bench_cuda.json), one uvicorn
process:
ours with dynamic batching on and off, the minimal FastAPI peer (bench/peers/minimal_fastapi.py:
`session.run` per request) and, when --bentoml names a bentoml executable, BentoML serving the
same ONNX file (bench/peers/bento_service.py). Measured:

- cold start: process start -> first successful readiness probe (ours also with all 4 models);
- batch: windows/s of requests carrying 1 000 real 50-cycle windows each (one connection)
  against `session.run` on the same 1 000 windows in this process (bare ONNX Runtime);
- single-window requests at 1, 16 and 64 connections: throughput, p50/p90/p99 latency, errors;
- one connection again, alternating: ours (batching on and off) and the peers all started at
  once, then --alternate-rounds rounds of a short one-connection run on each in turn; the ratio
  is the median over rounds of ours / the peer in the same round, so that the shared machine's
  swings (one server alone varies 130-270 req/s from one run to the next) hit both sides;
- memory: our RSS idle and at the end of the 64-connection run, and a soak (--soak-seconds at
  16 connections) sampling RSS every second.

Writes bench/results/service_bench.json and prints a summary.
"""

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.model_compute import machine, rate, write_result
from bench.servers import ROOT, Server, start_bentoml, start_minimal_fastapi, start_ours
from service.core.providers import SessionConfig, create_session
from training.data import load_subset
from training.windows import stack_windows

WRK_SCRIPT = ROOT / "bench" / "wrk_post.lua"
CONCURRENCY = (1, 16, 64)
MODEL = "fd001"
OIP_HEADER_LENGTH: dict[Path, int] = {}  # binary request body -> length of its JSON header


def real_windows(data_dir: str, n: int, window_length: int) -> np.ndarray:
    """`n` real windows from test_FD001 (every full window of its units, in order: a history of
    at least `window_length` cycles, as a client sends it), values rounded as in the C-MAPSS text
    files so that the JSON bodies have realistic sizes. Until 2026-12-07 the windows began at
    each unit's 30th cycle, padded by repeating the first: the single window was one of those,
    which our checks answer out_of_distribution with three explained flags (0.7 ms of ours;
    bench/route_cost.py)."""
    units = load_subset("FD001", data_dir).test
    windows, _ = stack_windows(units, window_length, None, min_cycles=window_length)
    return np.round(windows[:n].astype(np.float64), 4)


def single_window(data_dir: str, batch_windows: int = 1000, window_length: int = 50) -> np.ndarray:
    """(1, W, 24) the single-window runs' window: the last of the batch runs' windows."""
    return real_windows(data_dir, batch_windows, window_length)[-1:]


def bodies(windows: np.ndarray, directory: Path) -> dict[str, Path]:
    """The same windows as each server's request body: ours ({"windows": [{"readings": ...}]})
    and the peers' ({"windows": [readings, ...]})."""
    paths = {"ours": directory / "ours.json", "peer": directory / "peer.json"}
    paths["ours"].write_text(json.dumps({"windows": [{"readings": w.tolist()} for w in windows]}))
    paths["peer"].write_text(json.dumps({"windows": windows.tolist()}))
    # ours again, as an Open Inference Protocol request with the binary tensor extension
    tensor = windows.astype(np.float32)
    header = json.dumps({
        "inputs": [{"name": "readings", "datatype": "FP32", "shape": list(tensor.shape),
                    "parameters": {"binary_data_size": tensor.nbytes}}],
        "outputs": [{"name": n, "parameters": {"binary_data": True}} for n in ("rul", "health_probs")],
    }).encode()  # fmt: skip
    paths["oip_binary"] = directory / "oip.bin"
    paths["oip_binary"].write_bytes(header + tensor.tobytes())
    OIP_HEADER_LENGTH[paths["oip_binary"]] = len(header)
    return paths


def wrk(server: Server, body: Path, connections: int, seconds: float, sample_rss: bool = False,
        path: str | None = None) -> dict:  # fmt: skip
    """Closed-loop load from wrk: `connections` connections, each sending the next request as
    soon as the previous one is answered, for `seconds`, started once the server has finished
    what the previous run left in flight ("idle_wait_s"). With `sample_rss`, the server's RSS
    is read every second meanwhile ("rss_samples": [[s, MiB], ...])."""
    idle_wait = server.wait_idle()
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "60s", "-s", str(WRK_SCRIPT),
               server.url + (path or server.predict_path)]  # fmt: skip
    samples: list[tuple[float, float]] = []
    with tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        env = {
            **os.environ,
            "WRK_BODY_FILE": str(body),
            "WRK_HEADER_LENGTH": str(OIP_HEADER_LENGTH.get(body, "")),
        }
        process = subprocess.Popen(command, env=env, stdout=out)
        while sample_rss and process.poll() is None:
            samples.append((round(time.perf_counter() - started, 1), round(server.rss_mb(), 1)))
            time.sleep(1.0)
        if process.wait() != 0:
            raise RuntimeError(f"wrk failed with code {process.returncode}: {' '.join(command)}")
        out.seek(0)
        raw = json.loads(out.read().strip().splitlines()[-1])
    ok = raw["requests"] - raw["errors"]["status"]
    result = {
        "connections": connections,
        "idle_wait_s": round(idle_wait, 2),
        "requests": raw["requests"],
        "errors": {k: v for k, v in raw["errors"].items() if v},
        "failed": sum(raw["errors"].values()),
        "ok_per_s": round(ok / (raw["duration_us"] / 1e6), 2),
        "latency_ms": {k: round(v / 1000, 2) for k, v in raw["latency_us"].items()},
    }
    if sample_rss:
        result["rss_samples"] = samples
    return result


def bare_onnxruntime(windows: np.ndarray, seconds: float, provider: str) -> float:
    """Windows/s of session.run on all `windows` at once, in this process, on `provider`."""
    session = create_session(ROOT / "models" / f"{MODEL}.onnx", SessionConfig(providers=provider))
    batch = windows.astype(np.float32)
    return rate(lambda b: session.run(None, {"readings": b}), batch, seconds)


def alternating_one_connection(starts: dict[str, tuple], small: dict[str, Path], rounds: int,
                               seconds: float) -> dict:  # fmt: skip
    """Every server of `starts` up at once; `rounds` rounds of a `seconds` one-connection run on
    each in turn. Per server its req/s per round; per ours/peer pair the median over rounds of
    their ratio within a round."""
    servers = {name: start() for name, (start, _) in starts.items()}
    try:
        rates: dict[str, list[float]] = {name: [] for name in servers}
        for _ in range(rounds):
            for name, server in servers.items():
                rates[name].append(wrk(server, small[starts[name][1]], 1, seconds)["ok_per_s"])
    finally:
        for server in servers.values():
            server.stop()
    result: dict = {"rounds": rounds, "seconds": seconds, "ok_per_s": rates, "median_ratio": {}}
    for ours in (n for n in servers if starts[n][1] == "ours"):
        for peer in (n for n in servers if starts[n][1] == "peer"):
            ratios = [a / b for a, b in zip(rates[ours], rates[peer], strict=True)]
            result["median_ratio"][f"{ours}_over_{peer}"] = round(float(np.median(ratios)), 2)
    return result


def concurrency_runs(server: Server, body: Path, seconds: float) -> dict[int, dict]:
    """Single-window closed-loop runs at each of CONCURRENCY's connection counts."""
    return {connections: wrk(server, body, connections, seconds) for connections in CONCURRENCY}


def bench_server(start, small: dict[str, Path], big: dict[str, Path], body_kind: str, args) -> dict:
    """Cold start, the batch run and the concurrency runs of one server."""
    server = start()
    try:
        entry: dict = {
            "ready_seconds": round(server.ready_seconds, 2),
            "idle_rss_mb": round(server.rss_mb(), 1),
        }
        wrk(server, small[body_kind], 8, 2)  # warm-up, not recorded
        batch = wrk(server, big[body_kind], 1, args.batch_seconds)
        batch["windows_per_s"] = round(batch["ok_per_s"] * args.batch_windows, 1)
        entry["batch"] = batch
        if body_kind == "ours":  # the same windows through the OIP binary tensor extension
            oip = wrk(server, big["oip_binary"], 1, args.batch_seconds, path=f"/v2/models/{MODEL}/infer")
            oip["windows_per_s"] = round(oip["ok_per_s"] * args.batch_windows, 1)
            entry["batch_oip_binary"] = oip
        for connections, run in concurrency_runs(server, small[body_kind], args.seconds).items():
            entry[f"c{connections}"] = run
        entry["loaded_rss_mb"] = round(server.rss_mb(), 1)
        print(f"{server.name}: {json.dumps(entry)}", flush=True)
        return entry
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--seconds", type=float, default=10, help="length of each concurrency run")
    parser.add_argument("--batch-seconds", type=float, default=15, help="length of the batch run")
    parser.add_argument("--batch-windows", type=int, default=1000, help="windows per batch request")
    parser.add_argument("--soak-seconds", type=float, default=60, help="memory soak length (0: skip)")
    parser.add_argument("--alternate-rounds", type=int, default=10, help="rounds of the alternating c1 runs")
    parser.add_argument("--alternate-seconds", type=float, default=3, help="length of each alternating run")
    parser.add_argument("--bentoml", help="a bentoml executable (its own venv) to add the BentoML peer")
    parser.add_argument(
        "--provider", choices=["cpu", "cuda"], default="cpu", help="every server's and bare ORT's"
    )
    args = parser.parse_args()
    if args.seconds > 120 or args.batch_seconds > 120 or args.soak_seconds > 600:
        parser.error("bounded on purpose: runs of at most 120 s, a soak of at most 600 s")
    if args.bentoml and args.provider != "cpu":
        parser.error("--bentoml with --provider cuda: the BentoML peer serves on the CPU only, so its ratio "
                     "would compare providers, not servers; run it with --provider cpu")  # fmt: skip
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (apt-get install wrk)")

    window_length = json.loads((ROOT / "models" / f"{MODEL}.json").read_text())["window_length"]
    windows = real_windows(args.data_dir, args.batch_windows, window_length)
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "small").mkdir()
        (Path(tmp) / "big").mkdir()
        small = bodies(windows[-1:], Path(tmp) / "small")  # single_window, as route_cost and c1_cost send
        big = bodies(windows, Path(tmp) / "big")

        results["bare_onnxruntime_windows_per_s"] = round(
            bare_onnxruntime(windows, args.batch_seconds / 3, args.provider), 1
        )
        servers = {
            "ours_batching_on": (lambda: start_ours(True, provider=args.provider), "ours"),
            "ours_batching_off": (lambda: start_ours(False, provider=args.provider), "ours"),
            "minimal_fastapi": (lambda: start_minimal_fastapi(provider=args.provider), "peer"),
        }
        if args.bentoml:
            servers["bentoml"] = (lambda: start_bentoml(args.bentoml), "peer")
        for name, (start, body_kind) in servers.items():
            results[name] = bench_server(start, small, big, body_kind, args)
        results["c1_alternating"] = alternating_one_connection(
            servers, small, args.alternate_rounds, args.alternate_seconds
        )
        # bare ORT again after the servers, so a drift in machine load shows
        results["bare_onnxruntime_windows_per_s_after"] = round(
            bare_onnxruntime(windows, args.batch_seconds / 3, args.provider), 1
        )

        everything = start_ours(True, model=None, provider=args.provider)
        results["ours_all_models_ready_seconds"] = round(everything.ready_seconds, 2)
        results["ours_all_models_idle_rss_mb"] = round(everything.rss_mb(), 1)
        if args.soak_seconds:
            soak = wrk(everything, small["ours"], 16, args.soak_seconds, sample_rss=True)
            rss = np.array([mb for _, mb in soak["rss_samples"]])
            tenth = max(1, len(rss) // 6)
            soak["rss_mb_first_10s_mean"] = round(float(rss[:tenth].mean()), 1)
            soak["rss_mb_last_10s_mean"] = round(float(rss[-tenth:].mean()), 1)
            soak["rss_mb_max"] = round(float(rss.max()), 1)
            results["soak_16_connections"] = soak
        everything.stop()

    bare = np.mean(
        [results["bare_onnxruntime_windows_per_s"], results["bare_onnxruntime_windows_per_s_after"]]
    )
    ours_on, ours_off = results["ours_batching_on"], results["ours_batching_off"]
    ratios = {
        "batch_ours_over_bare_onnxruntime": round(ours_on["batch"]["windows_per_s"] / bare, 2),
        "batch_oip_binary_ours_over_bare_onnxruntime": round(
            ours_on["batch_oip_binary"]["windows_per_s"] / bare, 2
        ),
        "c64_batching_on_over_off": round(ours_on["c64"]["ok_per_s"] / ours_off["c64"]["ok_per_s"], 2),
    }
    for peer in ("minimal_fastapi", "bentoml"):
        if peer in results:
            for key in ("batch", *(f"c{c}" for c in CONCURRENCY)):
                metric = "windows_per_s" if key == "batch" else "ok_per_s"
                ratios[f"{key}_ours_over_{peer}"] = round(
                    ours_on[key][metric] / results[peer][key][metric], 2
                )
    ratios |= {f"c1_alternating_{k}": v for k, v in results["c1_alternating"]["median_ratio"].items()}
    results["ratios"] = ratios
    out = {
        "machine": machine(args.provider),
        "measured": time.strftime("%Y-%m-%d %H:%M"),
        "model": MODEL,
        "settings": {
            "seconds": args.seconds,
            "batch_seconds": args.batch_seconds,
            "batch_windows": args.batch_windows,
            "soak_seconds": args.soak_seconds,
        },
        "results": results,
    }
    write_result("service_bench", args.provider, out)
    print(json.dumps(ratios, indent=2))


if __name__ == "__main__":
    main()
