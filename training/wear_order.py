"""The window the networks read when its order is in doubt: its real cycles in order of wear.

A window whose order checks fire (`direction`, `out_of_order`: training/input_checks.py) was sent
newest first or shuffled, and the networks, which read the wear trend across the window, answer
it as a healthier engine than it is (a near-failure engine of FD001 sent newest first is
answered with 90 cycles left, docs/results/faults.md). The order the client meant is lost, but
the order of wear is not: the health index (RUL regressed on the sensors, falling with wear)
puts the cycles back in the order an engine wears through them. Sorted so, a reversed or
shuffled window is answered nearly as the window in order is, where the wear trend is larger
than the index's noise, that is near failure, where it matters; a healthy engine's noise,
sorted, reads as a little wear, so the answer errs on the early side. The checks' flags and the
out-of-distribution status still say that the window was wrong: this only makes its answer a
safe one. A window in order is passed through untouched.

No sort operator and no shape computation (quality.py): each real row's rank is the number of
rows that sort before it (a higher index, or an equal one earlier in the window), and a
permutation matrix built from the ranks reorders the rows. Padding rows (leading) keep their
places, and are filled again from the new first real row.
"""

import torch
from torch import nn

from training.padding import fill_padding

PADDING_KEY = 1.0e9  # padding rows sort first (the health index is in cycles of RUL)


class WearOrder(nn.Module):
    """(readings (B, W, 24) padding filled, health index (B, W), real rows (B, W) bool,
    in doubt (B,) bool) -> the readings, with the real rows of the windows in doubt sorted by
    the index, highest (least worn) first."""

    def __init__(self, window_length: int):
        super().__init__()
        position = torch.arange(window_length, dtype=torch.float32)
        self.register_buffer("earlier", position.view(1, 1, -1) < position.view(1, -1, 1))  # [j < i]
        self.register_buffer("slot", position.view(1, -1, 1))  # (1, W, 1)

    def forward(
        self, readings: torch.Tensor, index: torch.Tensor, real: torch.Tensor, in_doubt: torch.Tensor
    ) -> torch.Tensor:
        key = torch.where(real, index, PADDING_KEY)  # (B, W)
        row, other = key.unsqueeze(2), key.unsqueeze(1)  # (B, W, 1) key_i, (B, 1, W) key_j
        before = (other > row) | ((other == row) & self.earlier)  # (B, i, j): row j sorts before row i
        rank = before.float().sum(dim=2)  # (B, W): where row i goes
        permutation = (rank.unsqueeze(1) == self.slot).float()  # (B, r, i): row i goes to slot r
        sorted_rows = fill_padding(permutation @ readings, real)
        return torch.where(in_doubt.view(-1, 1, 1), sorted_rows, readings)
