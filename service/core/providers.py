"""Choosing the ONNX Runtime execution provider and proving which one is really active.

onnxruntime-gpu lists CUDAExecutionProvider as *available* even where the CUDA 13 / cuDNN 9
libraries are missing; the session then silently runs on CPU. So we ask the session which
provider it got (`get_providers()`) and decide from that.
"""

import contextlib
import ctypes
import io
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import onnxruntime as ort

ProviderChoice = Literal["auto", "cuda", "tensorrt", "cpu"]


logger = logging.getLogger("service.core.providers")

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
# What each choice asks ONNX Runtime for, in order of preference.
REQUESTED = {
    "cpu": [CPU],
    "auto": [CUDA, CPU],
    "cuda": [CUDA, CPU],
    "tensorrt": [TENSORRT, CUDA, CPU],
}
# The provider that must be active for the choice to count as met (auto accepts any).
REQUIRED = {"cuda": CUDA, "tensorrt": TENSORRT}
# What the operator must install when it is not.
INSTALL_HINT = {
    CUDA: "Install CUDA 13 and cuDNN 9 (or run on a GPU host with the NVIDIA container toolkit)",
    TENSORRT: "Install TensorRT's libraries (libnvinfer) beside CUDA 13 and cuDNN 9",
}


class ProviderUnavailable(RuntimeError):
    """The provider the operator asked for is not the one ONNX Runtime activated."""


_preloaded: str | None = None  # what onnxruntime.preload_dlls() printed, once loaded
_reported_cpu_fallback = False


def _preload_cuda_libraries() -> str:
    """Load CUDA/cuDNN from pip-installed nvidia-* wheels if present, once. ONNX Runtime prints
    a line for each library it cannot find: captured here, and named in our one warning."""
    global _preloaded
    if _preloaded is None:
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed):
                if hasattr(ort, "preload_dlls"):
                    ort.preload_dlls()
        except Exception as exc:  # the session creation below reports the real outcome
            printed.write(f"preload_dlls failed: {exc}\n")
        _preloaded = printed.getvalue()
        logger.debug("onnxruntime.preload_dlls(): %s", _preloaded.strip() or "nothing to report")
    return _preloaded


def _cuda_provider_error() -> str:
    """Why ONNX Runtime's CUDA provider library does not load, as the dynamic loader says it
    ('libcuda.so.1: cannot open shared object file: ...'); empty if it loads."""
    library = Path(ort.__file__).parent / "capi" / "libonnxruntime_providers_cuda.so"
    if not library.exists():
        return "the CUDA provider itself (this onnxruntime package has none: install onnxruntime-gpu)"
    try:
        ctypes.CDLL(str(library))
    except OSError as exc:
        return str(exc)
    return ""


def _missing_libraries(printed: str) -> str:
    """'libcublasLt.so.13, libcudnn.so.9' from preload_dlls' 'Failed to load X: ...' lines; when
    it found every library, what the CUDA provider's own library lacks (the driver's
    libcuda.so.1 where no NVIDIA driver is present)."""
    missing = re.findall(r"Failed to load (\S+?):", printed)
    if missing:
        return ", ".join(dict.fromkeys(missing))
    error = _cuda_provider_error()
    library = re.match(r"(\S+\.so[.\d]*): cannot open shared object file", error)
    if library and library.group(1) == "libcuda.so.1":
        return (
            "libcuda.so.1, the NVIDIA driver's library: no driver here (in a container, run it "
            "with the NVIDIA Container Toolkit)"
        )
    return (library.group(1) if library else error) or "see ONNX Runtime's CUDA requirements"


@contextlib.contextmanager
def _quiet_onnxruntime() -> Iterator[None]:
    """ONNX Runtime logs ~20 red error lines while it probes for a GPU it cannot load; only a
    fatal error gets through meanwhile (the outcome is read from the session, and said once)."""
    ort.set_default_logger_severity(4)
    try:
        yield
    finally:
        ort.set_default_logger_severity(2)  # ONNX Runtime's default: warnings and up


@dataclass(frozen=True)
class SessionConfig:
    """How to build every model's InferenceSession (from Settings)."""

    providers: ProviderChoice = "auto"
    intra_op_threads: int = 0  # 0: ONNX Runtime's default
    tensorrt_cache_dir: Path | None = None  # TensorRT engine cache: later starts skip the build
    # ONNX Runtime's intra-op threads busy-wait for the next piece of work after each run (its
    # default); False lets them sleep, leaving the cores to the HTTP work between runs
    intra_op_spinning: bool = True


def _provider_options(name: str, config: SessionConfig) -> tuple[str, dict[str, str]] | str:
    if name == CUDA:
        # HEURISTIC: cuDNN picks convolution algorithms without benchmarking each shape, so a
        # new batch size costs no search (EXHAUSTIVE can add seconds to first requests)
        return (CUDA, {"cudnn_conv_algo_search": "HEURISTIC"})
    if name == TENSORRT and config.tensorrt_cache_dir:
        config.tensorrt_cache_dir.mkdir(parents=True, exist_ok=True)
        return (
            TENSORRT,
            {"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(config.tensorrt_cache_dir)},
        )
    return name


def _warn_cpu_fallback_once(printed: str) -> None:
    """Once per process, not once per model: what was tried, what is missing, what runs."""
    global _reported_cpu_fallback
    if _reported_cpu_fallback:
        return
    _reported_cpu_fallback = True
    logger.warning(
        "CUDA EXECUTION PROVIDER NOT ACTIVE: RUL_PROVIDERS=auto tried %s first, but CUDA 13 / cuDNN 9 "
        "could not be loaded (missing: %s); the models run on %s. Set RUL_PROVIDERS=cuda to refuse to "
        "start without a GPU, or RUL_PROVIDERS=cpu to skip the probe.",
        CUDA,
        _missing_libraries(printed),
        CPU,
    )


def create_session(path: Path, config: SessionConfig) -> ort.InferenceSession:
    """An InferenceSession on the provider `config.providers` asks for; raises
    ProviderUnavailable when 'cuda' or 'tensorrt' was asked for and is not the active one."""
    choice = config.providers
    wanted = [p for p in REQUESTED[choice] if p in ort.get_available_providers()] or [CPU]
    printed = _preload_cuda_libraries() if wanted[0] != CPU else ""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if config.intra_op_threads:
        options.intra_op_num_threads = config.intra_op_threads
    if not config.intra_op_spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = [_provider_options(p, config) for p in wanted]
    with _quiet_onnxruntime() if wanted[0] != CPU else contextlib.nullcontext():
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    active = session.get_providers()[0]
    required = REQUIRED.get(choice)
    if required and active != required:
        raise ProviderUnavailable(
            f"RUL_PROVIDERS={choice} needs {required}, but ONNX Runtime activated {active} "
            f"(available: {', '.join(ort.get_available_providers())}). {INSTALL_HINT[required]}, "
            "or set RUL_PROVIDERS=auto|cpu."
        )
    if choice == "auto" and active == CPU and CUDA in ort.get_available_providers():
        _warn_cpu_fallback_once(printed)
    return session
