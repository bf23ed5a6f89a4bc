# The RUL service image: service only (no torch), ONNX Runtime GPU with CUDA 13 and cuDNN 9
# from pip wheels (onnxruntime-gpu[cuda,cudnn]): a GPU host needs only the NVIDIA driver and
# the NVIDIA Container Toolkit (which mounts the driver's libcuda.so.1).
# Build: docker build -t rul-service .   Run on a GPU host: docker compose up
# The base is a build argument so that CI can build this same file on the same Debian release,
# made there by debootstrap (deploy/image_check.sh). Why not the nvidia/cuda base:
# docs/deployment.md, "The base image".
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

# ORT_DISABLE_TELEMETRY: ONNX Runtime's usage telemetry off (the service sets it too)
ENV DEBIAN_FRONTEND=noninteractive \
    ORT_DISABLE_TELEMETRY=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/venv/bin:$PATH

# Distribution Python; versions follow the pinned base image, so apt packages are not pinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv

WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
COPY training ./training
# packaged with the project (pyproject), though the image never installs the spark extra
COPY spark_scoring ./spark_scoring
# The base install is the service alone: fastapi, uvicorn, pydantic, onnxruntime-gpu, numpy.
# onnxruntime-gpu pinned: the release the project is built and tested with; its cuda and cudnn
# extras bring the CUDA 13 runtime, cuBLAS, cuFFT, cuRAND and cuDNN 9 that it loads
# (onnxruntime.preload_dlls(), called by the service), nothing else of CUDA.
RUN pip install --no-cache-dir . "onnxruntime-gpu[cuda,cudnn]==1.31.1" \
    && useradd --system --uid 10001 --no-create-home rul
COPY models ./models

USER 10001
ENV RUL_HOST=0.0.0.0 \
    RUL_PORT=8000 \
    RUL_MODELS_DIR=/app/models \
    RUL_PROVIDERS=auto
EXPOSE 8000
# Ready means every model loaded and warmed up (tests/test_deployment.py runs this command).
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python3", "-c", "import os, sys, urllib.request; url = 'http://127.0.0.1:' + os.environ.get('RUL_PORT', '8000') + '/health/ready'; sys.exit(0 if urllib.request.urlopen(url, timeout=4).status == 200 else 1)"]
CMD ["rul-serve"]
