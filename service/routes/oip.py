"""The Open Inference Protocol v2 (KServe / Triton REST), so standard clients such as
`tritonclient[http]` work unchanged. Tensors in, tensors out: the input `readings` FP32
`[B, window_length, 24]` goes to the graph as is (no padding; that is the v1 API's job).

Supports the binary tensor data extension that tritonclient uses by default: a request body
of JSON followed by raw tensor bytes (`Inference-Header-Content-Length` tells where the JSON
ends), and binary outputs when asked for. Errors are `{"error": "..."}`.
"""

from collections import Counter
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from service.core import pipeline
from service.core.planning import Planning, PlanningError, asked
from service.core.predictor import Predictor
from service.core.threads import in_worker
from service.state import service_state
from service.transport.dependencies import (
    NamedPredictor,
    answer_request,
    check_explained_count,
    not_ready_reason,
)
from service.transport.fast_json import in_turn
from service.transport.oip_tensors import (
    ANSWER_OUTPUT,
    DRIVERS_OUTPUT,
    HEADER_LENGTH,
    OUTPUT_DTYPES,
    PLANNING_OUTPUTS,
    QUALITY_OUTPUT,
    InferRequest,
    checked_request,
    encode_answer,
    input_tensor,
    split_body,
)
from service.transport.schemas import EXAMPLE_REQUEST

health = APIRouter(prefix="/v2", tags=["open inference protocol"])
api = APIRouter(prefix="/v2", tags=["open inference protocol"])


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


def _tensor_metadata(name: str, shape: list[int]) -> dict[str, Any]:
    return {"name": name, "datatype": OUTPUT_DTYPES.get(name, ("FP32", None))[0], "shape": shape}


def _output_shape(predictor: Predictor, name: str) -> list[int]:
    card = predictor.card
    if name == "health_probs":
        return [-1, len(card.health_states)]
    if name == "quality_flags":
        return [-1, card.window_length, len(card.input_features)]
    if name == "rul_quantiles":
        return [-1, len(card.distribution.levels) if card.distribution else 0]
    if name == "failure_probabilities":
        return [-1, -1]  # one column per horizon asked
    return [-1]


def _output_names(predictor: Predictor) -> list[str]:
    """Every output a request may name; all but `drivers` when it names none (drivers cost a
    run per read sensor: only when asked)."""
    return [*predictor.output_names, QUALITY_OUTPUT, *PLANNING_OUTPUTS, ANSWER_OUTPUT, DRIVERS_OUTPUT]


def _planning(request: InferRequest, predictor: Predictor, defaults: Planning, explain: bool) -> Planning:
    """The request parameters horizons and risk, the settings' where absent, and whether the
    drivers are asked; 400 naming the parameter for values the model cannot answer."""
    parameters = request.parameters
    horizons, risk = (parameters.horizons, parameters.risk) if parameters else (None, None)
    try:
        return asked(horizons, risk, defaults, predictor.card.rul_cap, explain)
    except PlanningError as exc:
        raise HTTPException(400, f"parameters.{exc}") from exc


def _requested_outputs(request: InferRequest, predictor: Predictor) -> list[str]:
    """The outputs asked for (all when none is named); 400 naming any unknown or repeated one."""
    default = [name for name in _output_names(predictor) if name != DRIVERS_OUTPUT]
    return _checked_names([o.name for o in request.outputs or []] or default, predictor)


def _check_output_count(body: dict[str, Any], predictor: Predictor) -> None:
    """Before the request is validated: a list of more inputs than the model takes (one), or
    of more outputs than it has (which must repeat or invent some), is refused from its length
    or names alone (400), so that 100 000 entries are never turned into 100 000 validated
    objects or errors."""
    inputs = body.get("inputs")
    if isinstance(inputs, list) and len(inputs) > 1:
        raise HTTPException(400, f"{len(inputs)} inputs; expected exactly one, {predictor.card.input_name!r}")
    outputs = body.get("outputs")
    if isinstance(outputs, list) and len(outputs) > len(_output_names(predictor)):
        names = [o.get("name") if isinstance(o, dict) else None for o in outputs]
        _checked_names([n if isinstance(n, str) else repr(n) for n in names], predictor)


def _checked_names(requested: list[str], predictor: Predictor) -> list[str]:
    known = _output_names(predictor)
    counts = Counter(requested)  # one pass: 100 000 names asked for cost microseconds, not minutes
    unknown = [n for n in counts if n not in known]
    if unknown:
        shown = ", ".join(repr(n[:40]) for n in unknown[:5]) + (
            f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        )
        raise HTTPException(400, f"unknown outputs [{shown}]; model {predictor.card.name} has {known}")
    repeated = sorted(n for n, count in counts.items() if count > 1)
    if repeated:
        times = ", ".join(f"{n!r} {counts[n]} times" for n in repeated)
        raise HTTPException(400, f"outputs requested more than once: {times}; ask for each output once")
    return requested


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
            + "); window_flags: bit set per window ("
            + ", ".join(
                f"{bit} {name}" for name, bit in (card.quality.window_bits.items() if card.quality else [])
            )
            + "); ood_score above 1: not like the training data; quality: the v1 API's quality "
            "object per window (status ok | degraded | out_of_distribution, flags, ood_score)",
            "readings": "a history shorter than the window: whole rows of NaN in front (binary data), "
            "which the graph counts as padding (short_history)",
            "rul_upper": "+inf (binary) or -1 (JSON data) where the interval is open above: the RUL is "
            "at least rul_lower",
            "rul_quantiles": "the RUL at quantile levels "
            + ", ".join(f"{level:g}" for level in (card.distribution.levels if card.distribution else []))
            + "; +inf (binary) or -1 (JSON data) where the distribution is open above the RUL cap",
            "failure_probabilities": "P(RUL <= h) for each horizon h of the request parameter horizons "
            "(whole cycles, at most the RUL cap; default RUL_DEFAULT_HORIZONS), shape [batch, horizons]",
            "rul_at_risk": "the RUL left with probability >= 1 - risk, for the request parameter risk "
            "in (0, 0.5] (default RUL_DEFAULT_RISK)",
            "answer": "the v1 API's whole answer per window, one JSON document each (rul, interval, "
            "health state and probabilities, failure probabilities, rul_at_risk, cycles_used, quality; "
            "with drivers too when the drivers output is asked)",
            "drivers": "only when named: the sensors that drive each RUL, one JSON document per window "
            '({"drivers": [{"column", "effect", "reads"}, ...], "drivers_note"}); the model runs once more '
            "per read sensor",
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
    (raw readings); outputs the graph's (rul, health_probs, rul_lower, rul_upper, the quality
    outputs, rul_quantiles) and the service's (quality, failure_probabilities and rul_at_risk
    for the request parameters horizons and risk), JSON or binary."""
    _check_version(predictor, model_version)
    settings = service_state(request.app).settings
    # decoding and reading the tensor are per-value work: in a worker thread, never on the loop
    raw = await request.body()
    body, binary = await in_worker(in_turn, len(raw), split_body, raw, request.headers.get(HEADER_LENGTH))
    if not isinstance(body, dict):
        raise HTTPException(400, "the inference request must be a JSON object")
    _check_output_count(body, predictor)
    checked = await in_worker(checked_request, body)
    requested = _requested_outputs(checked, predictor)
    planning = _planning(checked, predictor, settings.planning(), DRIVERS_OUTPUT in requested)
    limit = settings.max_windows_per_request
    batch = await in_worker(in_turn, len(raw), input_tensor, checked, binary, predictor, limit)
    if planning.explain:
        check_explained_count(predictor, len(batch), settings)
    answers = await answer_request(request, predictor, pipeline.from_tensor(batch), planning)
    header, data = await in_worker(encode_answer, predictor, checked, requested, answers)
    if not data:
        return Response(header, media_type="application/json")
    return Response(
        header + data, media_type="application/octet-stream", headers={HEADER_LENGTH: str(len(header))}
    )
