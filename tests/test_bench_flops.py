"""bench/model_compute.py counts the model's FLOPs by hand; check the count on a tiny model."""

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.model_compute import flops_per_window
from training.config import ModelConfig
from training.model import DualTaskModel


def test_flops_per_window_by_hand():
    config = ModelConfig(n_features=2, conv_channels=3, conv_kernel=3, lstm_hidden=4, attention_dim=5,
                         head_hidden=6)  # fmt: skip
    w = 7
    conv = w * 2 * 3 * 3
    lstm = 2 * w * 4 * 4 * (3 + 4)  # 2 directions, 4 gates, input (3) + recurrent (4)
    attention = w * (8 * 5 + 5)
    heads = 2 * 8 * 6 + 6 * (1 + 3)
    assert flops_per_window(config, w) == 2 * (conv + lstm + attention + heads)


def test_everything_but_the_lstm_agrees_with_torchs_flop_counter():
    """torch's counter skips the LSTM; the rest of our count must match what it sees."""
    config = ModelConfig(n_features=14, conv_channels=32, conv_kernel=5, lstm_hidden=64)
    model = DualTaskModel(config).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 50, 14))
    lstm = 2 * 2 * 50 * 4 * 64 * (32 + 64)
    assert counter.get_total_flops() == flops_per_window(config, 50) - lstm
