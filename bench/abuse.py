"""Every attack of the issue "No single request can take the service down", against a live
`rul-serve` (all four shipped models, CPU, default settings) on loopback, one at a time:

    python -m bench.abuse --data-dir ../shared/data/cmapss

Per attack: the statuses answered, the time, the server's peak RSS growth over its RSS just
before (Linux: VmHWM, reset through /proc/PID/clear_refs before each attack), its RSS a
second after, and the /health/live latencies a separate process measured meanwhile (every 20
ms). Targets: no 5xx, no process death, peak growth <= 10x the body (and <= 1 GB for any
upload), /health/live p99 <= 100 ms, RSS after within 20 % of the idle RSS. Writes
bench/results/abuse.json. Bounded: about 3 minutes on 2 cores; loopback only.
"""

import argparse
import gzip
import json
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.fairness import READINGS, percentile
from bench.model_compute import write_result
from bench.servers import ROOT, Server, start_ours

MB = 1024 * 1024


def _status_memory(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for process {pid}")


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # proc(5): resets VmHWM to the current RSS


# The probe, as a process of its own (python -c): the benchmark's own threads (a client reading
# a large answer, say) must not delay it. It prints "ready" once it has an answer, then, once
# its stdin is closed, every latency in ms (a timeout: 2 000) on one line and the wall-clock
# time each probe was sent on the next. (It was stopped by SIGINT before, which a probe once
# swallowed inside httpx: it never stopped.)
PROBE = """
import sys, threading, time, httpx
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
latencies, sent = [], []
with httpx.Client(timeout=2.0) as client:
    while not stop.is_set():
        sent.append(time.time())
        started = time.perf_counter()
        try:
            client.get(sys.argv[1])
            latencies.append((time.perf_counter() - started) * 1000)
        except httpx.HTTPError:
            latencies.append(2000.0)
        if len(latencies) == 1:
            print("ready", flush=True)
        time.sleep(0.02)
print(" ".join(f"{x:.2f}" for x in latencies))
print(" ".join(f"{x:.4f}" for x in sent), flush=True)
"""


class LivenessProbe:
    """GET /health/live every 20 ms from a separate process; latencies in ms (a timeout: 2 000)
    and when each probe was sent (`started`, time.time())."""

    def __init__(self, url: str):
        self.url, self.latencies, self.started = url + "/health/live", [], []
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "LivenessProbe":
        self.process = subprocess.Popen(
            [sys.executable, "-c", PROBE, self.url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        self.process.stdout.readline()  # "ready": the probe runs before the attack starts
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None and self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        line, sent = self.process.stdout.readline(), self.process.stdout.readline()
        self.process.wait(timeout=30)
        self.latencies = [float(x) for x in line.split()]
        self.started = [float(x) for x in sent.split()]


def gzip_stream(chunk: bytes, total: int) -> bytes:
    """gzip of `chunk` repeated up to `total` bytes, compressed as it goes (no `total` in memory)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [compressor.compress(chunk) for _ in range(total // len(chunk))]
    return b"".join(parts) + compressor.flush()


def raw_request(port: int, data: bytes, slow: float = 0.0, wait: float = 30.0) -> str:
    """Send raw bytes (a byte every `slow` seconds if set) and return the status line."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as conn:
        try:
            if slow:
                for byte in data:
                    conn.sendall(bytes([byte]))
                    time.sleep(slow)
            else:
                conn.sendall(data)
            answer = conn.recv(200)
        except OSError as exc:  # the server closed on us while we sent: it refused the request
            try:
                answer = conn.recv(200)
            except OSError:
                return f"closed ({type(exc).__name__})"
    return answer.split(b"\r\n", 1)[0].decode(errors="replace") or "closed"


def attacks(data_dir: Path, url: str, port: int) -> dict[str, tuple[int, Callable[[], list[str]]]]:
    """name -> (bytes sent, a callable returning the statuses answered)."""
    http = httpx.Client(base_url=url, timeout=120)

    def post(path: str, body: bytes, headers: dict[str, str] | None = None) -> list[str]:
        headers = {"content-type": "application/json", **(headers or {})}
        response = http.post(path, content=body, headers=headers)
        return [str(response.status_code)]

    def upload(name: str, content: bytes, query: str = "") -> list[str]:
        response = http.post(f"/v1/models/fd001/score{query}", files={"file": (name, content)})
        return [str(response.status_code)]

    def flat(n: int) -> bytes:
        return b'{"windows":[{"readings":[' + b",".join([b"1"] * n) + b"]}]}"

    valid_5000 = json.dumps({"windows": [{"readings": READINGS}] * 5000}).encode()
    minimal = b'{"windows":[' + b",".join([b'{"readings":[[0]]}'] * 1_000_000) + b"]}"
    zero_row = (" ".join(["1", "1"] + ["0"] * 24) + "\n").encode()
    bomb_2g = gzip_stream(b"\0" * MB, 2048 * MB)
    bomb_200m = gzip_stream(b"\0" * MB, 200 * MB)
    newlines = gzip_stream(b"\n" * MB, 200 * MB)
    long_unit = gzip.compress(b"".join(b"1 %d " % c + zero_row[4:] for c in range(1, 1_000_001)), 1)
    test_fd001 = (data_dir / "test_FD001.txt.gz").read_bytes()
    nested = b'{"a":' * 3000 + b"1" + b"}" * 3000

    def oip(tensor: dict | None = None, **request: object) -> bytes:
        base = {"name": "readings", "datatype": "FP32", "shape": [1, 50, 24], "data": [0.0] * 1200}
        return json.dumps({"inputs": [{**base, **(tensor or {})}], **request}).encode()

    oip_bodies = [
        nested, oip({"shape": [True, 50, 24]}), oip({"data": [1e400] * 1200}), oip({"parameters": [1]}),
        oip({"parameters": "x"}), oip(parameters=[1]), oip(parameters="x"), oip(outputs=5),
        oip(outputs=[{"name": "rul", "parameters": [1]}]), oip({"parameters": {"binary_data_size": 1e999}}),
    ]  # fmt: skip
    bad_ids = [b"1e19 1", b"1e300 1", b"9223372036854775808 1", b"1 1e300"]
    row_rest = zero_row.split(b" ", 2)[2]

    def concurrent_scores() -> list[str]:
        with ThreadPoolExecutor(20) as pool:
            return sorted(pool.map(lambda _: upload("test_FD001.txt.gz", test_fd001)[0], range(20)))

    def slow_clients() -> list[str]:
        request = b"GET /health/live HTTP/1.1\r\nHost: abuse\r\n\r\n"
        with ThreadPoolExecutor(50) as pool:
            return sorted(set(pool.map(lambda _: raw_request(port, request, slow=1.0), range(50))))

    short_body = (b"POST /v1/predict HTTP/1.1\r\nHost: abuse\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000\r\n\r\n{")  # fmt: skip
    header = b"GET /health/live HTTP/1.1\r\nHost: abuse\r\nX-Big: "
    flat_8mb, flat_60mb = flat(4_000_000), flat(30_000_000)
    surrogate = b'{"windows":[{"id":"\\ud800","readings":"x"}]}'

    def big_header(size: int) -> list[str]:
        return [raw_request(port, header + b"a" * size + b"\r\n\r\n")]

    def long_trajectory() -> list[str]:
        return upload("long.gz", long_unit, "?all_cycles=true")

    def short() -> list[str]:
        return [raw_request(port, short_body, 0, 90)]

    def each_oip() -> list[str]:
        return sorted({post("/v2/models/fd001/infer", b)[0] for b in oip_bodies})

    def each_bad_id() -> list[str]:
        return sorted({upload("ids.txt", b + b" " + row_rest)[0] for b in bad_ids})

    return {
        "flat list of 4 M numbers (8 MB)": (len(flat_8mb), lambda: post("/v1/predict", flat_8mb)),
        "flat list at 60 MB": (len(flat_60mb), lambda: post("/v1/predict", flat_60mb)),
        "gzip of 2 GB of zeros": (len(bomb_2g), lambda: upload("bomb.gz", bomb_2g)),
        "gzip of 200 MB of zeros": (len(bomb_200m), lambda: upload("bomb.gz", bomb_200m)),
        "gzip of 200 MB of newlines": (len(newlines), lambda: upload("newlines.gz", newlines)),
        "all_cycles, one unit of 1 M cycles": (len(long_unit), long_trajectory),
        "10^6 minimal windows": (len(minimal), lambda: post("/v1/predict", minimal)),
        "5 000 valid windows": (len(valid_5000), lambda: post("/v1/predict", valid_5000)),
        "20 concurrent score uploads of test_FD001": (20 * len(test_fd001), concurrent_scores),
        "64 MB request header": (64 * MB, lambda: big_header(64 * MB)),
        "128 MB request header": (128 * MB, lambda: big_header(128 * MB)),
        "50 slow clients (a byte a second)": (50 * 40, slow_clients),
        "body shorter than its Content-Length": (len(short_body), short),
        "OIP: 10 malformed bodies": (sum(map(len, oip_bodies)), each_oip),
        "v1: lone surrogate in an invalid body": (len(surrogate), lambda: post("/v1/predict", surrogate)),
        "score: unit 1e19 / 1e300 / 2^63, cycle 1e300": (200, each_bad_id),
    }  # fmt: skip


def _server_error(status: str) -> bool:
    """'503' from httpx, or 'HTTP/1.1 503 ...' from a raw socket, alone or counted ('3 x 503');
    not a client-side outcome ('56 x ConnectionResetError' is no 5xx)."""
    outcome = re.sub(r"^\d+ x ", "", status)
    return bool(re.match(r"(HTTP/1\.1 )?5\d\d\b", outcome))


def run(server: Server, data_dir: Path, only: str = "") -> dict[str, dict]:
    port = int(server.url.rsplit(":", 1)[1])
    return run_attacks(server, attacks(data_dir, server.url, port), only, busy_expected=("20 concurrent",))


def run_attacks(
    server: Server, table: dict[str, tuple[int, Callable[[], list[str]]]], only: str = "",
    busy_expected: tuple[str, ...] = (),
) -> dict[str, dict]:  # fmt: skip
    """Each attack of `table` in turn, measured; `busy_expected`: name prefixes of attacks whose
    503 is the limit answering as it should (scoring slots, connections per client)."""
    pid = server.process.pid
    idle = _status_memory(pid, "VmRSS")
    results = {}
    latencies = [float("nan")]
    for name, (size, attack) in table.items():
        if only not in name:
            continue
        before = _status_memory(pid, "VmRSS")
        reset_peak(pid)
        with LivenessProbe(server.url) as probe:
            started = time.perf_counter()
            try:
                statuses = attack()
            except httpx.HTTPError as exc:
                statuses = [f"client error: {type(exc).__name__}"]
            seconds = time.perf_counter() - started
            time.sleep(1.0)
        alive = server.process.poll() is None
        busy = name.startswith(busy_expected)
        peak = _status_memory(pid, "VmHWM") if alive else float("nan")
        after = _status_memory(pid, "VmRSS") if alive else float("nan")
        latencies = sorted(probe.latencies) or [float("nan")]
        results[name] = {
            "body_mb": round(size / MB, 2),
            "statuses": statuses,
            "seconds": round(seconds, 2),
            "alive": alive,
            "peak_growth_mb": round(peak - before, 1),
            "peak_growth_over_body": round((peak - before) / max(size / MB, 1e-9), 2),
            "rss_after_mb": round(after, 1),
            "rss_after_over_idle": round(after / idle, 3),
            "live_p50_ms": round(percentile(latencies, 0.5), 1),
            "live_p99_ms": round(percentile(latencies, 0.99), 1),
            "live_max_ms": round(latencies[-1], 1),
            "live_probes": len(probe.latencies),
            # a limit's 503 (+ Retry-After) is the answer asked for there: not a failure
            "no_5xx": not any(_server_error(s) and not (busy and "503" in s) for s in statuses),
        }
        print(json.dumps({name: results[name]}), flush=True)
        if not alive:
            break
    results["_idle_rss_mb"] = {"value": round(idle, 1), "median_probe_ms": statistics.median(latencies)}
    return results


def parse_arguments(doc: str | None) -> argparse.Namespace:
    """The command line of both abuse benchmarks."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--only", default="", help="only the attacks whose name holds this (not recorded)")
    return parser.parse_args()


Attacks = dict[str, tuple[int, Callable[[], list[str]]]]  # name -> (bytes sent, the attack)


def run_round(
    doc: str | None,
    name: str,
    settings: dict[str, str],
    make_table: Callable[
        [argparse.Namespace, Server, int, Path], dict[str, tuple[int, Callable[[], list[str]]]]
    ],
    busy_expected: tuple[str, ...],
) -> None:
    """A later round: rul-serve on all shipped models from a scratch copy of models/ (RUL_*
    `settings` beside), its attacks (`make_table(args, server, port, models_dir)`) run and
    measured, the results written as bench/results/<name>.json (not with --only)."""
    args = parse_arguments(doc)
    scratch = Path(tempfile.mkdtemp(prefix="abuse-models-"))
    models_dir = scratch / "models"
    shutil.copytree(ROOT / "models", models_dir, ignore=shutil.ignore_patterns("checkpoints"))
    server = start_ours(batching=True, model=None, settings={**settings, "RUL_MODELS_DIR": str(models_dir)})
    try:
        table = make_table(args, server, int(server.url.rsplit(":", 1)[1]), models_dir)
        results = run_attacks(server, table, args.only, busy_expected=busy_expected)
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    if not args.only:
        write_result(name, "cpu", results)


def main() -> None:
    args = parse_arguments(__doc__)
    server = start_ours(batching=True, model=None)
    try:
        results = run(server, args.data_dir, args.only)
    finally:
        server.stop()
    if not args.only:
        write_result("abuse", "cpu", results)


if __name__ == "__main__":
    main()
