"""Where a one-connection request's time goes, served: ours (fd001, batching on) and the minimal
FastAPI peer up at once, alternated in rounds of wrk at one connection; per round each one's
requests per second and the CPU its process used per request, on its main (event-loop) thread
and on every other thread (ONNX Runtime's pool, worker threads), from /proc.

    python -m bench.c1_cost --data-dir ../shared/data/cmapss [--rounds 8 --seconds 4]
        [--variant RUL_INTRA_OP_THREADS=1]   # also ours with a setting changed, in the same rounds
        [--other-tree /tmp/before]           # also ours from another checkout (git worktree add)
        [--model-run cached]                 # every server's model run answered from a cache

Per server the medians over the rounds; the median of the per-round ratios with a bootstrap
90 % interval (the machine's noise: an interval that spans 1 shows neither ahead). A server
that uses less CPU per request but answers fewer requests waits somewhere (a thread hand-off,
a wake-up); one that uses more does more.
"""

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from bench.servers import start_minimal_fastapi, start_ours, thread_cpu_seconds
from bench.service_bench import MODEL, bodies, single_window, wrk


def one_round(server, body: Path, seconds: float) -> dict:
    pid = server.process.pid
    before = thread_cpu_seconds(pid)
    run = wrk(server, body, 1, seconds)
    after = thread_cpu_seconds(pid)
    main_thread = after.get(pid, 0.0) - before.get(pid, 0.0)
    others = sum(v - before.get(t, 0.0) for t, v in after.items() if t != pid)
    requests = max(run["requests"], 1)
    return {
        "ok_per_s": run["ok_per_s"],
        "p50_ms": run["latency_ms"]["p50"],
        "main_thread_ms_per_request": 1e3 * main_thread / requests,
        "other_threads_ms_per_request": 1e3 * others / requests,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument(
        "--variant", action="append", default=[], metavar="NAME=VALUE",
        help="also run ours with this RUL_* setting (repeatable), e.g. RUL_BATCHING=false",
    )  # fmt: skip
    parser.add_argument("--other-tree", type=Path, help="also run ours from this checkout (earlier commit)")
    parser.add_argument("--model-run", choices=["real", "cached"], default="real",
                        help="cached: each ONNX Runtime run answers its first run's outputs "
                             "(bench/cached_run): what a request costs besides the model")  # fmt: skip
    args = parser.parse_args()
    if args.model_run == "cached":  # read by every server started below (servers.py passes os.environ)
        os.environ["PYTHONPATH"] = str(Path(__file__).parent / "cached_run")
        os.environ["RUL_BENCH_CACHED_RUN"] = "1"
    window = single_window(args.data_dir)
    with tempfile.TemporaryDirectory() as tmp:
        body = bodies(window, Path(tmp))
        servers = {"ours": (start_ours(True, model=MODEL), body["ours"]),
                   "minimal_fastapi": (start_minimal_fastapi(MODEL), body["peer"])}  # fmt: skip
        for variant in args.variant:
            name, value = variant.split("=", 1)
            servers[f"ours {variant}"] = (start_ours(True, model=MODEL, settings={name: value}), body["ours"])
        if args.other_tree:
            servers[f"ours ({args.other_tree})"] = (
                start_ours(True, model=MODEL, tree=args.other_tree.resolve()),
                body["ours"],
            )
        try:
            for server, path in servers.values():
                wrk(server, path, 1, 2)  # warm-up, not recorded
            rounds: dict[str, list[dict]] = {name: [] for name in servers}
            for _ in range(args.rounds):
                for name, (server, path) in servers.items():
                    rounds[name].append(one_round(server, path, args.seconds))
        finally:
            for server, _ in servers.values():
                server.stop()
    medians = {name: {key: round(float(np.median([r[key] for r in runs])), 3) for key in runs[0]}
               for name, runs in rounds.items()}  # fmt: skip
    result = {"model": MODEL, "model_run": args.model_run, "rounds": args.rounds, "seconds": args.seconds,
              "median": medians,
              "over_peer": {name: ratio_summary(runs, rounds["minimal_fastapi"])
                            for name, runs in rounds.items() if name != "minimal_fastapi"}}  # fmt: skip
    print(json.dumps(result, indent=2))


def ratio_summary(ours: list[dict], peer: list[dict]) -> dict:
    """The median of the per-round ratios of requests per second, with how far it can be
    trusted on this machine: the 5th and 95th percentiles of the median of the rounds drawn
    again with replacement (2 000 draws, seed 0). An interval that spans 1 shows neither ahead."""
    ratios = np.array([a["ok_per_s"] / b["ok_per_s"] for a, b in zip(ours, peer, strict=True)])
    draws = np.random.default_rng(0).choice(ratios, (2000, len(ratios)))
    low, high = np.percentile(np.median(draws, axis=1), [5, 95])
    return {"median_ratio": round(float(np.median(ratios)), 2),
            "ci90": [round(float(low), 2), round(float(high), 2)],
            "per_round": [round(float(r), 2) for r in ratios]}  # fmt: skip


if __name__ == "__main__":
    main()
