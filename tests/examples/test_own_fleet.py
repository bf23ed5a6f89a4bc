"""docs/own-fleet.md, run as written at a small size: an operator-like export of FD001 (serial
numbers, the operator's names, °C and kPa, 17 sensors, shuffled and extra columns) trains,
exports, is served, predicted by its own names and scored from its own CSV, and a dead sensor
is flagged under the operator's name."""

import csv
import importlib.util
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _make_export():
    spec = importlib.util.spec_from_file_location("make_export", ROOT / "examples/own_fleet/make_export.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def served(cmapss_dir, tmp_path_factory):
    """The example's commands: the export, rul-train, rul-export; then the service on the model."""
    from training.export import main as export_main
    from training.train import main as train_main

    work = tmp_path_factory.mktemp("own_fleet")
    _make_export().main(["--data-dir", str(cmapss_dir), "--out-dir", str(work / "fleet-a"), "--units", "12"])
    spec = str(work / "fleet-a" / "fleet.toml")
    train_main(["--dataset", spec, "--epochs", "2", "--seed", "0", "--train-stride", "3", "--threads", "1",
                "--out-dir", str(work / "runs")])  # fmt: skip
    checkpoint = work / "runs" / "fleet-a_seed0.pt"
    export_main(["--checkpoint", str(checkpoint), "--name", "fleet-a", "--dataset", spec,
                 "--out-dir", str(work / "models")])  # fmt: skip
    with TestClient(create_app(Settings(models_dir=work / "models", providers="cpu"))) as client:
        yield client, work


def _last_window(work: Path, esn: str, cycles: int = 40) -> list[dict[str, str]]:
    with open(work / "fleet-a" / "test.csv", newline="") as f:
        return [row for row in csv.DictReader(f) if row["esn"] == esn][-cycles:]


def test_the_card_carries_the_data_set_and_its_names(served):
    client, _ = served
    card = client.get("/v1/models/fleet-a").json()
    assert card["input_features"][:4] == ["alt_dev", "mach_dev", "tra", "T24_C"]
    assert len(card["input_features"]) == 3 + 17
    assert card["dataset"]["unit"] == "esn" and card["dataset"]["cycle"] == "flight"
    assert set(card["preprocessing"]["sensors_not_read"]) == {"P15_kPa", "epr", "farB"}  # s_6, s_10, s_16
    assert card["metrics"]["test"]["n_units"] == 12


def test_predicted_by_its_own_names_as_by_rows(served):
    client, work = served
    features = client.get("/v1/models/fleet-a").json()["input_features"]
    rows = _last_window(work, "ESN-100003")
    by_name = [{name: float(row[name]) for name in reversed(features)} for row in rows]
    by_row = [[float(row[name]) for name in features] for row in rows]
    answers = [
        client.post("/v1/models/fleet-a/predict", json={"windows": [{"id": "ESN-100003", "readings": r}]})
        for r in (by_name, by_row)
    ]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json()["predictions"] == answers[1].json()["predictions"]
    missing = [{k: v for k, v in cycle.items() if k != "T30_C"} for cycle in by_name]
    refused = client.post("/v1/models/fleet-a/predict", json={"windows": [{"readings": missing}]})
    assert refused.status_code == 422 and "missing T30_C" in refused.json()["detail"]


def test_scored_from_its_own_csv_with_serial_numbers_and_a_bad_unit_skipped(served):
    client, work = served
    text = (work / "fleet-a" / "test.csv").read_text()
    header, *lines = text.splitlines()
    t30 = header.split(",").index("T30_C")
    broken = [",".join("" if i == t30 else v for i, v in enumerate(line.split(","))) if n == 3 else line
              for n, line in enumerate(lines)]  # fmt: skip
    answer = client.post(
        "/v1/models/fleet-a/score", files={"file": ("fleet.csv", "\n".join([header, *broken]))}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["units"] == 11 and body["predictions"][0]["unit"] == "ESN-100002"
    assert body["skipped"] == [{"unit": "ESN-100001", "cycles": 31,
                                "reason": "unit ESN-100001: line 5, column T30_C is empty"}]  # fmt: skip


def test_a_dead_sensor_is_flagged_under_the_operators_name(served):
    client, work = served
    features = client.get("/v1/models/fleet-a").json()["input_features"]
    readings = [[float(row[name]) for name in features] for row in _last_window(work, "ESN-100005")]
    for cycle in readings:
        cycle[features.index("Ps30_kPa")] = 0.0
    answer = client.post("/v1/models/fleet-a/predict", json={"windows": [{"readings": readings}]})
    quality = answer.json()["predictions"][0]["quality"]
    assert quality["status"] != "ok"
    assert "Ps30_kPa" in [flag["column"] for flag in quality["flags"]]
    assert json.dumps(quality).count("s_11") == 0  # never C-MAPSS's name


def test_a_data_set_without_setting_columns_trains_exports_and_serves(cmapss_dir, tmp_path):
    """settings = [] (one regime, no setting columns): one operating condition, no unknown_condition
    check, and a graph with no zero-size tensors (ONNX Runtime cannot broadcast them)."""
    from training.export import main as export_main
    from training.train import main as train_main

    _make_export().main(["--data-dir", str(cmapss_dir), "--out-dir", str(tmp_path / "fleet"), "--units", "8"])
    spec = tmp_path / "fleet" / "fleet.toml"
    spec.write_text(spec.read_text().replace('settings = ["alt_dev", "mach_dev", "tra"]', "settings = []"))
    train_main(["--dataset", str(spec), "--epochs", "1", "--train-stride", "5", "--threads", "1",
                "--val-fraction", "0.25", "--out-dir", str(tmp_path / "runs")])  # fmt: skip
    export_main(["--checkpoint", str(tmp_path / "runs" / "fleet-a_seed0.pt"), "--name", "fleet-a",
                 "--dataset", str(spec), "--out-dir", str(tmp_path / "models")])  # fmt: skip
    with TestClient(create_app(Settings(models_dir=tmp_path / "models", providers="cpu"))) as client:
        card = client.get("/v1/models/fleet-a").json()
        assert card["input_features"][0] == "T24_C" and len(card["input_features"]) == 17
        answer = client.post(
            "/v1/models/fleet-a/score",
            files={"file": ("t.csv", (tmp_path / "fleet" / "test.csv").read_bytes())},
        )
        assert answer.status_code == 200 and answer.json()["units"] == 8
