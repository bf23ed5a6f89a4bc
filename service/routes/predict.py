"""v1 predict: `POST /v1/models/{model}/predict` and `POST /v1/predict` (the default model).

The window and cycle limits were checked on the decoded JSON (transport/request_limits.py);
each step below runs where service/core/threads.py says (on the loop for a few windows, in a
worker thread beyond), the model's run on its batcher's queue."""

import orjson
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from service.core import pipeline
from service.core.answers import Answers, json_array
from service.core.planning import PlanningError, asked
from service.core.predictor import Predictor
from service.core.threads import maybe_in_worker
from service.core.window_input import WindowError
from service.state import service_state
from service.transport.dependencies import (
    DefaultPredictor,
    NamedPredictor,
    answer_request,
    check_explained_count,
)
from service.transport.fast_json import FastJSONRoute
from service.transport.schemas import PredictRequest, PredictResponse

# The settings are read from the service state, not as a dependency: that dependency cost ~15 us
# of a ~430 us request path (one window, the model's run left out; bench/README.md, "Fourth look")
# /v1: needs a key when keys are set (checked before the body: key_gate.py); JSON bodies parsed with orjson
api = APIRouter(route_class=FastJSONRoute)


async def predict_windows(request: Request, predictor: Predictor, body: PredictRequest) -> Response:
    """prepare -> run -> explain -> answer (service/core/pipeline.py) -> JSON for a v1 body."""
    settings = service_state(request.app).settings
    windows = [(w.id, w.readings) for w in body.windows]
    cycles = [w.cycles for w in body.windows]
    n = len(windows)
    if body.explain:
        check_explained_count(predictor, n, settings)
    try:
        planning = asked(body.horizons, body.risk, settings.planning(), predictor.card.rul_cap, body.explain)
        prepared = await maybe_in_worker(n, pipeline.from_requests, predictor, windows, cycles)
    except (PlanningError, WindowError) as exc:
        raise HTTPException(422, str(exc)) from exc
    answers = await answer_request(request, predictor, prepared, planning)
    answer_json = await maybe_in_worker(n, _predict_body, predictor, prepared.ids, answers)
    await maybe_in_worker(n, answers.release)
    return Response(answer_json, media_type="application/json")


def _predict_body(predictor: Predictor, ids: list[str | int | None], answers: Answers) -> bytes:
    """The PredictResponse as JSON: the head, then each prediction its id and its answer
    (schemas.Prediction)."""

    def records(piece: slice) -> list[dict]:
        return [{"id": i, **a} for i, a in zip(ids[piece], answers.select(piece).records(), strict=True)]

    head = orjson.dumps(pipeline.head(predictor.card))
    return b"".join([head[:-1], b',"predictions":', *json_array(len(answers), records), b"}"])


@api.post(
    "/v1/models/{model}/predict",
    response_model=PredictResponse,
    tags=["predict"],
    responses={404: {"description": "unknown model"}, 422: {"description": "a window is invalid"}},
)
async def predict(
    request: Request,
    body: PredictRequest,
    predictor: NamedPredictor,
) -> Response:
    """RUL, interval, health state, failure probabilities within the horizons asked and the RUL
    at the risk asked, for each window, with the named model."""
    return await predict_windows(request, predictor, body)


@api.post(
    "/v1/predict",
    response_model=PredictResponse,
    tags=["predict"],
    responses={
        422: {"description": "a window is invalid"},
        503: {"description": "no default model"},
    },
)
async def predict_default(
    request: Request,
    body: PredictRequest,
    predictor: DefaultPredictor,
) -> Response:
    """As /v1/models/{model}/predict, with the default model (RUL_DEFAULT_MODEL)."""
    return await predict_windows(request, predictor, body)
