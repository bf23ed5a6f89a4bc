"""Offline training pipeline for the dual-task RUL model (PyTorch): data, model, training,
evaluation and ONNX export. The service never imports this package."""
