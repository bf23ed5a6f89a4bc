"""Service fixtures: the app on the shipped models, and copies of a model dir to break."""

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient

from service.app import create_app
from service.core import pipeline
from service.core.answers import UnitAnswers
from service.core.predictor import Predictor
from service.main import server_config
from service.settings import Settings
from service.transport.schemas import Prediction, UnitScore
from tests.conftest import MODELS_DIR


def predict(predictor: Predictor, windows: list) -> list[Prediction]:
    """The JSON predict path without HTTP: prepare, run, answer; each answer as the API's schema."""
    prepared = pipeline.from_requests(predictor, windows)
    records = pipeline.answer_now(predictor, prepared).records()
    return [Prediction.model_validate({"id": i, **r}) for i, r in zip(prepared.ids, records, strict=True)]


def unit_scores(scores: UnitAnswers) -> list[UnitScore]:
    """Scored units as the API's schema."""
    return [UnitScore.model_validate(r) for r in scores.records()]


def make_client(models_dir: Path, providers: str = "cpu") -> TestClient:
    return TestClient(create_app(Settings(models_dir=models_dir, providers=providers)))


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with make_client(MODELS_DIR) as c:  # the context runs the lifespan: models load here
        yield c


@pytest.fixture
def models_copy(tmp_path: Path) -> Path:
    """A private copy of models/fd001.{onnx,json} that a test may damage."""
    for suffix in (".onnx", ".json"):
        shutil.copy(MODELS_DIR / f"fd001{suffix}", tmp_path / f"fd001{suffix}")
    return tmp_path


@contextmanager
def live_server(settings: Settings) -> Iterator[str]:
    """A real uvicorn server on a free loopback port, in a thread; yields 'http://127.0.0.1:PORT'."""
    with live_uvicorn(settings) as (url, _):
        yield url


@contextmanager
def live_uvicorn(settings: Settings) -> Iterator[tuple[str, uvicorn.Server]]:
    """As live_server, also yielding the uvicorn.Server (its connections, for tests that look
    at what the server holds)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(server_config(settings.model_copy(update={"port": port}), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start in 30 s"
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        thread.join(timeout=10)
