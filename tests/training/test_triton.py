import json

import pytest

from tests.conftest import MODELS_DIR
from training.export import main, sha256_of
from training.triton import config_pbtxt

CARD = json.loads((MODELS_DIR / "fd001.json").read_text())


def test_config_pbtxt_declares_the_cards_shapes_and_dynamic_batching():
    text = config_pbtxt(CARD)
    assert text.startswith('name: "fd001"\nbackend: "onnxruntime"\nmax_batch_size: 1024\n')
    assert f'name: "readings"\n    data_type: TYPE_FP32\n    dims: [ {CARD["window_length"]}, 24 ]' in text
    assert 'name: "rul"\n    data_type: TYPE_FP32\n    dims: [ 1 ]\n    reshape: { shape: [ ] }' in text
    assert 'name: "health_probs"\n    data_type: TYPE_FP32\n    dims: [ 3 ]\n  }' in text
    assert text.count("reshape") == 5  # rul, rul_lower, rul_upper, ood_score, window_flags
    assert 'name: "quality_flags"\n    data_type: TYPE_INT32\n    dims: [ 50, 24 ]\n  }' in text
    window_flags = (
        'name: "window_flags"\n    data_type: TYPE_INT32\n    dims: [ 1 ]\n    reshape: { shape: [ ] }'  # noqa: E501
    )
    assert window_flags in text
    assert 'name: "rul_quantiles"\n    data_type: TYPE_FP32\n    dims: [ 20 ]\n  }' in text
    assert "dynamic_batching {\n  max_queue_delay_microseconds: 2000\n}" in text


def test_rul_export_packages_the_shipped_model_for_triton(tmp_path, capsys):
    main(["--name", "fd001", "--out-dir", str(MODELS_DIR), "--triton-repo", str(tmp_path)])
    model_dir = tmp_path / "fd001"
    assert sha256_of(model_dir / "1" / "model.onnx") == CARD["sha256"]
    assert (model_dir / "config.pbtxt").read_text() == config_pbtxt(CARD)
    assert json.loads((model_dir / "card.json").read_text()) == CARD


def test_rul_export_without_checkpoint_or_triton_repo_is_an_error(capsys):
    with pytest.raises(SystemExit):
        main(["--name", "fd001"])
    assert "give --checkpoint to export, or --triton-repo" in capsys.readouterr().err
