"""One tiny training on FD001, then evaluation and export: the whole offline path."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from training.checkpoint import load_checkpoint
from training.data import load_subset
from training.evaluate import evaluate_checkpoint, torch_predict_fn
from training.export import PARITY_TOLERANCE_RUL, export, sha256_of
from training.model import ModelConfig
from training.preprocessing import fit_preprocessing
from training.train import TrainConfig, main, train
from training.windows import last_windows

TINY = ModelConfig(conv_channels=8, lstm_hidden=8, attention_dim=8, head_hidden=8)


@pytest.fixture(scope="module")
def trained(cmapss_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "tiny.pt"
    config = TrainConfig(subset="FD001", data_dir=str(cmapss_dir), out=str(out), epochs=2, seed=1)
    facts = train(config, TINY)
    return out, facts


@pytest.fixture(scope="module")
def exported(trained, cmapss_dir, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("models")
    card = export(str(trained[0]), "tiny", "0.0.1", str(out_dir), str(cmapss_dir))
    return out_dir, card


def test_checkpoint_describes_itself(trained):
    _, checkpoint = load_checkpoint(trained[0])
    assert checkpoint["train_config"]["subset"] == "FD001"
    assert checkpoint["window_length"] == 30
    assert checkpoint["model_config"]["lstm_hidden"] == 8
    assert checkpoint["interval"]["nominal_coverage"] == 0.9
    assert len(checkpoint["history"]) == 2
    assert len(checkpoint["split"]["validation_units"]) == 20
    assert checkpoint["metrics"]["validation"]["rmse_all_windows_capped"] > 0


def test_preprocessing_statistics_come_from_training_units_only(trained, cmapss_dir):
    _, checkpoint = load_checkpoint(trained[0])
    train_ids = set(checkpoint["split"]["train_units"])
    assert train_ids.isdisjoint(checkpoint["split"]["validation_units"])
    subset = load_subset("FD001", cmapss_dir)
    expected = fit_preprocessing([u for u in subset.train if u.unit_id in train_ids], 1)
    assert checkpoint["preprocessing"] == expected.to_dict()


def test_export_parity_torch_vs_onnxruntime_on_raw_windows(trained, exported, cmapss_dir):
    out_dir, card = exported
    assert card["parity"]["max_abs_diff_rul"] <= PARITY_TOLERANCE_RUL
    # and again here, independently of export's own check, at batch 1 and batch 100
    model, _ = load_checkpoint(trained[0])
    windows, _ = last_windows(load_subset("FD001", cmapss_dir).test, 30)
    session = ort.InferenceSession(str(out_dir / "tiny.onnx"), providers=["CPUExecutionProvider"])
    torch_rul, torch_probs = torch_predict_fn(model)(windows)
    onnx_rul, onnx_probs = session.run(["rul", "health_probs"], {"readings": windows})
    assert np.max(np.abs(onnx_rul - torch_rul)) <= 1e-3
    assert np.max(np.abs(onnx_probs - torch_probs)) <= 1e-4
    single_rul, _ = session.run(["rul", "health_probs"], {"readings": windows[:1]})
    assert abs(float(single_rul[0]) - float(torch_rul[0])) <= 1e-3


def test_export_writes_card_and_metadata_per_contract(exported):
    out_dir, card = exported
    on_disk = json.loads((out_dir / "tiny.json").read_text())
    assert on_disk == card
    assert card["sha256"] == sha256_of(out_dir / "tiny.onnx")
    assert card["window_length"] == 30 and len(card["input_features"]) == 24
    assert card["health_states"] == ["normal", "degrading", "critical"]
    assert card["health_thresholds"] == {"critical_max": 30, "degrading_max": 80}
    assert card["rul_cap"] == 125.0
    assert card["padding"]["rule"] == "edge"
    assert card["metrics"]["test"]["n_units"] == 100
    model = onnx.load(str(out_dir / "tiny.onnx"))
    metadata = {p.key: json.loads(p.value) for p in model.metadata_props}
    assert metadata == {k: v for k, v in card.items() if k != "sha256"}
    (inp,) = model.graph.input
    assert inp.name == "readings"
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [30, 24]
    assert [o.name for o in model.graph.output] == ["rul", "health_probs"]


def test_card_test_metrics_equal_torch_evaluation(trained, exported, cmapss_dir):
    _, card = exported
    metrics = evaluate_checkpoint(str(trained[0]), str(cmapss_dir))
    assert metrics["rmse"] == pytest.approx(card["metrics"]["test"]["rmse"], abs=1e-3)
    assert metrics["health_accuracy"] == card["metrics"]["test"]["health_accuracy"]


def test_rul_train_flags_override_every_config_field(cmapss_dir, tmp_path, capsys):
    out = tmp_path / "cli.pt"
    main(
        [
            "--subset",
            "fd001",
            "--data-dir",
            str(cmapss_dir),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--window-length",
            "20",
            "--conv_channels",
            "4",
            "--lstm-hidden",
            "4",
            "--attention-dim",
            "4",
            "--head-hidden",
            "4",
            "--seed",
            "7",
        ]
    )
    _, checkpoint = load_checkpoint(out)
    assert checkpoint["window_length"] == 20
    assert checkpoint["train_config"]["seed"] == 7
    assert checkpoint["model_config"]["lstm_hidden"] == 4
    assert json.loads(capsys.readouterr().out)["checkpoint"] == str(out)
