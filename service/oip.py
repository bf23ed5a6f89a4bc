"""The Open Inference Protocol v2 (KServe / Triton REST), so standard clients such as
`tritonclient[http]` work unchanged. Tensors in, tensors out: the input `readings` FP32
`[B, window_length, 24]` goes to the graph as is (no padding; that is the v1 API's job).

Supports the binary tensor data extension that tritonclient uses by default: a request body
of JSON followed by raw tensor bytes (`Inference-Header-Content-Length` tells where the JSON
ends), and binary outputs when asked for. Errors are `{"error": "..."}`.
"""

import json
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

from service import fast_json
from service.answers import quality_record
from service.dependencies import NamedPredictor, not_ready_reason, refuse_out_of_distribution, run_model
from service.predictor import Predictor
from service.quality import Quality
from service.schemas import EXAMPLE_REQUEST
from service.security import require_api_key
from service.state import service_state

HEADER_LENGTH = "inference-header-content-length"
DTYPES = {"FP32": np.float32, "FP64": np.float64}

health = APIRouter(prefix="/v2", tags=["open inference protocol"])
api = APIRouter(prefix="/v2", tags=["open inference protocol"], dependencies=[Depends(require_api_key)])


def _server_version() -> str:
    try:
        return version("rul-service")
    except PackageNotFoundError:
        return "unknown"


@health.get("")
async def server_metadata() -> dict[str, Any]:
    return {"name": "rul-service", "version": _server_version(), "extensions": ["binary_tensor_data"]}


@health.get("/health/live")
async def server_live() -> dict[str, bool]:
    return {"live": True}


@health.get("/health/ready")
async def server_ready(request: Request) -> JSONResponse:
    reason = not_ready_reason(request)
    if reason:
        return JSONResponse({"error": f"not ready: {reason}"}, status_code=503)
    return JSONResponse({"ready": True})


# The graph's outputs are FP32 but for the quality flags; "quality" is the service's own: one
# JSON document per window, {"status", "flags", "ood_score"} as in the v1 API.
QUALITY_OUTPUT = "quality"
OUTPUT_DTYPES = {"quality_flags": ("INT32", np.int32), QUALITY_OUTPUT: ("BYTES", None)}


def _tensor_metadata(name: str, shape: list[int]) -> dict[str, Any]:
    return {"name": name, "datatype": OUTPUT_DTYPES.get(name, ("FP32", None))[0], "shape": shape}


def _output_shape(predictor: Predictor, name: str) -> list[int]:
    card = predictor.card
    if name == "health_probs":
        return [-1, len(card.health_states)]
    if name == "quality_flags":
        return [-1, card.window_length, len(card.input_features)]
    return [-1]


def _output_names(predictor: Predictor) -> list[str]:
    return [*predictor.output_names, QUALITY_OUTPUT]


def _qualities(predictor: Predictor, batch: np.ndarray, results: dict[str, np.ndarray]) -> list[Quality]:
    """Each window's quality; its flags' cycles are row positions of the tensor."""
    positions = np.broadcast_to(np.arange(predictor.window_length), batch.shape[:2])
    return predictor.explainer.assess_batch(batch, results["quality_flags"], results["ood_score"], positions)


def _bytes_tensor(values: list[str]) -> bytes:
    """The binary tensor data extension's BYTES layout: a 4-byte little-endian length per element."""
    return b"".join(len(v.encode()).to_bytes(4, "little") + v.encode() for v in values)


@api.get("/models/{model}")
async def model_metadata(predictor: NamedPredictor) -> dict[str, Any]:
    card = predictor.card
    return {
        "name": card.name,
        "versions": [card.version],
        "platform": "onnxruntime_onnx",
        "inputs": [_tensor_metadata(card.input_name, [-1, card.window_length, len(card.input_features)])],
        "outputs": [_tensor_metadata(n, _output_shape(predictor, n)) for n in _output_names(predictor)],
        "parameters": {
            "quality": "quality_flags: bit set per cycle and column ("
            + ", ".join(f"{bit} {name}" for name, bit in (card.quality.bits.items() if card.quality else []))
            + "); ood_score above 1: not like the training data; quality: the v1 API's quality "
            "object per window (status ok | degraded | out_of_distribution, flags, ood_score)",
            "rul_upper": "+inf (binary) or -1 (JSON data) where the interval is open above: the RUL is "
            "at least rul_lower",
        },
    }


@api.get("/models/{model}/ready")
async def model_ready(predictor: NamedPredictor) -> dict[str, Any]:
    return {"name": predictor.card.name, "ready": True}


@api.get("/models/{model}/versions/{model_version}")
async def model_version_metadata(predictor: NamedPredictor, model_version: str) -> dict[str, Any]:
    _check_version(predictor, model_version)
    return await model_metadata(predictor)


def _check_version(predictor: Predictor, model_version: str) -> None:
    if model_version not in ("", predictor.card.version):
        raise HTTPException(
            404,
            f"model {predictor.card.name!r} has version {predictor.card.version!r}, not {model_version!r}",
        )


class _Parameters(BaseModel):
    """Open Inference Protocol parameters: an object; the ones we act on are typed strictly."""

    model_config = ConfigDict(extra="allow")

    binary_data_size: StrictInt | None = Field(default=None, ge=0)
    binary_data: StrictBool | None = None
    binary_data_output: StrictBool | None = None


class _InputTensor(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: StrictStr
    datatype: StrictStr
    shape: list[StrictInt]
    data: list[Any] | None = None
    parameters: _Parameters | None = None


class _RequestedOutput(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: StrictStr
    parameters: _Parameters | None = None


class _InferRequest(BaseModel):
    """The structure of an inference request, checked before any of it is used, so that a
    malformed request is a 400 that says what is wrong, never a 500."""

    model_config = ConfigDict(extra="allow")

    id: StrictStr | None = None
    inputs: list[_InputTensor]
    outputs: list[_RequestedOutput] | None = None
    parameters: _Parameters | None = None


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "the request"
    more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
    message = error["msg"].split(" or instance of ")[0]  # not our class names
    return f"{where}: {message}{more}"


def _split_body(request_body: bytes, header_length: str | None) -> tuple[dict[str, Any], bytes]:
    """The JSON inference request and the binary tensor bytes after it (if any)."""
    try:
        if header_length is None:
            return fast_json.loads(request_body), b""
        n = int(header_length)
        if not 0 <= n <= len(request_body):
            raise ValueError(f"{HEADER_LENGTH} is {n}; the body has {len(request_body)} bytes")
        return fast_json.loads(request_body[:n]), request_body[n:]
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPException(400, f"the inference request is not valid JSON: {exc}") from exc


def _checked_request(body: dict[str, Any]) -> _InferRequest:
    """The request, validated (400 otherwise). The tensors' `data` lists are left out of the
    validation and put back after it (numpy reads them, _input_tensor), so that a large JSON
    tensor is not walked twice."""
    inputs = body.get("inputs")
    data: list[Any] = []
    if isinstance(inputs, list):
        data = [t.get("data") if isinstance(t, dict) else None for t in inputs]
        inputs = [{**t, "data": []} if isinstance(t, dict) and isinstance(t.get("data"), list) else t
                  for t in inputs]  # fmt: skip
    try:
        request = _InferRequest.model_validate({**body, "inputs": inputs})
    except ValidationError as exc:
        raise HTTPException(400, f"the inference request is malformed: {_first_problem(exc)}") from None
    for tensor, values in zip(request.inputs, data, strict=True):
        tensor.data = values
    return request


def _input_tensor(request: _InferRequest, binary: bytes, predictor: Predictor) -> np.ndarray:
    card = predictor.card
    if len(request.inputs) != 1:
        raise HTTPException(400, f"expected exactly one input, {card.input_name!r}")
    tensor = request.inputs[0]
    if tensor.name != card.input_name:
        raise HTTPException(
            400, f"unknown input {tensor.name!r}; model {card.name} takes {card.input_name!r}"
        )
    if tensor.datatype not in DTYPES:
        raise HTTPException(400, f"input {card.input_name!r} has datatype {tensor.datatype!r}; expected FP32")
    shape = tensor.shape
    expected = [card.window_length, len(card.input_features)]
    if len(shape) != 3 or shape[0] < 1 or shape[1:] != expected:
        wanted = f"[batch, {expected[0]}, {expected[1]}] (batch >= 1)"
        raise HTTPException(400, f"input {card.input_name!r} has shape {shape}; expected {wanted}")
    count = shape[0] * expected[0] * expected[1]
    size = tensor.parameters.binary_data_size if tensor.parameters else None
    try:
        if size is not None:
            array = np.frombuffer(binary[:size], dtype=DTYPES[tensor.datatype])
        else:
            array = np.asarray(tensor.data, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise HTTPException(400, f"input {card.input_name!r} data is not a list of numbers: {exc}") from exc
    if array.size != count:
        raise HTTPException(
            400, f"input {card.input_name!r} has {array.size} values; shape {shape} needs {count}"
        )
    with np.errstate(over="ignore"):  # values beyond float32 become inf and are refused below
        batch = array.reshape(shape).astype(np.float32)
    if not np.isfinite(batch).all():
        raise HTTPException(400, f"input {card.input_name!r} holds NaN or infinite values")
    return batch


def _wants_binary(request: _InferRequest, name: str) -> bool:
    for output in request.outputs or []:
        if output.name == name:
            return bool(output.parameters and output.parameters.binary_data)
    return bool(request.parameters and request.parameters.binary_data_output)


_INFER_EXAMPLE = {
    "id": "example-1",
    "inputs": [{
        "name": "readings",
        "datatype": "FP32",
        "shape": [1, len(EXAMPLE_REQUEST["windows"][0]["readings"]), 24],
        "data": EXAMPLE_REQUEST["windows"][0]["readings"],
    }],
    "outputs": [{"name": "rul"}, {"name": "health_probs"}],
}  # fmt: skip
_INFER_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"example": _INFER_EXAMPLE},
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary"},
                "description": "JSON header + binary tensors (Inference-Header-Content-Length)",
            },
        },
    }
}  # fmt: skip


@api.post("/models/{model}/infer", openapi_extra=_INFER_OPENAPI)
@api.post("/models/{model}/versions/{model_version}/infer", openapi_extra=_INFER_OPENAPI)
async def infer(request: Request, predictor: NamedPredictor, model_version: str = "") -> Response:
    """Open Inference Protocol inference: input `readings` FP32 [batch, window_length, 24]
    (raw readings); outputs rul, health_probs, rul_lower, rul_upper (JSON or binary)."""
    _check_version(predictor, model_version)
    body, binary = _split_body(await request.body(), request.headers.get(HEADER_LENGTH))
    if not isinstance(body, dict):
        raise HTTPException(400, "the inference request must be a JSON object")
    checked = _checked_request(body)
    batch = _input_tensor(checked, binary, predictor)
    requested = [o.name for o in checked.outputs or []] or _output_names(predictor)
    unknown = [n for n in requested if n not in _output_names(predictor)]
    if unknown:
        raise HTTPException(
            400, f"unknown outputs {unknown}; model {predictor.card.name} has {_output_names(predictor)}"
        )
    results = await run_model(request, predictor, batch)
    qualities = await run_in_threadpool(_qualities, predictor, batch, results)
    state = service_state(request.app)
    state.metrics.observe_quality(predictor.card.name, qualities)
    if state.settings.reject_out_of_distribution:
        refuse_out_of_distribution([(None, q) for q in qualities])
    header, data = await run_in_threadpool(_encode_answer, predictor, checked, requested, results, qualities)
    if not data:
        return Response(header, media_type="application/json")
    return Response(
        header + data, media_type="application/octet-stream", headers={HEADER_LENGTH: str(len(header))}
    )


def _encode_answer(
    predictor: Predictor,
    request: _InferRequest,
    requested: list[str],
    results: dict[str, np.ndarray],
    qualities: list[Quality],
) -> tuple[bytes, bytes]:
    """The inference answer: its JSON header and the binary tensors it announces (empty when
    every output is JSON data)."""
    outputs, chunks = [], []
    for name in requested:
        datatype, dtype = OUTPUT_DTYPES.get(name, ("FP32", np.float32))
        if name == QUALITY_OUTPUT:
            documents = [orjson.dumps(quality_record(q)).decode() for q in qualities]
            data: Any = documents
            entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": [len(documents)]}
            raw = _bytes_tensor(documents)
        else:
            value = np.ascontiguousarray(results[name], dtype=dtype)
            entry = {"name": name, "datatype": datatype, "shape": list(value.shape)}
            raw = value.tobytes()  # binary as the graph gives it (rul_upper +inf when open, as on Triton)
            if name == "rul_upper":  # +inf is no JSON number: -1 in JSON data, as the metadata says
                value = np.where(np.isfinite(value), value, -1.0).astype(np.float32)
            data = value.reshape(-1).tolist()
        if _wants_binary(request, name):
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = data
        outputs.append(entry)
    answer: dict[str, Any] = {
        "model_name": predictor.card.name,
        "model_version": predictor.card.version,
        "outputs": outputs,
    }
    if request.id is not None:
        answer["id"] = request.id
    return json.dumps(answer).encode(), b"".join(chunks)
