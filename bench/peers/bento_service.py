"""The same ONNX file served by BentoML the way its documentation shows (a service class
holding an ONNX Runtime session, one JSON API). Runs in its own virtual environment:

    python -m venv /tmp/bento && /tmp/bento/bin/pip install "bentoml<1.4.40" onnxruntime numpy
    PEER_MODEL=$PWD/models/fd001.onnx /tmp/bento/bin/bentoml serve \
        bench/peers/bento_service.py:RulService --port 8002

POST /predict {"windows": [[[24 floats] x cycles] x windows]} -> {"rul": [...], "health_probs": [...]}
(bentoml 1.4.40 needs a certifi newer than our package index has, hence the pin.) Used by
bench/service_bench.py only.
"""

import os

import bentoml
import numpy as np
import onnxruntime as ort


@bentoml.service(workers=1)
class RulService:
    def __init__(self) -> None:
        model = os.environ.get("PEER_MODEL", "models/fd001.onnx")
        self.session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])

    @bentoml.api
    def predict(self, windows: list[list[list[float]]]) -> dict[str, list]:
        x = np.asarray(windows, dtype=np.float32)
        rul, probs = self.session.run(["rul", "health_probs"], {"readings": x})
        return {"rul": rul.tolist(), "health_probs": probs.tolist()}
