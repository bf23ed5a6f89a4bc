"""The peer most users would write first: one FastAPI endpoint that validates a list of
windows with pydantic and calls `session.run` for each request (no batching, no checks).

    PEER_MODEL=models/fd001.onnx [PEER_PROVIDER=cuda] uvicorn bench.peers.minimal_fastapi:app --port 8001

POST /predict {"windows": [[[24 floats] x cycles] x windows]} -> {"rul": [...], "health_probs": [...]}
Windows must already have the model's length. Used by bench/service_bench.py only.
"""

import os

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI
from pydantic import BaseModel

MODEL = os.environ.get("PEER_MODEL", "models/fd001.onnx")
if os.environ.get("PEER_PROVIDER") == "cuda":  # as ONNX Runtime's docs show it
    ort.preload_dlls()
    session = ort.InferenceSession(MODEL, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    if session.get_providers()[0] != "CUDAExecutionProvider":
        raise SystemExit(f"PEER_PROVIDER=cuda, but ONNX Runtime activated {session.get_providers()[0]}")
else:
    session = ort.InferenceSession(MODEL, providers=["CPUExecutionProvider"])
app = FastAPI()


class Windows(BaseModel):
    windows: list[list[list[float]]]


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/predict")
def predict(body: Windows) -> dict[str, list]:
    outputs = session.run(["rul", "health_probs"], {"readings": np.asarray(body.windows, dtype=np.float32)})
    return {"rul": outputs[0].tolist(), "health_probs": outputs[1].tolist()}
