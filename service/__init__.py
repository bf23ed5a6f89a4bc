"""The RUL inference service: FastAPI + ONNX Runtime. Never imports torch."""
