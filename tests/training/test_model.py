import torch

from training.checkpoint import RawReadingsModel
from training.config import ModelConfig
from training.data import Unit
from training.model import DualTaskModel
from training.preprocessing import Preprocessor, fit_preprocessing


def test_dual_task_model_output_shapes():
    model = DualTaskModel(
        ModelConfig(n_features=14, conv_channels=8, lstm_hidden=8, attention_dim=8, head_hidden=8)
    )
    rul, logits = model(torch.zeros(5, 30, 14))
    assert rul.shape == (5,) and logits.shape == (5, 3)


def test_raw_readings_model_clamps_rul_and_returns_probabilities():
    torch.manual_seed(0)
    units = [Unit(1, torch.randn(40, 24).numpy(), 0.0)]
    stats = fit_preprocessing(units, 1)
    model = DualTaskModel(ModelConfig(conv_channels=8, lstm_hidden=8, attention_dim=8, head_hidden=8))
    with torch.no_grad():
        model.rul_head[-1].bias.fill_(-10.0)  # force negative raw RUL
        rul, probs = RawReadingsModel(Preprocessor(stats), model).eval()(torch.randn(4, 30, 24))
    assert rul.shape == (4,) and torch.all(rul == 0.0)
    assert probs.shape == (4, 3)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(4))
