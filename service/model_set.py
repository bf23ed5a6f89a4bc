"""The set of models being served and how it changes: loaded at start, swapped atomically
on reload (POST /v1/models/reload or SIGHUP), drained at shutdown.

A reload loads every model anew off the event loop; only if all of them load is the new set
installed (one assignment on the event loop, so a request sees the old set or the new one,
never a mix), and the old batchers then finish what they had queued. A failed reload changes
nothing: the old models keep serving and the error is returned and logged.
"""

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI

from service.core.batcher import Batcher
from service.core.memory import release_on_shutdown, settle_heap
from service.core.predictor import Predictor
from service.core.providers import SessionConfig
from service.core.threads import in_worker
from service.state import STOPPED, ServedModels, service_state

logger = logging.getLogger("service.model_set")


def load_models(models_dir: Path, config: SessionConfig) -> tuple[dict[str, Predictor], dict[str, str]]:
    """Load and warm up every `<name>.onnx` in `models_dir`.

    Returns (models by name, load errors by name): one bad model never stops the others.
    """
    models: dict[str, Predictor] = {}
    errors: dict[str, str] = {}
    if not models_dir.is_dir():
        return models, {"*": f"models directory {models_dir.resolve()} does not exist (RUL_MODELS_DIR)"}
    for onnx_path in sorted(models_dir.glob("*.onnx")):
        name = onnx_path.stem
        try:
            predictor = Predictor.load(onnx_path, config)
            predictor.warm_up()
        except Exception as exc:  # any failure is reported for this model; the others still load
            logger.error("model %s not loaded: %s", name, exc)
            errors[name] = str(exc)
            continue
        models[name] = predictor
        logger.info("model %s %s loaded on %s", name, predictor.card.version, predictor.provider)
    if not models and not errors:
        errors["*"] = f"no <name>.onnx files in {models_dir.resolve()} (RUL_MODELS_DIR)"
    return models, errors


def _choose_default(configured: str, models: dict[str, Predictor]) -> str | None:
    if configured:  # RUL_DEFAULT_MODEL, case ignored like the model in a path
        return ServedModels(models, {}, None, {}).find(configured) or configured
    if "fd001" in models:
        return "fd001"
    return min(models) if models else None


async def install(app: FastAPI, models: dict[str, Predictor], errors: dict[str, str]) -> None:
    """Make `models` the served set, with fresh batchers; drain the previous batchers."""
    state = service_state(app)
    settings, metrics = state.settings, state.metrics
    batchers: dict[str, Batcher] = {}
    for name, predictor in models.items():
        predictor.on_run = metrics.observe_run
        if settings.batching:
            batchers[name] = Batcher(predictor, settings.max_batch_size, settings.max_queue_delay_ms,
                                     settings.max_queue_size, metrics.observe_queue,
                                     settings.piece_windows, state.requests.alone)  # fmt: skip
            batchers[name].start()
    previous = state.served.batchers
    # the swap: one assignment, so no request sees half of it
    state.served = ServedModels(models, errors, _choose_default(settings.default_model, models), batchers)
    metrics.set_models({name: (p.card.version, p.provider) for name, p in models.items()})
    logger.info("serving %s (default %s); not loaded: %s", sorted(models), state.served.default_model,
                errors or "none")  # fmt: skip
    await asyncio.gather(*(b.drain() for b in previous.values()))
    del previous
    settle_heap()


async def load_and_install(app: FastAPI) -> None:
    """Start-up: whatever loads is served; what fails is reported by /health/ready."""
    settings = service_state(app).settings
    models, errors = await in_worker(load_models, settings.models_dir, settings.session_config())
    if not models:  # not ready until a reload finds models: say why, loudly
        logger.error("NO MODEL IS SERVED, every request gets 503: %s",
                     "; ".join(f"{name}: {why}" for name, why in errors.items()))  # fmt: skip
    await install(app, models, errors)


@dataclass(frozen=True)
class ReloadResult:
    reloaded: bool
    detail: str  # one sentence: what was reloaded, or why nothing changed
    changes: dict[str, list[str]]  # added, replaced (another file), removed, unchanged: model names


async def reload_models(app: FastAPI, allow_removal: bool = False) -> ReloadResult:
    """Reload every model; install them only if all load and, unless `allow_removal`, no
    model being served would stop being served (its file gone): a reload never drops a model
    silently."""
    state = service_state(app)
    async with state.reload_lock:
        settings, before = state.settings, state.served.models
        models, errors = await in_worker(load_models, settings.models_dir, settings.session_config())
        serving = ", ".join(sorted(before)) or "none"
        changes = {
            "added": sorted(set(models) - set(before)),
            "replaced": sorted(
                n for n in set(models) & set(before) if models[n].card.sha256 != before[n].card.sha256
            ),
            "removed": sorted(set(before) - set(models)),
            "unchanged": sorted(
                n for n in set(models) & set(before) if models[n].card.sha256 == before[n].card.sha256
            ),
        }
        if errors or not models:
            reasons = "; ".join(f"{name}: {why}" for name, why in errors.items()) or "no models found"
            message = f"reload failed, still serving the previous models ({serving}): {reasons}"
            logger.error(message)
            return ReloadResult(False, message, changes)
        if changes["removed"] and not allow_removal:
            gone = ", ".join(changes["removed"])
            message = (f"reload would stop serving {gone} (no longer in {settings.models_dir}, "
                       f"RUL_MODELS_DIR); nothing changed, still serving {serving}: put the file back, "
                       "or reload with ?allow_removal=true to stop serving it")  # fmt: skip
            logger.error(message)
            return ReloadResult(False, message, changes)
        await install(app, models, {})
        loaded = ", ".join(f"{n} {p.card.version}" for n, p in sorted(models.items()))
        removed = f"; stopped serving {', '.join(changes['removed'])}" if changes["removed"] else ""
        return ReloadResult(True, f"reloaded {loaded}{removed}", changes)


async def shutdown(app: FastAPI) -> None:
    """Finish what is queued, then let the models go (memory.release_on_shutdown)."""
    state = service_state(app)
    await asyncio.gather(*(b.drain() for b in state.served.batchers.values()))
    state.served = STOPPED
    release_on_shutdown()
