"""The self-describing checkpoint and the raw-readings model it rebuilds.

`ServingGraph` is exactly what gets exported: raw readings (B, W, 24) in, short histories
padded with leading rows of NaN (training/padding.py); RUL in cycles (clamped at 0), health
probabilities, the interval bounds, the input-quality outputs and the predictive distribution
out. Evaluation uses the same module, so the numbers in a model card are those of the graph
that ships. `MembersMean` is its networks alone (nothing checked, masked or calibrated): what
the calibration and the "before masking" figures read.
"""

from pathlib import Path
from typing import Any

import torch
from torch import nn

from service.core.model_card import GRAPH_OUTPUTS
from training.config import ModelConfig
from training.distribution import QuantileHead
from training.input_checks import QualityCheck
from training.intervals import IntervalHead
from training.model import DualTaskModel
from training.padding import fill_padding, real_rows
from training.preprocessing import PreprocessingStats, Preprocessor

CHECKPOINT_FORMAT = "rul-checkpoint/2"
# The graph's outputs in order (RawReadingsModel and MembersMean give the first two).
OUTPUT_NAMES = GRAPH_OUTPUTS


class RawReadingsModel(nn.Module):
    """One trained network with its preprocessing:
    (B, W, 24) raw readings -> rul (B,) >= 0 cycles, health_probs (B, 3)."""

    def __init__(self, preprocessor: Preprocessor, model: DualTaskModel):
        super().__init__()
        self.preprocessor = preprocessor
        self.model = model

    def forward(
        self, readings: torch.Tensor, column_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """column_mask (B, 24) bool: raw columns flagged as faulty; the network's features
        among them are replaced by their estimate from the others (Preprocessor). Leading NaN
        rows are padding (filled with the first real cycle)."""
        readings = fill_padding(readings, real_rows(readings))
        mask = None if column_mask is None else column_mask.index_select(-1, self.preprocessor.feature_index)
        rul, health_logits = self.model(self.preprocessor(readings, mask))
        return torch.clamp(rul, min=0.0), torch.softmax(health_logits, dim=-1)


class MembersMean(nn.Module):
    """The mean of the members' RUL and health probabilities, nothing checked or masked:
    (B, W, 24) -> rul (B,), health_probs (B, 3)."""

    def __init__(self, members: list[RawReadingsModel]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, readings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = [member(readings) for member in self.members]
        return torch.stack([o[0] for o in outputs]).mean(0), torch.stack([o[1] for o in outputs]).mean(0)


class ServingGraph(nn.Module):
    """What gets exported: the input checks, the mean of one or more members' RUL and health
    probabilities (sensor columns the checks flag are masked in every member), and the
    calibrated interval and predictive distribution on that mean, for the window's history
    length. (B, W, 24), leading NaN rows padding -> rul, health_probs, rul_lower, rul_upper,
    quality_flags (B, W, 24) int32, ood_score (B,), window_flags (B,) int32, rul_quantiles
    (B, levels): every output the service needs (it refuses a model without one)."""

    def __init__(
        self,
        members: list[RawReadingsModel],
        interval: IntervalHead,
        quality: QualityCheck,
        distribution: QuantileHead,
    ):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.interval = interval
        self.quality = quality
        self.distribution = distribution

    def forward(self, readings: torch.Tensor) -> tuple[torch.Tensor, ...]:
        real = real_rows(readings)  # (B, W)
        readings = fill_padding(readings, real)
        n_real = real.float().sum(dim=1)  # (B,)
        # a window whose order is in doubt is read in order of wear (training/wear_order.py)
        flags, column_mask, ood_score, window_flags, readings = self.quality(readings, real)
        outputs = [member(readings, column_mask) for member in self.members]
        rul = torch.stack([o[0] for o in outputs]).mean(0)  # (B,)
        probs = torch.stack([o[1] for o in outputs]).mean(0)  # (B, 3)
        return (rul, probs, *self.interval(rul, n_real), flags, ood_score, window_flags,
                self.distribution(rul, n_real))  # fmt: skip


def save_checkpoint(path: str | Path, model: DualTaskModel, facts: dict[str, Any]) -> None:
    """`facts` must hold 'preprocessing' (PreprocessingStats as a dict) and 'interval' (the
    band edges and coverage rul-export calibrates), and describe the run: train_config,
    window_length, metrics..."""
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
