"""The second round of attacks (issue "No request stalls the event loop"), measured as
bench/abuse.py measures the first: against a live `rul-serve` (all four shipped models, CPU,
API keys set, its own copy of the models directory) on loopback, one attack at a time, with a
separate process probing /health/live every 20 ms.

    python -m bench.abuse_round2 --data-dir ../shared/data/cmapss

Per attack: the statuses answered, the time, peak RSS growth, RSS after against idle, and the
liveness p50/p99/max meanwhile. Targets: liveness p99 <= 100 ms and max <= 250 ms, no 5xx
but the 503s the limits give, RSS after within 20 % of idle. Writes
bench/results/abuse_round2.json. Bounded: a few minutes on 2 cores.
"""

import contextlib
import gzip
import json
import shutil
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from bench.abuse import MB, run_round
from bench.fairness import READINGS

KEY = "abuse-key"
AUTH = {"X-API-Key": KEY}


def tiny_fleet(units: int) -> bytes:
    """A gzipped fleet file of `units` units x 10 cycles of zeros."""
    row = " ".join(["0"] * 24)
    return gzip.compress(
        "".join(f"{u} {c} {row}\n" for u in range(1, units + 1) for c in range(1, 11)).encode()
    )


def predict_body(windows: int) -> bytes:
    """A /v1/predict body of `windows` copies of one fd001 window (~9.5 kB each)."""
    return json.dumps({"windows": [{"readings": READINGS}] * windows}).encode()


def attacks(
    data_dir: Path, url: str, port: int, models_dir: Path
) -> dict[str, tuple[int, Callable[[], list[str]]]]:
    """name -> (bytes sent, a callable returning the statuses answered)."""
    http = httpx.Client(base_url=url, timeout=180, headers=AUTH)
    window = np.asarray(READINGS, dtype=np.float32)[None]  # (1, 50, 24), fd001

    def oip_body(outputs: list[str], windows: int = 1) -> bytes:
        data = np.repeat(window, windows, axis=0)
        tensor = {
            "name": "readings",
            "datatype": "FP32",
            "shape": list(data.shape),
            "data": data.ravel().tolist(),
        }
        return json.dumps({"inputs": [tensor], "outputs": [{"name": n} for n in outputs]}).encode()

    def binary_body(windows: int, declared: int | None = None) -> tuple[bytes, dict[str, str]]:
        data = np.repeat(window, windows, axis=0).tobytes()
        size = len(data) if declared is None else declared
        header = json.dumps({"inputs": [{"name": "readings", "datatype": "FP32", "shape": [windows, 50, 24],
                                         "parameters": {"binary_data_size": size}}]}).encode()  # fmt: skip
        return header + data, {"inference-header-content-length": str(len(header)),
                               "content-type": "application/octet-stream"}  # fmt: skip

    repeated_quality = oip_body(["quality"] * 100_000)
    binary_13900, binary_headers = binary_body(13_900)
    lying_size, lying_headers = binary_body(4, declared=10**9)
    fd004 = (data_dir / "test_FD004.txt.gz").read_bytes()
    fd001 = (data_dir / "test_FD001.txt.gz").read_bytes()
    tiny_units = tiny_fleet(100_000)
    units_at_cap = tiny_fleet(20_000)  # RUL_MAX_UPLOAD_UNITS' default: the largest file allowed
    no_key_54mb = predict_body(5700)
    big_answer = predict_body(2000)  # a ~0.66 MB answer

    def post(path: str, body: bytes, headers: dict[str, str] | None = None) -> list[str]:
        merged = {"content-type": "application/json", **(headers or {})}
        return [str(http.post(path, content=body, headers=merged).status_code)]

    def all_cycles(model: str, content: bytes, jobs: int) -> list[str]:
        def one(_: int) -> str:
            with http.stream("POST", f"/v1/models/{model}/score?all_cycles=true",
                             files={"file": ("test.txt.gz", content)}) as response:  # fmt: skip
                for _chunk in response.iter_raw():
                    pass
                return str(response.status_code)

        with ThreadPoolExecutor(jobs) as pool:
            return sorted(pool.map(one, range(jobs)))

    def never_read(clients: int) -> list[str]:
        head = (f"POST /v1/predict HTTP/1.1\r\nHost: abuse\r\nX-API-Key: {KEY}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(big_answer)}\r\n\r\n").encode()  # fmt: skip  # noqa: E501
        sockets = []
        for _ in range(clients):
            conn = socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.4", 0))
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            conn.sendall(head + big_answer)
            sockets.append(conn)
        time.sleep(75)  # the model (~6.6 s a request here), then the write timeout (30 s)
        statuses = set()
        for conn in sockets:
            conn.settimeout(2)
            try:
                received = b""
                while chunk := conn.recv(1 << 20):
                    received += chunk
                statuses.add("closed before the end" if len(received) < 0.6 * MB else "drained")
            except (ConnectionResetError, TimeoutError):
                statuses.add("reset by the server")
            conn.close()
        return sorted(statuses)

    def never_read_scores(clients: int) -> list[str]:
        """`clients` uploads of test_FD001 asking for every cycle's prediction (a 7.6 MB JSON
        answer), none of them read: two are scored (RUL_MAX_CONCURRENT_SCORES), the rest 503."""
        upload = http.build_request("POST", "/v1/models/fd001/score?all_cycles=true",
                                    files={"file": ("test_FD001.txt.gz", fd001)})  # fmt: skip
        content = upload.read()
        head = "".join(f"{k}: {v}\r\n" for k, v in upload.headers.items() if k.lower() != "connection")
        request = f"POST {upload.url.raw_path.decode()} HTTP/1.1\r\n{head}\r\n".encode() + content
        sockets = []
        for _ in range(clients):
            conn = socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.6", 0))
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            conn.sendall(request)
            sockets.append(conn)
        time.sleep(120)  # two scores (~70 s here, at once), then the write timeout (30 s)
        statuses: dict[str, int] = {}
        for conn in sockets:
            conn.settimeout(2)
            try:
                first = conn.recv(12)
                received = len(first)
                while chunk := conn.recv(1 << 20):
                    received += len(chunk)
                outcome = ("503" if first.startswith(b"HTTP/1.1 503")
                           else "closed before the end" if received < 7 * MB else "drained")  # fmt: skip
            except (ConnectionResetError, TimeoutError):
                outcome = "reset by the server"
            statuses[outcome] = statuses.get(outcome, 0) + 1
            conn.close()
        return [f"{n} x {outcome}" for outcome, n in sorted(statuses.items())]

    def idle_connections(count: int) -> list[str]:
        held, refused = [], 0
        for _ in range(count):
            conn = socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.2", 0))
            held.append(conn)
        time.sleep(1.0)
        for conn in held:
            conn.settimeout(0.05)
            with contextlib.suppress(TimeoutError, OSError):
                refused += conn.recv(12).startswith(b"HTTP/1.1 503")
            conn.close()
        other = httpx.get(url + "/v1/models", headers=AUTH, timeout=10).status_code  # another client
        return [f"{refused} of {count} refused 503", f"another client: {other}"]

    def wrong_keys(count: int) -> list[str]:
        """From an address of its own (127.0.0.5): the wait it earns is its alone."""
        transport = httpx.HTTPTransport(local_address="127.0.0.5")
        with httpx.Client(base_url=url, timeout=30, transport=transport) as guesser:
            statuses = [
                guesser.get("/v1/models", headers={"X-API-Key": f"g{i}"}).status_code for i in range(count)
            ]
        right = http.get("/v1/models").status_code  # the right key, from the usual address, at once
        return [f"{statuses.count(s)} x {s}" for s in sorted(set(statuses))] + [f"right key: {right}"]

    def reload_without_fd004() -> list[str]:
        moved = models_dir.parent / "fd004.onnx.away"
        shutil.move(models_dir / "fd004.onnx", moved)
        try:
            refused = http.post("/v1/models/reload").status_code
            served = http.get("/v1/models/fd004").status_code
        finally:
            shutil.move(moved, models_dir / "fd004.onnx")
        return [f"reload {refused}", f"fd004 still {served}"]

    strings = json.dumps({"inputs": [{"name": "readings", "datatype": "FP32", "shape": [1, 50, 24],
                                      "data": [str(v) for v in window.ravel().tolist()]}]}).encode()  # fmt: skip  # noqa: E501
    infer = "/v2/models/fd001/infer"

    def unit_flood(content: bytes) -> list[str]:
        return [str(http.post("/v1/models/fd001/score", files={"file": ("tiny.gz", content)}).status_code)]

    def without_key() -> list[str]:
        headers = {"content-type": "application/json"}
        return [
            str(httpx.post(url + "/v1/predict", content=no_key_54mb, headers=headers, timeout=60).status_code)
        ]

    return {
        "OIP: output 'quality' asked 100 000 times": (len(repeated_quality), lambda: post(infer, repeated_quality)),  # noqa: E501
        "OIP: 13 900 windows, binary (63 MB)": (len(binary_13900), lambda: post(infer, binary_13900, binary_headers)),  # noqa: E501
        "OIP: binary_data_size 10^9, 19 200 bytes sent": (len(lying_size), lambda: post(infer, lying_size, lying_headers)),  # noqa: E501
        "OIP: data as strings": (len(strings), lambda: post(infer, strings)),
        "one FD004 all-cycles score (streamed)": (len(fd004), lambda: all_cycles("fd004", fd004, 1)),
        "two FD001 all-cycles scores at once (the limit)": (2 * len(fd001), lambda: all_cycles("fd001", fd001, 2)),  # noqa: E501
        "100 000 units x 10 cycles": (len(tiny_units), lambda: unit_flood(tiny_units)),
        "20 000 units x 10 cycles (the unit cap)": (len(units_at_cap), lambda: unit_flood(units_at_cap)),
        "5 clients never reading a 0.66 MB answer": (5 * len(big_answer), lambda: never_read(5)),
        "30 clients never reading a 7.6 MB all-cycles answer": (30 * len(fd001), lambda: never_read_scores(30)),  # noqa: E501
        "2 000 idle connections from one address": (0, lambda: idle_connections(2000)),
        "54 MB predict body without a key": (len(no_key_54mb), without_key),
        "4 000 wrong API keys": (0, lambda: wrong_keys(4000)),
        "reload with fd004.onnx removed": (0, reload_without_fd004),
    }  # fmt: skip


def main() -> None:
    run_round(__doc__, "abuse_round2", {"RUL_API_KEYS": KEY},
              lambda args, server, port, models_dir: attacks(args.data_dir, server.url, port, models_dir),
              busy_expected=("two FD001", "2 000 idle", "30 clients"))  # fmt: skip


if __name__ == "__main__":
    main()
