"""The Open Inference Protocol's inference request and answer as bytes and tensors: the
request's structure (validated once, strictly), its input tensor (JSON data or the binary
tensor extension), and the answer's outputs (JSON data or binary, the `quality` output as one
JSON document per window). No routes here: service/routes/oip.py."""

import functools
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
from fastapi import HTTPException
from pydantic import (
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
)

from service.core import pipeline
from service.core.answers import Answers, quality_record
from service.core.predictor import Predictor
from service.transport import fast_json
from service.transport.schemas import RequestBody

HEADER_LENGTH = "inference-header-content-length"
DTYPES = {"FP32": np.float32, "FP64": np.float64}
# The graph's outputs are FP32 but for the quality flags; "quality" is the service's own: one
# JSON document per window, {"status", "flags", "ood_score"} as in the v1 API.
QUALITY_OUTPUT = "quality"
# The service's own too: one JSON document per window holding the v1 API's whole answer
# (schemas.Answer: rul, interval, health, planning, quality, ...), made by the same
# `Answers.records` as every other path, so a field added to the answers reaches OIP clients.
ANSWER_OUTPUT = "answer"
# The drivers of each answer (service/core/drivers.py), one JSON document per window
# ({"drivers": [...], "drivers_note": ...}); only when named, as they cost K more runs a window.
DRIVERS_OUTPUT = "drivers"
# Also the service's own, from rul_quantiles and the request's parameters horizons and risk
# (service/core/planning.py): P(RUL <= h) [batch, horizons], the RUL at the risk [batch].
PLANNING_OUTPUTS = ("failure_probabilities", "rul_at_risk")
# +inf is no JSON number: where the graph gives it (open above the cap), JSON data says -1
OPEN_OUTPUTS = ("rul_upper", "rul_quantiles")
OUTPUT_DTYPES = {
    "quality_flags": ("INT32", np.int32),
    "window_flags": ("INT32", np.int32),
    QUALITY_OUTPUT: ("BYTES", None),
    ANSWER_OUTPUT: ("BYTES", None),
    DRIVERS_OUTPUT: ("BYTES", None),
}


class Parameters(RequestBody):
    """Open Inference Protocol parameters: the ones this server acts on, typed strictly; any
    other is refused (400 naming it and the ones allowed), never silently ignored."""

    binary_data_size: StrictInt | None = Field(default=None, ge=0)
    binary_data: StrictBool | None = None
    binary_data_output: StrictBool | None = None
    horizons: list[StrictInt] | None = None  # request parameters: what failure_probabilities answers
    risk: StrictFloat | None = None  # and rul_at_risk


class InputTensor(RequestBody):
    name: StrictStr
    datatype: StrictStr
    shape: list[StrictInt]
    data: list[Any] | None = None
    parameters: Parameters | None = None


class RequestedOutput(RequestBody):
    name: StrictStr
    parameters: Parameters | None = None


class InferRequest(RequestBody):
    """The structure of an inference request, checked before any of it is used, so that a
    malformed request is a 400 that says what is wrong, never a 500."""

    id: StrictStr | None = None
    inputs: list[InputTensor]
    outputs: list[RequestedOutput] | None = None
    parameters: Parameters | None = None


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "the request"
    more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
    message = error["msg"].split(" or instance of ")[0].removeprefix("Value error, ")  # not our class names
    return f"{where}: {message}{more}"


def split_body(request_body: bytes, header_length: str | None) -> tuple[dict[str, Any], bytes]:
    """The JSON inference request and the binary tensor bytes after it (if any)."""
    try:
        if header_length is None:
            return fast_json.loads_fairly(request_body), b""
        n = int(header_length)
        if not 0 <= n <= len(request_body):
            raise ValueError(f"{HEADER_LENGTH} is {n}; the body has {len(request_body)} bytes")
        return fast_json.loads_fairly(request_body[:n]), request_body[n:]
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPException(400, f"the inference request is not valid JSON: {exc}") from exc


def checked_request(body: dict[str, Any]) -> InferRequest:
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
        request = InferRequest.model_validate({**body, "inputs": inputs})
    except ValidationError as exc:
        raise HTTPException(400, f"the inference request is malformed: {_first_problem(exc)}") from None
    for tensor, values in zip(request.inputs, data, strict=True):
        tensor.data = values
    return request


def input_tensor(request: InferRequest, binary: bytes, predictor: Predictor, max_windows: int) -> np.ndarray:
    """The request's one input as a batch (N, W, C) float32, held to what /v1 holds a request to:
    at most `max_windows` windows (413, RUL_MAX_WINDOWS_PER_REQUEST), binary data exactly as long
    as it says, JSON data numbers (not strings or booleans), every value finite but for a short
    history's padding (whole NaN rows at the front; JSON data: null is not a number, so
    padding needs binary data)."""
    card = predictor.card
    if len(request.inputs) != 1:
        raise HTTPException(400, f"expected exactly one input, {card.input_name!r}")
    tensor = request.inputs[0]
    name = repr(card.input_name)
    if tensor.name != card.input_name:
        raise HTTPException(400, f"unknown input {tensor.name!r}; model {card.name} takes {name}")
    if tensor.datatype not in DTYPES:
        raise HTTPException(400, f"input {name} has datatype {tensor.datatype!r}; expected FP32")
    shape = tensor.shape
    expected = [card.window_length, len(card.input_features)]
    if len(shape) != 3 or shape[0] < 1 or shape[1:] != expected:
        wanted = f"[batch, {expected[0]}, {expected[1]}] (batch >= 1)"
        raise HTTPException(400, f"input {name} has shape {shape}; expected {wanted}")
    if shape[0] > max_windows:
        raise HTTPException(
            413, f"request has {shape[0]} windows; the limit is {max_windows} (RUL_MAX_WINDOWS_PER_REQUEST)"
        )
    count = shape[0] * expected[0] * expected[1]
    size = tensor.parameters.binary_data_size if tensor.parameters else None
    if size is not None:
        if size != len(binary):
            raise HTTPException(400, f"input {name} declares binary_data_size {size}, but "
                                     f"{len(binary)} bytes follow the JSON header")  # fmt: skip
        itemsize = np.dtype(DTYPES[tensor.datatype]).itemsize
        if size != count * itemsize:
            raise HTTPException(400, f"input {name} has {size} bytes of {tensor.datatype}; shape {shape} "
                                     f"needs {count * itemsize}")  # fmt: skip
        array = np.frombuffer(binary, dtype=DTYPES[tensor.datatype])
    else:
        if binary:
            raise HTTPException(400, f"{len(binary)} bytes follow the JSON header, but no input declares "
                                     "binary_data_size")  # fmt: skip
        array = _json_numbers(tensor.data, name, tensor.datatype)
    if array.size != count:
        raise HTTPException(400, f"input {name} has {array.size} values; shape {shape} needs {count}")
    with np.errstate(over="ignore"):  # values beyond float32 become inf and are refused below
        batch = array.reshape(shape).astype(np.float32)
    _check_finite(batch, name, card.input_features)
    return batch


def _check_finite(batch: np.ndarray, name: str, features: list[str]) -> None:
    """Every value finite, except a short history's front padding: whole rows of NaN, only
    before the first real cycle (the card's rule 'nan'); a window all padding is refused."""
    finite = np.isfinite(batch)
    if not finite.all():
        # a short history's front padding (the card's rule 'nan'): whole rows of NaN, only before
        # the first real cycle; any other NaN or infinity is no reading
        padding = pipeline.padding_rows(batch)  # (N, W)
        bad = np.argwhere(~finite & ~padding[:, :, None])
        if len(bad):
            window, row, column = (int(v) for v in bad[0])
            raise HTTPException(400, f"input {name} window {window}, row {row}, column {column} "
                                     f"({features[column]}) is {batch[window, row, column]}; "
                                     "values must be finite, except whole rows of NaN before a window's "
                                     "first cycle (a short history's padding)")  # fmt: skip
        if padding.all(axis=1).any():
            window = int(np.flatnonzero(padding.all(axis=1))[0])
            raise HTTPException(400, f"input {name} window {window} is all padding (NaN rows); send at "
                                     "least one cycle of readings")  # fmt: skip


def _json_numbers(data: Any, name: str, datatype: str) -> np.ndarray:
    """JSON tensor data (flat or nested lists) as float64, refusing anything that is not a
    number of the declared datatype: strings, booleans, objects, null."""
    if not isinstance(data, list):
        raise HTTPException(400, f"input {name} has no data: send 'data' or binary_data_size")
    try:  # window by window (or in slices of a flat list): the loop gets turns in between
        step = 1 if data and isinstance(data[0], list) else 65_536
        parts = [np.asarray(data[i : i + step]) for i in range(0, len(data), step)]
        array = np.concatenate(parts) if parts else np.asarray(data)
    except ValueError:  # ragged
        raise HTTPException(400, f"input {name} data is not a list of numbers of one shape") from None
    if array.dtype.kind not in "iuf" or _holds_a_boolean(data):
        kinds = {"U": "strings", "S": "strings", "b": "booleans", "O": "values that are not numbers"}
        found = (
            "booleans"
            if array.dtype.kind in "iuf"
            else kinds.get(array.dtype.kind, "values that are not numbers")
        )
        raise HTTPException(400, f"input {name} data holds {found}; {datatype} data must be JSON numbers")
    return array.astype(np.float64).reshape(-1)


def _holds_a_boolean(data: list) -> bool:
    """Whether nested lists hold true or false among numbers (numpy would read them as 1 and 0)."""
    stack: list[Any] = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, list):
            stack.extend(value)
        elif value is True or value is False:
            return True
    return False


def wants_binary(request: InferRequest, name: str) -> bool:
    for output in request.outputs or []:
        if output.name == name:
            return bool(output.parameters and output.parameters.binary_data)
    return bool(request.parameters and request.parameters.binary_data_output)


def bytes_tensor(values: list[str]) -> bytes:
    """The binary tensor data extension's BYTES layout: a 4-byte little-endian length per element."""
    return b"".join(len(v.encode()).to_bytes(4, "little") + v.encode() for v in values)


def output_tensors(answers: Answers, requested: list[str]) -> dict[str, np.ndarray]:
    """The answers as the protocol's output tensors: the graph's outputs as they are, and
    the planning outputs (from the same `Answers.planned` as every other path) when asked."""
    tensors = dict(answers.outputs)
    if any(name in PLANNING_OUTPUTS for name in requested):
        failure, at_risk = answers.planned()
        tensors |= {
            "failure_probabilities": failure.astype(np.float32),
            "rul_at_risk": at_risk.astype(np.float32),
        }
    return tensors


def _documents(answers: Answers, name: str, records: Callable[[], list[dict]]) -> list[dict]:
    """The JSON outputs' documents, one per window; `records`: the answers' records, made once."""
    if name == QUALITY_OUTPUT:
        return [quality_record(q) for q in answers.quality]
    if name == DRIVERS_OUTPUT:
        return [{"drivers": r["drivers"], "drivers_note": r["drivers_note"]} for r in records()]
    return records()


def encode_answer(
    predictor: Predictor, request: InferRequest, requested: list[str], answers: Answers
) -> tuple[bytes, bytes]:
    """The inference answer: its JSON header and the binary tensors it announces (empty when
    every output is JSON data)."""
    tensors = output_tensors(answers, requested)
    records = functools.cache(answers.records)  # `answer` and `drivers` both cut from them
    outputs, chunks = [], []
    for name in requested:
        datatype, dtype = OUTPUT_DTYPES.get(name, ("FP32", np.float32))
        if name in (QUALITY_OUTPUT, ANSWER_OUTPUT, DRIVERS_OUTPUT):
            documents = [orjson.dumps(r).decode() for r in _documents(answers, name, records)]
            data: Any = documents
            entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": [len(documents)]}
            raw = bytes_tensor(documents)
        else:
            value = np.ascontiguousarray(tensors[name], dtype=dtype)
            entry = {"name": name, "datatype": datatype, "shape": list(value.shape)}
            raw = value.tobytes()  # binary as the graph gives it (+inf when open, as on Triton)
            if name in OPEN_OUTPUTS:  # -1 in JSON data, as the metadata says
                value = np.where(np.isfinite(value), value, -1.0).astype(np.float32)
            data = value.reshape(-1).tolist()
        if wants_binary(request, name):
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = data
        outputs.append(entry)
    head = pipeline.head(predictor.card)  # the protocol names them model_name, model_version
    answer: dict[str, Any] = {
        "model_name": head["model"],
        "model_version": head["model_version"],
        "outputs": outputs,
    }
    if request.id is not None:
        answer["id"] = request.id
    return json.dumps(answer).encode(), b"".join(chunks)
