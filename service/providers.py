"""Choosing the ONNX Runtime execution provider and proving which one is really active.

onnxruntime-gpu lists CUDAExecutionProvider as *available* even where the CUDA 13 / cuDNN 9
libraries are missing; the session then silently runs on CPU. So we ask the session which
provider it got (`get_providers()`) and decide from that.
"""

import logging
from pathlib import Path

import onnxruntime as ort

from service.settings import ProviderChoice

logger = logging.getLogger("service.providers")

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


class ProviderUnavailable(RuntimeError):
    """The provider the operator asked for is not the one ONNX Runtime activated."""


_preloaded = False


def _preload_cuda_libraries() -> None:
    """Load CUDA/cuDNN from pip-installed nvidia-* wheels if present (no-op otherwise)."""
    global _preloaded
    if not _preloaded and hasattr(ort, "preload_dlls"):
        try:
            ort.preload_dlls()
        except Exception as exc:  # the session creation below reports the real outcome
            logger.info("onnxruntime.preload_dlls() failed: %s", exc)
        _preloaded = True


def create_session(path: Path, choice: ProviderChoice, intra_op_threads: int = 0) -> ort.InferenceSession:
    """An InferenceSession on the provider `choice` asks for; raises ProviderUnavailable when
    'cuda' or 'tensorrt' was asked for and is not the active provider."""
    wanted = [p for p in REQUESTED[choice] if p in ort.get_available_providers()] or [CPU]
    if wanted[0] != CPU:
        _preload_cuda_libraries()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if intra_op_threads:
        options.intra_op_num_threads = intra_op_threads
    session = ort.InferenceSession(str(path), sess_options=options, providers=wanted)
    active = session.get_providers()[0]
    required = REQUIRED.get(choice)
    if required and active != required:
        raise ProviderUnavailable(
            f"RUL_PROVIDERS={choice} needs {required}, but ONNX Runtime activated {active} "
            f"(available: {', '.join(ort.get_available_providers())}). Install CUDA 13 and cuDNN 9 "
            "(or run on a GPU host with the NVIDIA container toolkit), "
            "or set RUL_PROVIDERS=auto|cpu."
        )
    if choice == "auto" and active == CPU and CUDA in ort.get_available_providers():
        logger.warning(
            "CUDA EXECUTION PROVIDER NOT ACTIVE for %s: CUDA 13 / cuDNN 9 could not be loaded, "
            "running on %s. Set RUL_PROVIDERS=cuda to refuse to start without a GPU.",
            path.name,
            active,
        )
    return session
