"""How a short window reaches the graph, and how the graph tells real cycles from padding.

The service (and rul-score, the Spark job, any Triton client) sends every window as
`window_length` rows. A history shorter than that is padded at the front with rows that are
NaN in every column (the card's padding rule "nan"); the graph counts the real rows, so no
check ever has to guess padding from repeated rows, and then puts the first real cycle in
place of each padding row, which is what the networks were trained on ("edge" padding,
training/windows.py). Only leading rows can be padding: a NaN anywhere else is not a reading,
and the service refuses it before the graph sees it.
"""

import torch


def real_rows(readings: torch.Tensor) -> torch.Tensor:
    """(B, W, 24) -> (B, W) bool: True from the first row that is not all NaN on."""
    not_padding = (~torch.isnan(readings).all(dim=-1)).float()  # (B, W)
    return not_padding.cumsum(dim=1) > 0


def fill_padding(readings: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """(B, W, 24) with leading NaN rows -> the same with each of them replaced by the first
    real row (edge padding). No shape is computed: one weighted sum picks the first row."""
    before = torch.nn.functional.pad(real[:, :-1].float(), (1, 0))  # (B, W) real[t - 1], 0 at t = 0
    first = (real.float() - before).unsqueeze(-1)  # (B, W, 1) 1 at the first real row
    keep = real.unsqueeze(-1)  # (B, W, 1)
    clean = torch.where(keep, readings, 0.0)
    first_row = (first * clean).sum(dim=1, keepdim=True)  # (B, 1, 24)
    return torch.where(keep, clean, first_row)
