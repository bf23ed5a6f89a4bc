"""The self-describing checkpoint and the raw-readings model it rebuilds.

`RawReadingsModel` is exactly what gets exported: raw readings (B, W, 24) in, RUL in cycles
(clamped at 0) and health probabilities out. Evaluation uses the same module, so the numbers
in a model card are those of the graph that ships.
"""

from pathlib import Path
from typing import Any

import torch
from torch import nn

from training.model import DualTaskModel, ModelConfig
from training.preprocessing import PreprocessingStats, Preprocessor

CHECKPOINT_FORMAT = "rul-checkpoint/1"


class RawReadingsModel(nn.Module):
    """(B, W, 24) raw readings -> (rul (B,) >= 0 cycles, health_probs (B, 3))."""

    def __init__(self, preprocessor: Preprocessor, model: DualTaskModel):
        super().__init__()
        self.preprocessor = preprocessor
        self.model = model

    def forward(self, readings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rul, health_logits = self.model(self.preprocessor(readings))
        return torch.clamp(rul, min=0.0), torch.softmax(health_logits, dim=-1)


def save_checkpoint(path: str | Path, model: DualTaskModel, facts: dict[str, Any]) -> None:
    """`facts` must hold 'preprocessing' (PreprocessingStats as a dict) and describe the run:
    train_config, window_length, metrics, interval, ..."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model_config": vars(model.config).copy(),
        "state_dict": model.state_dict(),
        **facts,
    }
    torch.save(payload, path)


def load_checkpoint(path: str | Path) -> tuple[RawReadingsModel, dict[str, Any]]:
    """Rebuild the raw-readings model (in eval mode) and return it with the checkpoint dict."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{path} is not a {CHECKPOINT_FORMAT} checkpoint (format {checkpoint.get('format')!r})"
        )
    model = DualTaskModel(ModelConfig(**checkpoint["model_config"]))
    model.load_state_dict(checkpoint["state_dict"])
    stats = PreprocessingStats(**checkpoint["preprocessing"])
    return RawReadingsModel(Preprocessor(stats), model).eval(), checkpoint
