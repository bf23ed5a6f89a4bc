from pathlib import Path

from service.providers import CPU, CUDA, TENSORRT, SessionConfig, _provider_options


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
