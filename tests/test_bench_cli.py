"""The benchmarks refuse combinations whose ratios would not mean what they say."""

import subprocess
import sys
import time

import pytest

from bench.servers import thread_cpu_seconds, wait_idle
from tests.conftest import ROOT


def test_service_bench_refuses_the_cpu_only_bentoml_peer_on_cuda():
    command = [sys.executable, "-m", "bench.service_bench", "--data-dir", "unused",
               "--bentoml", "/opt/bento/bin/bentoml", "--provider", "cuda"]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--bentoml with --provider cuda: the BentoML peer serves on the CPU only" in done.stderr


def test_wait_idle_waits_for_a_busy_server_and_not_for_an_idle_one():
    # the service benchmark starts each load run only once the server has finished the
    # requests the previous run left in flight (bench/README.md, "wrk's p99"). No timing
    # threshold: on a loaded machine a window may overrun or hold the idle process's start-up
    # tick, so the idle one only has to be found idle at some point within a generous timeout,
    # and the busy one (which gets most of a core even at a load of 3 on 2 cores) never
    idle = subprocess.Popen(["sleep", "60"])
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        wait_idle(idle.pid, window=0.1, timeout=30)  # returns: no TimeoutError
        with pytest.raises(TimeoutError, match="still busy"):
            wait_idle(busy.pid, window=0.5, timeout=1.5)
    finally:
        idle.kill()
        busy.kill()


def test_thread_cpu_seconds_charges_a_busy_thread_and_not_the_idle_main_thread():
    # bench/cpu_split.py splits the server's CPU between its event-loop (main) thread and the rest
    script = (
        "import threading, time\n"
        "def spin():\n    while True: pass\n"
        "threading.Thread(target=spin, daemon=True).start()\ntime.sleep(30)"
    )
    process = subprocess.Popen([sys.executable, "-c", script])
    try:
        time.sleep(1.0)
        first = thread_cpu_seconds(process.pid)
        time.sleep(1.0)
        second = thread_cpu_seconds(process.pid)
        assert set(first) >= {process.pid} and len(first) >= 2
        spent = {tid: second[tid] - first[tid] for tid in first}
        assert spent[process.pid] < 0.05  # the main thread sleeps
        assert max(spent.values()) > 0.2  # the spinning thread (a fifth of a core even on a busy host)
    finally:
        process.kill()
