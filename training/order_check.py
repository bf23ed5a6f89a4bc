"""The learned order check: a small network, inside the exported graph, that tells a window whose
cycles follow each other as an engine's do from one whose cycles were sent out of order.

Why a network: the hand-made window checks (training/input_checks.py) see the order only through one
linear health index, whose cycle-to-cycle noise hides the wear trend of a 40-50 cycle window
until an engine is close to failure; a shuffled window of a worn engine passes them, and the
RUL networks, which read the trend across all the sensors, answer it as a healthier engine
(docs/results/faults.md, "Why the order checks miss"). This detector reads the same sensor
z-scores as the checks (flagged columns imputed) and is trained, on the training units of the
quality split, to tell every full window in order from copies of it reordered the ways a client
can get a window wrong (ORDER_FAULTS: shuffled, newest first, part of the window shuffled or
reversed, the window rotated so that its newest cycles come first). Its threshold is the
largest score of the validation units' windows in order, so no validation window is flagged;
it judges full windows only (a short history is `short_history` already, and its leading rows
are padding).

The graph stays free of shape computations (quality.py): the position of each cycle enters as
a learned bias per channel and cycle, added after the first convolution, not as a channel
concatenated to the input.
"""

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

HIDDEN = 32  # channels of each convolution
KERNEL = 5  # cycles each convolution sees
Z_LIMIT = 10.0  # z-scores are clipped to +-Z_LIMIT (a faulty reading is the other checks' job)
# Passes over the training windows, ORDER_BATCH in order and as many reordered per step. Short
# on purpose: measured on fd003 and fd004 (scratch runs, docs/results/faults.md), 8 passes keep
# the clean windows' scores tight; 25 passes of a wider network spread them (the network learns
# the training units' windows), which loosens the threshold and halves what it detects.
EPOCHS = 8
ORDER_BATCH = 256
LEARNING_RATE = 2e-3
ORDER_FAULTS = ("shuffled", "newest first", "part shuffled", "part reversed", "rotated")


class OrderDetector(nn.Module):
    """z (B, W, C) sensor z-scores -> (B,) score (a logit): high means out of order."""

    def __init__(self, n_columns: int, window_length: int, hidden: int = HIDDEN):
        super().__init__()
        pad = KERNEL // 2
        self.first = nn.Conv1d(n_columns, hidden, KERNEL, padding=pad)
        self.position = nn.Parameter(torch.zeros(hidden, window_length))  # (H, W)
        self.rest = nn.Sequential(
            nn.ReLU(),
            nn.Conv1d(hidden, hidden, KERNEL, padding=pad),
            nn.ReLU(),
            nn.Conv1d(hidden, hidden, KERNEL, padding=pad),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z.clamp(-Z_LIMIT, Z_LIMIT).transpose(1, 2)  # (B, C, W)
        features = self.rest(self.first(x) + self.position)  # (B, H, W)
        pooled = torch.cat([features.mean(dim=-1), features.amax(dim=-1)], dim=-1)  # (B, 2H)
        return self.head(pooled).squeeze(-1)


def reorder_index(batch: int, window_length: int, generator: torch.Generator) -> torch.Tensor:
    """(batch, W) row orders, one ORDER_FAULTS kind per window, drawn at random: each window's
    rows are taken in that order. A part is 1/4 to all of the window; a rotation moves 1/4 to
    3/4 of it to the front."""
    w = window_length
    t = torch.arange(w, dtype=torch.float32).expand(batch, w)  # (B, W)
    kind = torch.randint(0, len(ORDER_FAULTS), (batch, 1), generator=generator)
    length = torch.randint(max(2, w // 4), w + 1, (batch, 1), generator=generator).float()
    start = (torch.rand(batch, 1, generator=generator) * (w - length + 1)).floor()
    inside = (t >= start) & (t < start + length)
    noise = torch.rand(batch, w, generator=generator)
    shift = torch.randint(w // 4, 3 * w // 4 + 1, (batch, 1), generator=generator).float()
    keys = torch.where(kind == 0, noise, t)
    keys = torch.where(kind == 1, -t, keys)
    keys = torch.where((kind == 2) & inside, start + noise * length, keys)
    keys = torch.where((kind == 3) & inside, 2 * start + length - 1 - t, keys)
    keys = torch.where(kind == 4, (t + shift) % w, keys)
    return keys.argsort(dim=1)


@dataclass
class OrderFit:
    """A fitted detector (the learned order check's, or the learned stitch check's:
    training/stitch_check.py), as plain lists for the checkpoint (not the card: `summary`)."""

    hidden: int
    state: dict[str, list]  # parameter name -> nested lists
    threshold: float  # the largest score of a clean validation window
    calibrated_on: str
    faults_trained_on: list[str] = field(default_factory=lambda: list(ORDER_FAULTS))

    def summary(self) -> dict:
        parameters = sum(int(np.asarray(v).size) for v in self.state.values())
        return {"hidden": self.hidden, "parameters": parameters, "threshold": self.threshold,
                "faults_trained_on": list(self.faults_trained_on),
                "calibrated_on": self.calibrated_on}  # fmt: skip


ORDER_CHECK_FILE = "order_check.pt"  # beside the checkpoints it was trained for


def beside(checkpoint: str | Path) -> Path:
    """Where rul-train keeps the learned order check of a checkpoint and rul-export reads it:
    one file per directory, shared by the networks trained there on one data set."""
    return Path(checkpoint).parent / ORDER_CHECK_FILE


def trained_for(fit: OrderFit) -> tuple[int, int]:
    """(sensors, window length) the detector reads."""
    return int(np.shape(fit.state["first.weight"])[1]), int(np.shape(fit.state["position"])[1])


def save_fit(fit: OrderFit, path: Path) -> None:
    """Write the fitted detector (weights as float32 tensors) for a later re-export (`read_fit`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: torch.tensor(v, dtype=torch.float32) for k, v in fit.state.items()}
    partial = path.with_suffix(f".{os.getpid()}.part")  # runs sharing a directory never see half a file
    torch.save({**asdict(fit), "state": state}, partial)
    partial.replace(path)


def read_fit(path: Path) -> OrderFit:
    """The detector `save_fit` wrote: a re-export that reads it builds the graph it was shipped
    with (training the detector again on another CPU gives other weights, and so other scores)."""
    saved = torch.load(path, weights_only=True)
    return OrderFit(**{**saved, "state": {k: v.tolist() for k, v in saved["state"].items()}})


def load_detector(
    fit: dict, n_columns: int, window_length: int, what: str = "order check", file: str = ORDER_CHECK_FILE
) -> OrderDetector:
    sensors, length = np.shape(fit["state"]["first.weight"])[1], np.shape(fit["state"]["position"])[1]
    if (sensors, length) != (n_columns, window_length):
        raise ValueError(f"the learned {what} was trained for {sensors} sensors and windows of "
                         f"{length} cycles, not {n_columns} and {window_length}: rul-train writes the right "
                         f"one ({file}) beside the checkpoints it trains")  # fmt: skip
    detector = OrderDetector(n_columns, window_length, fit["hidden"])
    detector.load_state_dict({k: torch.tensor(v, dtype=torch.float32) for k, v in fit["state"].items()})
    return detector.eval()


class LearnedCheck(nn.Module):
    """A fitted detector in the graph (the order check's, the stitch check's): z (B, W, C) and
    the real cycles n (B,) -> (B,) exp(score - threshold), above 1 flags, on histories of at
    least `min_cycles` real cycles; 0 on shorter ones (not judged)."""

    def __init__(self, fit: dict, n_columns: int, window_length: int, min_cycles: int, what: str, file: str):
        super().__init__()
        self.detector = load_detector(fit, n_columns, window_length, what, file)
        self.threshold = float(fit["threshold"])
        self.min_cycles = min_cycles

    @classmethod
    def fitted(cls, fit: dict | None, *args: Any) -> "LearnedCheck | None":
        """The check of `fit` (an OrderFit as a dict), None where statistics have none."""
        return cls(fit, *args) if fit and "state" in fit else None

    def forward(self, z: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        judged = (n >= self.min_cycles).float()
        return judged * torch.exp((self.detector(z) - self.threshold).clamp(max=10.0))


def scores(detector: OrderDetector, z: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return torch.cat([detector(z[i : i + 4096]) for i in range(0, len(z), 4096)]).numpy()


def train_detector(
    z_train: torch.Tensor, faulty: Callable[[torch.Tensor, torch.Generator], torch.Tensor], seed: int = 0
) -> tuple[OrderDetector, int]:
    """Train a detector on z_train (N, W, C), clean windows, against `faulty(pick, generator)`:
    faulty copies of the windows z_train[pick], for EPOCHS passes of ORDER_BATCH clean and as
    many faulty windows per step. Returns the detector (eval mode) and the steps taken."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    n, w, c = z_train.shape
    steps = max(1, EPOCHS * n // ORDER_BATCH)
    detector = OrderDetector(c, w)
    optimiser = torch.optim.Adam(detector.parameters(), lr=LEARNING_RATE)
    labels = torch.cat([torch.zeros(ORDER_BATCH), torch.ones(ORDER_BATCH)])
    for _ in range(steps):
        pick = torch.randint(0, n, (ORDER_BATCH,), generator=generator)
        logits = detector(torch.cat([z_train[pick], faulty(pick, generator)]))
        loss = nn.functional.binary_cross_entropy_with_logits(logits, labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return detector.eval(), steps


def fit_order_detector(z_train: torch.Tensor, z_val: torch.Tensor, seed: int = 0) -> OrderFit:
    """Train on z_train (N, W, C), every full window in order of the training units, against
    reordered copies of them, for EPOCHS passes; threshold on z_val, the validation units' full
    windows in order."""
    n, w, c = z_train.shape

    def reordered(pick: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        order = reorder_index(len(pick), w, generator)
        return z_train[pick].gather(1, order.unsqueeze(-1).expand(-1, -1, c))

    detector, steps = train_detector(z_train, reordered, seed)
    threshold = float(scores(detector, z_val).max())
    state = {k: v.tolist() for k, v in detector.state_dict().items()}
    note = (f"trained on {n} full windows of the training units in order against reordered copies "
            f"({EPOCHS} passes, {steps} steps, seed {seed}); threshold: the largest score of "
            f"{len(z_val)} full windows in order of the validation units")  # fmt: skip
    return OrderFit(HIDDEN, state, threshold, note)
