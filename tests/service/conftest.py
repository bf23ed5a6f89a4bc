"""Service fixtures: the app on the shipped models, and copies of a model dir to break."""

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from tests.conftest import MODELS_DIR


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
