"""POST /v1/models/{model}/score: a fleet file in, one answer per unit (and, with all_cycles,
every unit's trajectory) out, as JSON or CSV. The upload is read and scored in worker threads,
within the upload limits and RUL_MAX_CONCURRENT_SCORES slots, and the scoring stops when the
client goes away; service.core.scoring does the work."""

import asyncio
import csv
import gc
import io
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Annotated, TypeVar

import numpy as np
import orjson
from fastapi import APIRouter, File, HTTPException, Query, Request, UploadFile
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask

from service.core import pipeline
from service.core.answers import UnitAnswers, UnitId, column_names
from service.core.fleet_file import CHUNK_LINES, Fleet, read_fleet
from service.core.fleet_layout import FleetFileError, FleetLayout, FleetTooLarge, UploadLimits
from service.core.memory import trim_c_heap
from service.core.planning import Planning, PlanningError, asked
from service.core.predictor import Predictor
from service.core.scoring import (
    FleetScore,
    ScoringCancelled,
    csv_rows,
    score_fleet,
    trajectory_piece,
    trajectory_pieces,
)
from service.core.threads import in_worker
from service.settings import Settings
from service.state import ServiceState, service_state
from service.transport.dependencies import NamedPredictor, check_explained_count, until_gone

logger = logging.getLogger("service.routes.score")
T = TypeVar("T")
score_api = APIRouter()


@score_api.post(
    "/v1/models/{model}/score",
    tags=["score"],
    responses={
        200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with Accept: text/csv"},
        404: {"description": "unknown model"},
        413: {"description": "the file passes an upload limit; detail names it and its setting"},
        422: {"description": "the file cannot be read as a fleet; detail names the line and problem"},
        503: {"description": "RUL_MAX_CONCURRENT_SCORES jobs are running; retry after Retry-After seconds"},
    },
)
async def score(
    request: Request,
    predictor: NamedPredictor,
    file: Annotated[
        UploadFile,
        File(
            description="CSV (or gzipped CSV) with a header naming the model's unit and cycle columns "
            "and its input_features (any order; other columns ignored); for a model trained on C-MAPSS "
            "also its 26-column text (.txt or .gz)"
        ),
    ],
    all_cycles: Annotated[bool, Query(description="also return every unit's RUL at every cycle")] = False,
    horizons: Annotated[
        list[int] | None,
        Query(
            description="horizons in cycles for failure_probabilities, repeated: "
            "?horizons=10&horizons=40 (default RUL_DEFAULT_HORIZONS)"
        ),  # fmt: skip
    ] = None,
    risk: Annotated[
        float | None, Query(description="the risk for rul_at_risk, in (0, 0.5] (default RUL_DEFAULT_RISK)")
    ] = None,
    explain: Annotated[
        bool,
        Query(
            description="also say which sensors drive each unit's RUL (drivers; CSV: driver_1 ... driver_5 "
            "with their _effect and _reads); not with all_cycles"
        ),  # fmt: skip
    ] = False,
) -> Response:
    """Score a fleet file: one prediction per unit at its last cycle (and, with
    `all_cycles=true`, each unit's RUL trajectory), each with its quality. Units shorter than
    the model's minimum (and, with RUL_REJECT_OUT_OF_DISTRIBUTION, out-of-distribution units)
    are listed under `skipped`."""
    state = service_state(request.app)
    settings = state.settings
    reject = settings.reject_out_of_distribution
    as_csv = "text/csv" in request.headers.get("accept", "")
    try:
        planning = asked(horizons, risk, settings.planning(), predictor.card.rul_cap, explain)
    except PlanningError as exc:
        raise HTTPException(422, str(exc)) from exc
    _check_explain(explain, all_cycles, None, predictor, settings)
    async with AsyncExitStack() as slot:
        await slot.enter_async_context(scoring_slot(state))
        fleet = await _checked_upload(file, settings, predictor, all_cycles)
        _check_explain(explain, all_cycles, len(fleet), predictor, settings)
        # every unit's last cycle first (one window each); with all_cycles the trajectories follow
        result = await _while_connected(
            request, lambda cancelled: score_fleet(predictor, fleet, False, None, reject, cancelled, planning)
        )
        await in_worker(
            state.metrics.observe_quality, predictor.card.name, result.predictions.answers.quality
        )
        if all_cycles:  # streamed unit by unit; the stream holds the slot until its last byte
            stream = _trajectory_stream(slot.pop_all(), predictor, fleet, result, as_csv)
            return StreamingResponse(stream, media_type="text/csv" if as_csv else "application/json")
        body, media_type = await _encoded(predictor, result, as_csv)
    # once the answer is sent, the fleet and its answers are freed: their pages go back to the system
    return Response(body, media_type=media_type, background=BackgroundTask(trim_c_heap))


def _check_explain(
    explain: bool, all_cycles: bool, units: int | None, predictor: Predictor, settings: Settings
) -> None:
    """explain is for each unit's latest window (422 with all_cycles), and its runs, K + 1 per
    unit, are bounded as a predict's windows are (413); `units`: None before the file is read."""
    if not explain or predictor.card.quality is None:
        return
    if all_cycles:
        raise HTTPException(
            422,
            "explain answers each unit's latest window; with all_cycles it would run the model once "
            "more per read sensor at every cycle: ask one or the other",
        )
    if units is not None:
        check_explained_count(predictor, units, settings, "units")


async def _checked_upload(
    file: UploadFile, settings: Settings, predictor: Predictor, all_cycles: bool
) -> Fleet:
    """The upload read and, with all_cycles, its trajectory points bounded; a file refused after
    it was read gives its rows' pages back at once (_release_refused_upload)."""
    try:
        fleet = await _read_upload(file, settings, predictor)
        if all_cycles:
            _check_trajectory_points(fleet, predictor, settings)
    except HTTPException:
        await in_worker(_release_refused_upload)
        raise
    return fleet


async def _encoded(predictor: Predictor, result: FleetScore, as_csv: bool) -> tuple[str | bytes, str]:
    """The last-cycle answer as CSV or JSON (in a worker thread), with its media type."""
    if as_csv:
        return await in_worker(_csv_text, result.predictions, True, True), "text/csv"
    return await in_worker(_score_body, predictor, result), "application/json"


def _csv_text(scores: UnitAnswers, header: bool, release: bool = False) -> str:
    text = io.StringIO()
    csv.writer(text).writerows(csv_rows(scores, header))
    if release:  # the whole answer: its qualities freed here, in pieces (Answers.release)
        scores.answers.release()
    return text.getvalue()


def _score_body(predictor: Predictor, result: FleetScore) -> bytes:
    """The score answer as JSON: model, version, units, predictions (schemas.UnitScore) and
    skipped; then the predictions' qualities are freed here, in pieces (Answers.release)."""
    body = result.json(pipeline.head(predictor.card))
    result.predictions.answers.release()
    return body


async def _trajectory_stream(
    slot: AsyncExitStack, predictor: Predictor, fleet: dict, result: FleetScore, as_csv: bool
) -> AsyncIterator[bytes]:
    """all_cycles: the answer as it is made, so that a client sees it grow (an FD001 test file:
    13-14 s of model time on 2 cores, docs/api.md) and memory holds one piece of one unit's
    trajectory at a time (core/scoring.py: trajectory_pieces). JSON: model,
    version, units, predictions and skipped first, then `trajectories` one unit after the other;
    CSV: the header, then each unit's rows. Each unit is scored in a worker thread; a client
    that goes away ends the stream, and the scoring slot is given back."""
    started, units = time.perf_counter(), result.predictions.units.tolist()
    async with slot:  # the scoring slot, handed over by the route: given back however this ends
        try:
            if as_csv:
                answers = result.predictions.answers
                names = column_names(answers.health_states, answers.planning)
                yield (",".join(names) + "\r\n").encode()
            else:
                head = result.json(pipeline.head(predictor.card))
                yield head[:-1] + b',"trajectories":['
            planning = result.predictions.answers.planning
            for i, unit in enumerate(units):
                cycles, readings = fleet[unit]
                opening = (
                    b""
                    if as_csv
                    else (b"," if i else b"") + orjson.dumps({"unit": unit})[:-1] + b',"points":['
                )
                pieces = trajectory_pieces(predictor, readings)
                # a piece at a time, each in a worker thread: a client that leaves stops the
                # stream at the next piece, and a long unit never sits whole in memory
                for j, piece in enumerate(pieces):
                    part = await in_worker(_trajectory_part, predictor, unit, cycles, readings, piece,
                                           planning, as_csv, j == 0)  # fmt: skip
                    closing = b"]}" if j == len(pieces) - 1 and not as_csv else b""
                    yield (opening if j == 0 else b"") + part + closing
            if not as_csv:
                yield b"]}"
            logger.info("scored %d trajectories of %s in %.1f s", len(units), predictor.card.name,
                        time.perf_counter() - started)  # fmt: skip
        finally:
            await in_worker(trim_c_heap)


def _trajectory_part(
    predictor: Predictor,
    unit: UnitId,
    cycles: np.ndarray,
    readings: np.ndarray,
    piece: slice,
    planning: Planning,
    as_csv: bool,
    first: bool,
) -> bytes:
    """One piece of a unit's trajectory as CSV rows or as the JSON points it adds."""
    points = trajectory_piece(predictor, unit, cycles, readings, piece, planning)
    if as_csv:
        return _csv_text(points, False).encode()
    return (b"" if first else b",") + orjson.dumps(points.records())[1:-1]


@asynccontextmanager
async def scoring_slot(state: ServiceState) -> AsyncIterator[None]:
    """One of RUL_MAX_CONCURRENT_SCORES slots, given back when the block ends however it ends,
    or a 503 at once when all are taken: refused rather than queued, since nobody may still
    wait for queued work."""
    if state.scoring.locked():
        busy = f"{state.settings.max_concurrent_scores} scoring jobs are running"
        limit = "the limit (RUL_MAX_CONCURRENT_SCORES); retry shortly"
        raise HTTPException(503, f"{busy}, {limit}", headers={"Retry-After": "5"})
    async with state.scoring:
        yield


async def _while_connected(request: Request, work: Callable[[Callable[[], bool]], T]) -> T:
    """`work(cancelled)` in a worker thread; `cancelled()` turns true once the client has
    disconnected (asked every quarter of a second), and work that stops for it (ScoringCancelled)
    ends the request with 499."""
    gone = threading.Event()
    watcher = asyncio.create_task(until_gone(request, gone.set, gone.is_set))
    try:
        return await in_worker(work, gone.is_set)
    except ScoringCancelled as exc:
        logger.info("%s", exc)
        raise HTTPException(499, str(exc)) from exc  # nobody reads it: the client has gone
    finally:
        gone.set()
        watcher.cancel()


async def _read_upload(file: UploadFile, settings: Settings, predictor: Predictor) -> Fleet:
    """The uploaded fleet in the model's columns, read in a worker thread within the upload
    limits (413 past one, 422 for a file that is not a fleet)."""
    limits = UploadLimits(
        settings.max_upload_rows,
        settings.max_upload_decompressed_bytes,
        settings.max_decompression_ratio,
        max_units=settings.max_upload_units,
    )
    try:
        return await in_worker(read_fleet, file.file, CHUNK_LINES, limits, FleetLayout.of(predictor.card))
    except FleetTooLarge as exc:
        raise HTTPException(413, f"{file.filename or 'upload'}: {exc}") from exc
    except FleetFileError as exc:
        raise HTTPException(422, f"{file.filename or 'upload'}: {exc}") from exc


def _release_refused_upload() -> None:
    """After a refused upload: collect what its rows left (the exception's frames held them)
    and give the C heap's free pages back (a 1 M-cycle unit refused for its trajectory points
    left the process 1.5x its idle size)."""
    gc.collect()
    trim_c_heap()


def _check_trajectory_points(fleet: dict, predictor: Predictor, settings: Settings) -> None:
    """all_cycles: a prediction per cycle from the model's minimum on; bounded before any is made."""
    min_cycles = predictor.card.padding.min_cycles
    points = sum(max(len(readings) - min_cycles + 1, 0) for _, readings in fleet.values())
    if points > settings.max_trajectory_points:
        raise HTTPException(413, f"all_cycles=true would make {points} predictions; the limit is "
                            f"{settings.max_trajectory_points} (RUL_MAX_TRAJECTORY_POINTS): score without "
                            "all_cycles, or split the fleet")  # fmt: skip
