"""The third round of attacks (issue "Every resource a request can take is bounded"), measured
as bench/abuse.py measures the first two: against a live `rul-serve` (all shipped models, CPU,
API keys set, X-Forwarded-For trusted from loopback as behind an ingress) on loopback, one
attack at a time, with a separate process probing /health/live every 20 ms.

    python -m bench.abuse_round3 --data-dir ../shared/data/cmapss

The attacks are the issue's families at other sizes and counts than the issue's (the promise
is checked on variants, not on the listed rows). Per attack: the statuses answered, the time,
peak RSS growth, RSS after against idle, and liveness p50/p99/max meanwhile. Targets: liveness
p99 <= 100 ms and max <= 250 ms, only 4xx or a 503 naming a limit, RSS after within 20 % of
idle, a right key never refused because of another client. Writes
bench/results/abuse_round3.json. Bounded: a few minutes on 2 cores.
"""

import contextlib
import gzip
import json
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.abuse import run_round
from bench.fairness import READINGS

KEY = "abuse-key-0123456789abcdef"
AUTH = {"X-API-Key": KEY}


def _raw(port: int, request: bytes, source: str = "127.0.0.1", read: bool = True) -> str:
    """Send `request` on a fresh connection; the status line's code, or how it ended."""
    with socket.create_connection(("127.0.0.1", port), timeout=60, source_address=(source, 0)) as conn:
        with contextlib.suppress(OSError):  # refused and closed while still sending: read what came
            conn.sendall(request)
        if not read:
            return "sent"
        try:
            first = conn.recv(12)
        except OSError as exc:
            return type(exc).__name__
        return first[9:12].decode() if first.startswith(b"HTTP/1.1 ") else "closed"


def trailer_attacks(port: int) -> dict[str, tuple[int, Callable[[], list[str]]]]:
    head = b"POST /health/live HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n"
    long_line = head + b"x-t: " + b"a" * (48 << 20) + b"\r\n\r\n"
    many = head + b"".join(b"t%d: v\r\n" % i for i in range(2_000_000)) + b"\r\n"

    def parallel(body: bytes, clients: int) -> list[str]:
        with ThreadPoolExecutor(clients) as pool:
            return sorted(pool.map(lambda _: _raw(port, body), range(clients)))

    return {
        "chunked: one 48 MiB trailer line on /health/live, no key": (len(long_line), lambda: [_raw(port, long_line)]),  # noqa: E501
        "chunked: 6 parallel 16 MiB trailer lines": (6 * (16 << 20), lambda: parallel(head + b"x-t: " + b"a" * (16 << 20) + b"\r\n\r\n", 6)),  # noqa: E501
        "chunked: 2 M tiny trailer headers": (len(many), lambda: [_raw(port, many)]),
    }  # fmt: skip


def list_attacks(http: httpx.Client) -> dict[str, tuple[int, Callable[[], list[str]]]]:
    empty_items = b'{"windows": [' + b",".join([b"{}"] * 2_000_000) + b"]}"
    oip_items = b'{"inputs": [' + b",".join([b"{}"] * 1_000_000) + b"]}"
    long_cycles = json.dumps({"windows": [{"readings": READINGS, "cycles": list(range(1_500_000))}]}).encode()
    names = {f"col_{i}": [1.0] for i in range(40_000)}
    unknown_columns = json.dumps({"windows": [{"readings": names}]}).encode()
    header = ",".join(["unit", "cycle", *[f"x{i}" for i in range(25_000)],
                       "setting_1", "setting_2", "setting_3", *[f"s_{i}" for i in range(1, 22)]])  # fmt: skip
    row = ",".join(["1", "{c}", *["0"] * 25_000, *["1"] * 24])
    wide_csv = gzip.compress(
        (header + "\n" + "\n".join(row.format(c=c) for c in range(1, 41)) + "\n").encode()
    )
    nan_body = json.dumps(
        {"windows": [{"readings": [[float("nan")] + r[1:] for r in READINGS]}] * 700}
    ).encode()

    def post(path: str, body: bytes, clients: int = 1) -> list[str]:
        def one(_: int) -> str:
            headers = {"content-type": "application/json"}
            return str(http.post(path, content=body, headers=headers).status_code)

        with ThreadPoolExecutor(clients) as pool:
            return sorted(pool.map(one, range(clients)))

    def upload(content: bytes) -> list[str]:
        return [
            str(http.post("/v1/models/fd001/score", files={"file": ("wide.csv.gz", content)}).status_code)
        ]

    return {
        "2 M empty windows {} (4 MB)": (len(empty_items), lambda: post("/v1/predict", empty_items)),
        "/v2: 1 M empty inputs {} (3 MB)": (len(oip_items), lambda: post("/v2/models/fd001/infer", oip_items)),  # noqa: E501
        "a window with 1.5 M cycle numbers": (len(long_cycles), lambda: post("/v1/predict", long_cycles)),
        "readings named by 40 000 unknown columns": (len(unknown_columns), lambda: post("/v1/predict", unknown_columns)),  # noqa: E501
        "CSV with 25 000 extra columns per row": (len(wide_csv), lambda: upload(wide_csv)),
        "3 clients: 6.6 MB bodies with NaN literals": (3 * len(nan_body), lambda: post("/v1/predict", nan_body, 3)),  # noqa: E501
    }  # fmt: skip


def total_attacks(port: int, http: httpx.Client) -> dict[str, tuple[int, Callable[[], list[str]]]]:
    size = 60 << 20

    def withheld(clients: int, addresses: int) -> list[str]:
        """`clients` connections each declaring a 60 MiB body and sending all but its last byte."""
        head = (f"POST /v1/predict HTTP/1.1\r\nHost: t\r\nX-API-Key: {KEY}\r\nContent-Type: application/json\r\n"  # noqa: E501
                f"Content-Length: {size}\r\n\r\n").encode()  # fmt: skip
        part = b" " * (size - 1)
        outcomes: list[str] = []
        lock = threading.Lock()

        def one(i: int) -> None:
            with socket.create_connection(("127.0.0.1", port), timeout=60,
                                          source_address=(f"127.0.3.{i % addresses + 1}", 0)) as conn:  # fmt: skip  # noqa: E501
                conn.sendall(head)
                outcome = "withheld"
                try:
                    conn.settimeout(3)
                    conn.sendall(part)
                    time.sleep(5)  # hold it, as the clients did
                    first = conn.recv(12)
                    outcome = first[9:12].decode() if first else "closed"
                except OSError as exc:
                    outcome = type(exc).__name__
                with lock:
                    outcomes.append(outcome)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return [f"{outcomes.count(o)} x {o}" for o in sorted(set(outcomes))]

    return {
        "40 clients withholding the last byte of a 60 MiB body": (40 * size, lambda: withheld(40, 1)),
        "60 clients from 3 addresses withholding 60 MiB bodies": (60 * size, lambda: withheld(60, 3)),
    }


def after_client_attacks(
    data_dir: Path, url: str, port: int
) -> dict[str, tuple[int, Callable[[], list[str]]]]:
    text = gzip.decompress((data_dir / "train_FD001.txt.gz").read_bytes()).decode().splitlines()
    rows = [line.split(" ", 2)[2] for line in text]
    long_unit = gzip.compress("".join(f"1 {c + 1} {rows[c % len(rows)]}\n" for c in range(120_000)).encode())
    small = (data_dir / "test_FD001.txt.gz").read_bytes()

    def leave_then_score() -> list[str]:
        upload = httpx.Client(base_url=url, headers=AUTH).build_request(
            "POST", "/v1/models/fd001/score?all_cycles=true", files={"file": ("long.gz", long_unit)}
        )
        content = upload.read()
        head = "".join(f"{k}: {v}\r\n" for k, v in upload.headers.items() if k.lower() != "connection")
        request = f"POST {upload.url.raw_path.decode()} HTTP/1.1\r\n{head}\r\n".encode() + content
        for _ in range(2):  # both scoring slots, each client gone after 3 s
            _raw(port, request, read=False)
        time.sleep(3)
        started = time.monotonic()
        while True:  # how soon a third client's score is answered (not 503)
            status = httpx.post(url + "/v1/models/fd001/score", headers=AUTH, timeout=60,
                                files={"file": ("t.gz", small)}).status_code  # fmt: skip
            if status != 503 or time.monotonic() - started > 60:
                break
            time.sleep(0.25)
        return [f"next score {status} after {time.monotonic() - started:.1f} s"]

    return {
        "2 all-cycles scores of one 120 000-cycle unit, clients gone after 3 s": (
            2 * len(long_unit),
            leave_then_score,
        )
    }  # noqa: E501


def proxy_attacks(url: str, http: httpx.Client) -> dict[str, tuple[int, Callable[[], list[str]]]]:
    def guesses_beside_right_keys() -> list[str]:
        """One client behind the ingress sends 24 wrong keys; the others' right keys meanwhile."""
        with ThreadPoolExecutor(4) as pool:
            guesses = pool.submit(
                lambda: [
                    http.get(
                        "/v1/models", headers={"X-API-Key": f"g{i}", "X-Forwarded-For": "10.1.0.66"}
                    ).status_code
                    for i in range(24)
                ]
            )  # noqa: E501
            rights = [
                pool.submit(
                    lambda i=i: (
                        http.get(
                            "/v1/models", headers={**AUTH, "X-Forwarded-For": f"10.1.0.{i % 50}"}
                        ).status_code
                    )
                )
                for i in range(400)
            ]  # noqa: E501
            wrong = guesses.result()
            right = [r.result() for r in rights]
        return [
            f"guesses: {wrong.count(429)} x 429, {wrong.count(403)} x 403",
            f"right keys refused: {sum(s != 200 for s in right)} of {len(right)}",
        ]  # noqa: E501

    def distinct_forwarded(count: int) -> list[str]:
        statuses = [
            http.get(
                "/v1/models", headers={"X-API-Key": "wrong", "X-Forwarded-For": f"{i}-" + "z" * 60_000}
            ).status_code
            for i in range(count)
        ]  # noqa: E501
        return [f"{statuses.count(s)} x {s}" for s in sorted(set(statuses))]

    return {
        "24 wrong keys from one client among 400 right ones behind the proxy": (0, guesses_beside_right_keys),
        "3 000 wrong keys from distinct 60 KB forwarded addresses": (3000 * 60_000, lambda: distinct_forwarded(3000)),  # noqa: E501
    }  # fmt: skip


def metrics_attack(url: str, http: httpx.Client) -> dict[str, tuple[int, Callable[[], list[str]]]]:
    def odd_methods_then_scrape() -> list[str]:
        for i in range(300):
            http.request(f"M{i}", "/health/live")
            http.request(f"M{i}", "/v1/models")
        with ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(lambda _: httpx.get(url + "/metrics").status_code, range(8)))
        series = httpx.get(url + "/metrics").text.count("rul_requests_total{")
        return [f"{statuses.count(200)} x 200", f"{series} request series"]

    return {"600 odd methods, then 8 scrapes of /metrics": (0, odd_methods_then_scrape)}


def disk_attack(url: str) -> dict[str, tuple[int, Callable[[], list[str]]]]:
    big = b"1 1 " + b"0 " * (25 << 20)  # 50 MB of one row: three at once pass the disk budget below

    def uploads() -> list[str]:
        with ThreadPoolExecutor(3) as pool:
            statuses = list(
                pool.map(
                    lambda _: (
                        httpx.post(
                            url + "/v1/models/fd001/score",
                            headers=AUTH,
                            timeout=120,
                            files={"file": ("big.txt", big)},
                        ).status_code
                    ),
                    range(3),
                )
            )  # noqa: E501
        return [f"{statuses.count(s)} x {s}" for s in sorted(set(statuses))]

    return {"3 clients uploading 50 MB at once (disk budget 128 MiB)": (3 * len(big), uploads)}


def attacks(data_dir: Path, url: str, port: int) -> dict[str, tuple[int, Callable[[], list[str]]]]:
    http = httpx.Client(base_url=url, timeout=180, headers=AUTH)
    return {**trailer_attacks(port), **list_attacks(http), **total_attacks(port, http),
            **after_client_attacks(data_dir, url, port), **proxy_attacks(url, http),
            **metrics_attack(url, http), **disk_attack(url)}  # fmt: skip


def main() -> None:
    settings = {"RUL_API_KEYS": KEY, "RUL_TRUSTED_PROXIES": "127.0.0.1",
                "RUL_MAX_UPLOADS_ON_DISK_BYTES": str(128 << 20), "RUL_AUTH_FREE_FAILURES": "5"}  # fmt: skip
    run_round(__doc__, "abuse_round3", settings,
              lambda args, server, port, _models: attacks(args.data_dir, server.url, port),
              busy_expected=("40 clients", "60 clients", "2 all-cycles", "3 clients uploading"))  # fmt: skip


if __name__ == "__main__":
    main()
