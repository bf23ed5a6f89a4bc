"""Does the event loop stall while large predict bodies arrive? The harness that found the
last liveness miss of the second abuse round (bench/README.md, "Abuse, second round"): five
raw-socket clients send a 19 MB predict body (2 000 fd001 windows) each, at once, to
`rul-serve` (all shipped models, CPU, a key set), while a separate process probes
/health/live every 20 ms; per run, the probe's worst latencies and when they came.

    python -m bench.body_stall --runs 6 [--stacks DIR]

--stacks: the server samples every thread's stack every 2 ms into DIR/stacks_<run>.txt
(bench/stack_sampler), and the main thread's frames during each run's worst probe are
printed. Target, as the abuse round's: max <= 250 ms. About a minute a run on 2 cores.
"""

import argparse
import gzip
import json
import socket
import time
from pathlib import Path

import httpx

from bench.abuse import LivenessProbe
from bench.fairness import READINGS
from bench.servers import ROOT, start_ours

KEY = "stall-key"
CLIENTS = 5


def units_at_cap() -> bytes:
    """A fleet file of 20 000 units x 10 cycles (RUL_MAX_UPLOAD_UNITS' default), gzipped."""
    row = " ".join(["0"] * 24)
    return gzip.compress("".join(f"{u} {c} {row}\n" for u in range(1, 20_001) for c in range(1, 11)).encode())


def one_run(stacks: Path | None, run: int, attack: str, more: dict[str, str]) -> dict:
    settings = {"RUL_API_KEYS": KEY, **more}
    if stacks is not None:
        settings |= {"PYTHONPATH": str(ROOT / "bench" / "stack_sampler"),
                     "STACK_SAMPLES_OUT": str(stacks / f"stacks_{run}.txt")}  # fmt: skip
    server = start_ours(batching=True, model=None, settings=settings)
    body = json.dumps({"windows": [{"readings": READINGS}] * 2000}).encode()
    head = (f"POST /v1/predict HTTP/1.1\r\nHost: stall\r\nX-API-Key: {KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()  # fmt: skip
    upload = units_at_cap() if attack == "units" else b""
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
                    conn.sendall(head + body)
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
