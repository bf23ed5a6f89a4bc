"""Offline training pipeline for the dual-task RUL model (PyTorch): data, model, training,
evaluation and ONNX export. The service never imports this package."""

import os

# ONNX Runtime's telemetry off before anything imports it, as in service/__init__.py (which
# says why): rul-train and rul-export do not import the service.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
