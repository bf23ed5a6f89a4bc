#!/usr/bin/env bash
# The GPU figures of bench/README.md, on a GPU host, from the repository root:
#
#   bash bench/gpu_host.sh ../shared/data/cmapss
#
# Needs the project's Python dependencies with onnxruntime-gpu (CUDA 13 + cuDNN 9 loadable,
# e.g. from the nvidia-* wheels that a CUDA build of torch brings), torch with CUDA, pytest and
# wrk. Prints the GPU, proves the service's CUDA path (the test that runs only where CUDA
# really loads), then writes bench/results/model_compute_cuda.json and service_bench_cuda.json.
set -euo pipefail
DATA=${1:?usage: bash bench/gpu_host.sh CMAPSS_DIR}
MODEL_ROUNDS=${MODEL_ROUNDS:-2}
SOAK_SECONDS=${SOAK_SECONDS:-30}
export CMAPSS_DIR=$DATA PYTHONUNBUFFERED=1

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
python -c "import onnxruntime as ort, torch; print('onnxruntime', ort.__version__, ort.get_available_providers(), '| torch', torch.__version__, torch.cuda.get_device_name())"
python -m pytest -q -p no:cacheprovider tests/service/test_app.py -k cuda -rs
python -m bench.model_compute --data-dir "$DATA" --provider cuda --rounds "$MODEL_ROUNDS" \
    --batch-sizes 1 32 256 1024 4096
python -m bench.service_bench --data-dir "$DATA" --provider cuda --soak-seconds "$SOAK_SECONDS"
