"""Shared fixtures: where the C-MAPSS data is (CMAPSS_DIR, as in CI) and the shipped models."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = ROOT / "models"
SHIPPED = sorted(p.stem for p in MODELS_DIR.glob("*.onnx"))  # fd001 ... fd004


@pytest.fixture(scope="session")
def cmapss_dir() -> Path:
    path = Path(os.environ.get("CMAPSS_DIR", ROOT.parent / "shared" / "data" / "cmapss"))
    if not (path / "train_FD001.txt.gz").exists() and not (path / "train_FD001.txt").exists():
        pytest.fail(f"C-MAPSS data not found in {path}; set CMAPSS_DIR=../shared/data/cmapss")
    return path
