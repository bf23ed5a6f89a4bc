"""Stuck runs inside the exported graph: which cycles of each column belong to a run of equal
consecutive values at least as long as that column's limit, computed without any shape
computation (the window length and the columns are fixed per model)."""

import torch
from torch import nn
from torch.nn import functional as F

# The helpers below keep the exported graph free of shape computations (no Shape -> Gather ->
# Concat chains, which ONNX Runtime's GPU providers run on the CPU): every shape they need is
# fixed by the window length and the columns; only the batch axis broadcasts.


def _flat_index(index: torch.Tensor) -> torch.Tensor:
    """(W, C) cycle indices -> (W * C,) positions in a window flattened cycle by cycle:
    index[t, c] * C + c."""
    n_columns = index.shape[1]
    return (index * n_columns + torch.arange(n_columns)).flatten()


def _take_cycles(x: torch.Tensor, flat_index: torch.Tensor) -> torch.Tensor:
    """x (B, W, C) -> out[b, t, c] = x[b, index[t, c], c] for the index behind `flat_index`
    (`_flat_index`): one gather of constant positions along the flattened window."""
    return x.flatten(1).index_select(1, flat_index).view(x.shape)


def shift_in_zero(x: torch.Tensor) -> torch.Tensor:
    """x (B, T, C) float -> (B, T + 1, C): a cycle of zeros in front."""
    return F.pad(x, (0, 0, 1, 0))


class StuckRuns(nn.Module):
    """same (B, W-1, C) bool: cycle t + 1 equals cycle t in column c (and both count) -> (B, W, C)
    bool: the cycle is part of a run of at least stuck_run[c] equal values."""

    def __init__(self, stuck_run: list[int], window_length: int):
        super().__init__()
        # a run of L equal values ends at cycle t if the L - 1 comparisons up to t are all equal
        # (cumulative counts, gathered at constant positions)
        t = torch.arange(window_length).unsqueeze(1)  # (W, 1)
        run = torch.tensor(stuck_run).unsqueeze(0)  # (1, C)
        self.register_buffer("index_back", _flat_index(torch.clamp(t - run + 1, min=0)))  # (W * C,)
        self.register_buffer("run_valid", t - run + 1 >= 0)  # (W, C)
        self.register_buffer("index_forward", _flat_index(torch.clamp(t + run - 1, max=window_length - 1)))
        self.register_buffer("run_needed", (run - 1).float())  # (1, C)

    def forward(self, same: torch.Tensor) -> torch.Tensor:
        counts = shift_in_zero(same.float()).cumsum(dim=1)  # (B, W, C)
        ends = ((counts - _take_cycles(counts, self.index_back)) >= self.run_needed) & self.run_valid
        # mark every cycle of a stuck run: some run ends within [t, t + L - 1]
        ended = ends.float().cumsum(dim=1)  # (B, W, C)
        before = shift_in_zero(ended[:, :-1])
        return (_take_cycles(ended, self.index_forward) - before) > 0  # (B, W, C)
