import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from service.core.providers import (
    CPU,
    CUDA,
    TENSORRT,
    ProviderUnavailable,
    SessionConfig,
    _provider_options,
    create_session,
)
from service.settings import Settings
from tests.conftest import ROOT


def test_cuda_uses_heuristic_cudnn_algorithm_search():
    assert _provider_options(CUDA, SessionConfig("cuda")) == (CUDA, {"cudnn_conv_algo_search": "HEURISTIC"})


def test_tensorrt_caches_engines_in_the_configured_directory(tmp_path: Path):
    cache = tmp_path / "trt"
    name, options = _provider_options(TENSORRT, SessionConfig("tensorrt", tensorrt_cache_dir=cache))
    assert name == TENSORRT
    assert options == {"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(cache)}
    assert cache.is_dir()


def test_cpu_needs_no_options():
    assert _provider_options(CPU, SessionConfig("cpu")) == CPU


def test_tensorrt_requested_without_tensorrt_names_what_to_install():
    """Seen on the H100 host: TensorRT's libraries missing, ONNX Runtime falls back to CUDA; the
    error must name TensorRT, not CUDA/cuDNN. Here (no GPU at all) it falls back to the CPU."""
    models = Path(__file__).resolve().parents[2] / "models"
    with pytest.raises(ProviderUnavailable) as raised:
        create_session(models / "fd001.onnx", SessionConfig("tensorrt"))
    message = str(raised.value)
    assert message.startswith(
        "RUL_PROVIDERS=tensorrt needs TensorrtExecutionProvider, but ONNX Runtime activated"
    )
    assert (
        "Install TensorRT's libraries (libnvinfer)" in message and "or set RUL_PROVIDERS=auto|cpu." in message
    )


def test_intra_op_spinning_off_reaches_the_session_and_changes_no_output(monkeypatch):
    models = Path(__file__).resolve().parents[2] / "models"
    monkeypatch.setenv("RUL_INTRA_OP_SPINNING", "false")
    monkeypatch.setenv("RUL_PROVIDERS", "cpu")
    config = Settings().session_config()
    assert config.intra_op_spinning is False
    quiet = create_session(models / "fd001.onnx", config)
    default = create_session(models / "fd001.onnx", SessionConfig("cpu"))
    assert quiet.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"
    windows = np.random.default_rng(0).normal(500.0, 50.0, size=(3, 50, 24)).astype(np.float32)
    np.testing.assert_array_equal(quiet.run(["rul"], {"readings": windows})[0],
                                  default.run(["rul"], {"readings": windows})[0])  # fmt: skip


def test_a_host_without_cuda_starts_quietly_and_says_so_once_in_our_words():
    """ONNX Runtime's GPU probing printed ~20 red `[E:onnxruntime...] Failed to load library`
    lines before our warning (once per model): now it probes quietly, and one warning names
    what was tried, what is missing and what runs."""
    code = (
        "import logging; from pathlib import Path; logging.basicConfig()\n"
        "from service.model_set import load_models; from service.core.providers import SessionConfig\n"
        "models, errors = load_models(Path('models'), SessionConfig('auto'))\n"
        "print('ACTIVE', sorted({m.provider for m in models.values()}), errors)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    if f"ACTIVE ['{CUDA}']" in output:
        pytest.skip("CUDA works on this host: nothing to fall back from")
    assert "[E:onnxruntime" not in output and "[W:onnxruntime" not in output, output
    assert "Failed to load" not in output, output  # preload_dlls' own lines, captured
    if CUDA in ort.get_available_providers():  # onnxruntime-gpu without CUDA's libraries
        assert output.count("CUDA EXECUTION PROVIDER NOT ACTIVE") == 1, output
        assert f"tried {CUDA} first" in output and "missing: " in output and f"run on {CPU}" in output


def test_the_fallback_warning_names_the_driver_when_only_the_driver_is_missing(monkeypatch):
    """In the image on a machine without an NVIDIA driver (deploy/image_check.sh), every CUDA
    library loads from the wheels and only the driver's libcuda.so.1 is missing: say that, not
    'see the requirements'."""
    from service.core import providers

    error = "libcuda.so.1: cannot open shared object file: No such file or directory"
    monkeypatch.setattr(providers, "_cuda_provider_error", lambda: error)
    assert providers._missing_libraries("").startswith("libcuda.so.1, the NVIDIA driver's library")
    assert providers._missing_libraries("Failed to load libcudnn.so.9: not found\n") == "libcudnn.so.9"
    monkeypatch.setattr(
        providers, "_cuda_provider_error", lambda: "libcublasLt.so.13: cannot open shared object file"
    )
    assert providers._missing_libraries("") == "libcublasLt.so.13"


@pytest.mark.parametrize("package", ["service", "training"])
def test_onnxruntime_telemetry_is_off_and_nothing_is_written_to_the_home_directory(tmp_path, package):
    """ONNX Runtime 1.31 keeps a device ID and a telemetry store under ~/.cache/Microsoft and
    uploads usage events unless ORT_DISABLE_TELEMETRY is set; importing our packages sets it."""
    code = (
        f"import {package}, onnxruntime as ort\n"
        "ort.InferenceSession('models/fd004.onnx', providers=['CPUExecutionProvider'])\n"
        "import os; print(os.environ['ORT_DISABLE_TELEMETRY'])"
    )
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"} | {"HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "1", done.stderr
    assert list(tmp_path.rglob("*")) == []
