"""The benchmarks refuse combinations whose ratios would not mean what they say."""

import subprocess
import sys

from tests.conftest import ROOT


def test_service_bench_refuses_the_cpu_only_bentoml_peer_on_cuda():
    command = [sys.executable, "-m", "bench.service_bench", "--data-dir", "unused",
               "--bentoml", "/opt/bento/bin/bentoml", "--provider", "cuda"]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--bentoml with --provider cuda: the BentoML peer serves on the CPU only" in done.stderr
