"""The servers the benchmarks start on loopback (ours and the peers), how long each took to
become ready, and how much memory its processes hold."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tree(pid: int) -> list[int]:
    """`pid` and all its descendants (BentoML serves from child processes)."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            todo += [int(child) for child in task.read_text().split()]
    return pids


def rss_mb(pid: int) -> float:
    """Resident memory of `pid` and its descendants in MiB (Linux /proc)."""
    total_kb = 0
    for member in _tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
        except FileNotFoundError:  # exited meanwhile
            continue
    return total_kb / 1024


def _stat_cpu_seconds(stat_file: Path) -> float:
    """User + system CPU seconds from a /proc `stat` file (a process's or a thread's); 0 if
    it has exited meanwhile."""
    try:
        fields = stat_file.read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: proc(5) 14, 15


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` and its descendants so far, in seconds (Linux /proc)."""
    return sum(_stat_cpu_seconds(Path(f"/proc/{member}/stat")) for member in _tree(pid))


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU seconds so far of each thread of process `pid`, by thread id (the main thread's id
    is `pid`)."""
    return {int(task.name): _stat_cpu_seconds(task / "stat") for task in Path(f"/proc/{pid}/task").iterdir()}


def wait_idle(pid: int, window: float = 0.25, busy_share: float = 0.05, timeout: float = 30.0) -> float:
    """Block until the processes of `pid` use less than `busy_share` of one core over `window`
    seconds, i.e. until work left over from the previous load run (wrk stops sending, but the
    server finishes the requests in flight: a 1 000-window batch is ~1 s of CPU here) is done,
    so that it does not stall the first requests of the next run. Returns the seconds waited;
    raises TimeoutError if the server is still busy after `timeout`."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        before = cpu_seconds(pid)
        time.sleep(window)
        if cpu_seconds(pid) - before < busy_share * window:
            return time.perf_counter() - started
    raise TimeoutError(f"server {pid} still busy after {timeout:.0f} s")


@dataclass
class Server:
    name: str
    process: subprocess.Popen
    url: str
    predict_path: str  # where single-window and batch requests go
    ready_seconds: float = 0.0  # process start -> first successful readiness probe
    cleanup: list[Path] = field(default_factory=list)

    def rss_mb(self) -> float:
        return rss_mb(self.process.pid)

    def wait_idle(self) -> float:
        return wait_idle(self.process.pid)

    def stop(self) -> None:
        try:  # the whole process group: BentoML's workers too
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, signal.SIGKILL)
        for path in self.cleanup:
            shutil.rmtree(path, ignore_errors=True)


def _start(
    name: str,
    command: list[str],
    env: dict[str, str],
    port: int,
    ready_path: str,
    predict_path: str,
    timeout: float = 120,
    cwd: Path = ROOT,
) -> Server:
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        env={**os.environ, **env},
        cwd=cwd,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    server = Server(name, process, url, predict_path)
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with code {process.returncode} before it was ready")
        try:
            if httpx.get(url + ready_path, timeout=1).status_code == 200:
                server.ready_seconds = time.perf_counter() - started
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"{name} was not ready after {timeout:.0f} s")


def only_model_dir(model: str) -> Path:
    """A temporary models directory holding just `model` (.onnx + .json) from models/."""
    directory = Path(tempfile.mkdtemp(prefix="bench-models-"))
    for suffix in (".onnx", ".json"):
        shutil.copy(ROOT / "models" / f"{model}{suffix}", directory)
    return directory


def start_ours(
    batching: bool,
    model: str | None = "fd001",
    provider: str = "cpu",
    settings: dict[str, str] | None = None,
    tree: Path = ROOT,
) -> Server:
    """rul-serve on `provider` (cpu or cuda); `model` alone (same work as the peers) or None: all
    shipped; `settings`: more RUL_* environment variables; `tree`: the checkout whose service
    runs (another one: an earlier commit, side by side)."""
    port = free_port()
    models_dir = only_model_dir(model) if model else ROOT / "models"
    env = {
        "RUL_PORT": str(port),
        "RUL_PROVIDERS": provider,
        "RUL_BATCHING": str(batching).lower(),
        "RUL_LOG_LEVEL": "warning",
        "RUL_MODELS_DIR": str(models_dir),
        **(settings or {}),
    }
    name = f"ours, batching {'on' if batching else 'off'}" + ("" if model else ", all shipped models")
    if tree != ROOT:
        name += f" ({tree})"
    command = [sys.executable, "-m", "service.main"]
    server = _start(name, command, env, port, "/health/ready", "/v1/predict", cwd=tree)
    if model:
        server.cleanup.append(models_dir)
    return server


def start_minimal_fastapi(model: str = "fd001", provider: str = "cpu") -> Server:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.peers.minimal_fastapi:app",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    env = {"PEER_MODEL": str(ROOT / "models" / f"{model}.onnx"), "PEER_PROVIDER": provider}
    return _start("minimal FastAPI peer", command, env, port, "/health", "/predict")


def start_bentoml(bentoml: str, model: str = "fd001") -> Server:
    port = free_port()
    command = [bentoml, "serve", "bench/peers/bento_service.py:RulService", "--port", str(port)]
    env = {"PEER_MODEL": str(ROOT / "models" / f"{model}.onnx"), "BENTOML_DO_NOT_TRACK": "True"}
    return _start("BentoML peer", command, env, port, "/readyz", "/predict")
