"""The dual-task network: one CNN -> BiLSTM -> attention backbone, a RUL regression head
and a 3-class health head."""

import torch
from torch import nn

from training.config import ModelConfig
from training.constants import HEALTH_STATES


class AttentionPool(nn.Module):
    """Additive attention over time: weights = softmax(v . tanh(W h_t)); returns sum_t w_t h_t."""

    def __init__(self, dim: int, attention_dim: int):
        super().__init__()
        self.score = nn.Sequential(
            nn.Linear(dim, attention_dim), nn.Tanh(), nn.Linear(attention_dim, 1, bias=False)
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.score(h), dim=1)  # (B, W, 1)
        return (weights * h).sum(dim=1)  # (B, D)


def _head(dim: int, hidden: int, out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, out))


class DualTaskModel(nn.Module):
    """Normalised features (B, W, F) -> (rul (B,) in cycles, health logits (B, 3))."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.conv = nn.Sequential(
            nn.Conv1d(
                config.n_features,
                config.conv_channels,
                config.conv_kernel,
                padding=config.conv_kernel // 2,
            ),
            nn.ReLU(),
        )
        self.lstm = nn.LSTM(
            config.conv_channels,
            config.lstm_hidden,
            num_layers=config.lstm_layers,
            batch_first=True,
            bidirectional=True,
        )
        backbone_dim = 2 * config.lstm_hidden
        self.attention = AttentionPool(backbone_dim, config.attention_dim)
        self.rul_head = _head(backbone_dim, config.head_hidden, 1, config.dropout)
        self.health_head = _head(backbone_dim, config.head_hidden, len(HEALTH_STATES), config.dropout)

    def shared_parameters(self) -> list[nn.Parameter]:
        """The backbone both tasks train: conv, BiLSTM, attention."""
        return [*self.conv.parameters(), *self.lstm.parameters(), *self.attention.parameters()]

    def head_parameters(self) -> list[nn.Parameter]:
        return [*self.rul_head.parameters(), *self.health_head.parameters()]

    def backbone(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x.transpose(1, 2)).transpose(1, 2)  # (B, W, F) -> (B, W, conv_channels)
        h, _ = self.lstm(h)  # (B, W, 2 * lstm_hidden)
        return self.attention(h)  # (B, 2 * lstm_hidden)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.backbone(x)
        rul = self.rul_head(z).squeeze(-1) * self.config.rul_scale  # (B,)
        return rul, self.health_head(z)  # (B,), (B, 3)
