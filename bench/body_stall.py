"""Does the event loop stall while large requests are worked on? The harness that found the
last liveness misses of the second abuse round (bench/README.md, "Abuse, second round"): five
raw-socket clients send a 19 MB predict body (2 000 fd001 windows) each, at once, or (--attack
units) one client uploads a fleet of 20 000 units x 10 cycles for scoring, to `rul-serve` (all
shipped models, CPU, a key set), while a separate process probes /health/live every 20 ms; per
run, the probe's worst latencies and when they came (seconds after the send).

    python -m bench.body_stall --runs 6 [--attack units] [--stacks DIR] [--set RUL_X=V]

--stacks: the server samples every thread's stack every 2 ms into DIR/stacks_<run>.txt
(bench/stack_sampler), and the main thread's frames during each run's worst probe are
printed. Target, as the abuse round's: max <= 250 ms. About a minute a run on 2 cores.
"""

import argparse
import json
import socket
import time
from pathlib import Path

import httpx

from bench.abuse import LivenessProbe
from bench.abuse_round2 import predict_body, tiny_fleet
from bench.servers import ROOT, start_ours

KEY = "stall-key"
CLIENTS = 5


def one_run(stacks: Path | None, run: int, attack: str, more: dict[str, str]) -> dict:
    settings = {"RUL_API_KEYS": KEY, **more}
    if stacks is not None:
        settings |= {"PYTHONPATH": str(ROOT / "bench" / "stack_sampler"),
                     "STACK_SAMPLES_OUT": str(stacks / f"stacks_{run}.txt")}  # fmt: skip
    upload = tiny_fleet(20_000) if attack == "units" else predict_body(2000)  # 20 000: the unit cap's default
    head = (f"POST /v1/predict HTTP/1.1\r\nHost: stall\r\nX-API-Key: {KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(upload)}\r\n\r\n").encode()  # fmt: skip
    server = start_ours(batching=True, model=None, settings=settings)
    port = int(server.url.rsplit(":", 1)[1])
    try:
        with LivenessProbe(server.url) as probe:
            time.sleep(1.0)
            sent = time.time()
            if attack == "units":
                httpx.post(f"{server.url}/v1/models/fd001/score", files={"file": ("units.gz", upload)},
                           headers={"X-API-Key": KEY}, timeout=300)  # fmt: skip
            else:
                clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(CLIENTS)]
                for conn in clients:
                    conn.sendall(head + upload)
                time.sleep(40)  # decoding and the model: ~35 s for the five here
                for conn in clients:
                    conn.close()
    finally:
        server.stop()
    worst = sorted(zip(probe.latencies, probe.started, strict=True), reverse=True)[:3]
    result = {"max_ms": worst[0][0], "worst": [(round(ms, 1), round(at - sent, 2)) for ms, at in worst]}
    if stacks is not None:
        result["main_thread_during_worst"] = main_thread_between(stacks / f"stacks_{run}.txt", worst[0])
    return result


def main_thread_between(samples: Path, worst: tuple[float, float]) -> list[str]:
    """The main thread's frames sampled while the worst probe waited."""
    ms, started = worst
    seen = []
    for line in samples.read_text().splitlines():
        at, rest = float(line.split()[0]), line.split(" | ", 1)[-1]
        if started <= at <= started + ms / 1000:
            main = [t for t in rest.split(" || ") if t.startswith("MAIN: ")]
            seen.append(f"{at - started:.3f} s {line.split()[1]} {main[0] if main else '-'}")
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--attack", choices=["bodies", "units"], default="bodies",
                        help="five 19 MB predict bodies, or the 20 000-unit fleet file")  # fmt: skip
    parser.add_argument(
        "--stacks", type=Path, default=None, help="sample the server's stacks into this folder"
    )
    parser.add_argument("--set", action="append", default=[], metavar="RUL_X=V",
                        help="a further setting of the server (repeatable)")  # fmt: skip
    args = parser.parse_args()
    more = dict(pair.split("=", 1) for pair in args.set)
    if args.stacks:
        args.stacks.mkdir(parents=True, exist_ok=True)
    for run in range(args.runs):
        result = one_run(args.stacks, run, args.attack, more)
        print(json.dumps({"run": run, **result}), flush=True)


if __name__ == "__main__":
    main()
