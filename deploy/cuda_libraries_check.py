"""Run inside the image by deploy/image_check.sh: the CUDA and cuDNN libraries that ONNX
Runtime's CUDA provider needs load from the image's own wheels (onnxruntime.preload_dlls(), as
the service calls it). On a machine without an NVIDIA driver the provider may lack only the
driver's libcuda.so.1, which the NVIDIA Container Toolkit mounts into the container on a GPU
host. Exits 1, naming what is missing, otherwise."""

import ctypes
import sys
from pathlib import Path

import onnxruntime as ort

WHEEL_LIBRARIES = ["libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13", "libcufft.so.12",
                   "libcurand.so.10", "libcudnn.so.9"]  # fmt: skip
DRIVER = "libcuda.so.1"

ort.preload_dlls()
loaded = Path("/proc/self/maps").read_text()
missing = [name for name in WHEEL_LIBRARIES if name not in loaded]
if missing:
    sys.exit(f"FAIL: not loaded from the image's wheels: {', '.join(missing)}")
provider = Path(ort.__file__).parent / "capi" / "libonnxruntime_providers_cuda.so"
try:
    ctypes.CDLL(str(provider))
    print(f"CUDA libraries loaded from the image's wheels ({', '.join(WHEEL_LIBRARIES)}); "
          "the CUDA provider loads (a driver is present)")  # fmt: skip
except OSError as error:
    if DRIVER not in str(error):
        sys.exit(f"FAIL: the CUDA provider does not load: {error}")
    print(f"CUDA libraries loaded from the image's wheels ({', '.join(WHEEL_LIBRARIES)}); "
          f"the CUDA provider lacks only {DRIVER}, the driver's library (no GPU here)")  # fmt: skip
