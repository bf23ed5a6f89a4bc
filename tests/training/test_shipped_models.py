"""Every shipped model: its checkpoints (and saved order check) re-exported in memory agree
with the shipped ONNX file, on clean and faulty windows (checks and masking included), and the shipped file
reproduces the test metrics its card states."""

import json

import numpy as np
import onnxruntime as ort
import pytest

from tests.conftest import MODELS_DIR, ROOT
from training.checkpoint import OUTPUT_NAMES
from training.ensemble import build_graph
from training.evaluate import evaluate_last_windows, torch_predict_fn
from training.export import sha256_of
from training.order_check import read_fit
from training.parity import PARITY_TOLERANCE_OOD, faulty_copies, max_abs_diff, onnx_predict_fn
from training.windows import last_windows

CARDS = sorted(MODELS_DIR.glob("*.json"))


def test_there_are_shipped_models():
    assert {"cmapss", "fd001", "fd002", "fd003", "fd004"} <= {c.stem for c in CARDS}


@pytest.mark.parametrize("card_path", CARDS, ids=lambda p: p.stem)
def test_shipped_model_matches_its_checkpoints_and_card(card_path, cmapss_dir):
    card = json.loads(card_path.read_text())
    onnx_path = card_path.with_suffix(".onnx")
    assert sha256_of(onnx_path) == card["sha256"]
    checkpoints = [str(ROOT / p) for p in card["training"]["checkpoints"]]
    # the order check the model was shipped with: trained again on another CPU it has other weights
    order_fit = read_fit(ROOT / card["training"]["order_check"])
    stitch_fit = read_fit(ROOT / card["training"]["stitch_check"])
    graph, _, subset = build_graph(checkpoints, str(cmapss_dir), order_fit, stitch_fit=stitch_fit)
    # a data set without test files (the mixed fleet): its training units' last windows
    windows, _ = last_windows(subset.test or subset.train, card["window_length"])
    windows = np.concatenate([windows, faulty_copies(windows, card["quality"]["column_index"])])
    expected = torch_predict_fn(graph)(windows)
    got = onnx_predict_fn(onnx_path)(windows)
    for name in OUTPUT_NAMES:
        if name == "ood_score":  # relative: a learned order score above its threshold enters as exp(margin)
            np.testing.assert_allclose(got[name], expected[name], rtol=PARITY_TOLERANCE_OOD, atol=1e-3)
            continue
        exact = name in ("quality_flags", "window_flags")
        tolerance = 1e-4 if name == "health_probs" else 0 if exact else 1e-3
        assert max_abs_diff(got[name], expected[name]) <= tolerance, name  # open upper bounds: inf in both
    if subset.test:  # the test figures the card states
        metrics = evaluate_last_windows(onnx_predict_fn(onnx_path), subset.test, card["window_length"],
                                        card["health_thresholds"])  # fmt: skip
        for key in ("rmse", "phm08_score", "health_accuracy", "interval_coverage"):
            assert metrics[key] == pytest.approx(card["metrics"]["test"][key], rel=1e-6, abs=1e-4), key
    else:
        assert card["metrics"]["test"] == {"protocol": card["metrics"]["test"]["protocol"]}
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == list(OUTPUT_NAMES)
