"""The model listing, one model's card and the atomic reload (`/v1/models...`)."""

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request

from service.core.predictor import Predictor
from service.model_set import reload_models
from service.transport.dependencies import NamedPredictor, ServedDep, SettingsDep
from service.transport.fast_json import FastJSONRoute
from service.transport.schemas import ModelList, ModelSummary, card_summary

api = APIRouter(route_class=FastJSONRoute)


def _summary(predictor: Predictor) -> ModelSummary:
    return card_summary(predictor.card.model_dump(), predictor.provider)


@api.get("/v1/models", tags=["models"])
async def list_models(served: ServedDep, settings: SettingsDep) -> ModelList:
    """Every served model's card with the execution provider in use, models that failed, and
    the horizons and risk answered when a request does not ask."""
    return ModelList(
        default_model=served.default_model,
        models=[_summary(served.models[name]) for name in sorted(served.models)],
        unavailable=served.load_errors,
        default_horizons=settings.default_horizons,
        default_risk=settings.default_risk,
    )


@api.get("/v1/models/{model}", tags=["models"], responses={404: {"description": "unknown model"}})
async def get_model(predictor: NamedPredictor) -> ModelSummary:
    """One model's card with the execution provider in use."""
    return _summary(predictor)


@api.post(
    "/v1/models/reload",
    tags=["models"],
    responses={
        409: {
            "description": "a model failed to load, or a served model would be dropped without "
            "allow_removal; the previous models keep serving"
        },
    },  # fmt: skip
)
async def reload(
    request: Request,
    allow_removal: Annotated[
        bool,
        Query(description="stop serving models whose files are gone (otherwise such a reload is refused)"),
    ] = False,
) -> dict[str, Any]:
    """Reload every model from the models directory, atomically: all load and replace the
    served set, or nothing changes (also on SIGHUP, which never drops a model). The answer
    names what was added, replaced (another file), removed and unchanged. Needs a key when
    keys are set."""
    result = await reload_models(request.app, allow_removal)
    if not result.reloaded:
        raise HTTPException(409, result.detail)
    return {"status": "reloaded", "detail": result.detail, **result.changes}
