# The RUL service image: service only (no torch), ONNX Runtime GPU on CUDA 13 + cuDNN 9.
# Build: docker build -t rul-service .   Run on a GPU host: docker compose up
# The base is a build argument so that CI can build this same file on a Debian base it makes
# itself (deploy/image_check.sh); a GPU host uses the default.
ARG BASE_IMAGE=nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04
FROM ${BASE_IMAGE}

ENV DEBIAN_FRONTEND=noninteractive \
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
# onnxruntime-gpu pinned: the release the project is built and tested with (it needs CUDA 13, cuDNN 9)
RUN pip install --no-cache-dir . "onnxruntime-gpu==1.31.1" \
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
