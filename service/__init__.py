"""The RUL inference service: FastAPI + ONNX Runtime. Never imports torch."""

import os

# ONNX Runtime (1.29 and later) has usage telemetry on Linux too, uploaded to Microsoft
# (microsoft/onnxruntime#27379), and keeps a device ID and an event store under
# ~/.cache/Microsoft unless ORT_DISABLE_TELEMETRY is set (measured with 1.31.1: with it set,
# nothing is written). Software on a maintenance team's machines must not call out: off, before
# anything imports onnxruntime, unless the operator set the variable.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
