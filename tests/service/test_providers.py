from pathlib import Path

import pytest

from service.providers import (
    CPU,
    CUDA,
    TENSORRT,
    ProviderUnavailable,
    SessionConfig,
    _provider_options,
    create_session,
)


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
