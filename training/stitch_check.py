"""The learned stitch check: a small network, inside the exported graph, that tells a window which
is one engine's history from one with another engine's cycles in it (a join on the wrong key, a
tail number reused, an engine moved to another aircraft). It sets the `discontinuity` window flag
beside the statistical step checks of training/continuity.py.

Why a network as well: the step checks look for a step in the health index and in the sensors'
mean level on top of a smooth trend; near failure one engine's own wear accelerates, so the
trend must bend, and a few foreign cycles at the end of a window bend it as well. Measured
(docs/results/continuity.md; `python -m training.studies.continuity_limits`): of the stitched
test windows that the step checks alone answered `ok` while their RUL moved more than 15
cycles, this network flags 1 439 of 2 332 over the five shipped models, at 0.00-0.44 % of the
clean full test windows.

The network is the learned order check's (training/order_check.py `OrderDetector`, the same
sensor z-scores, flagged columns imputed), trained on every window of the checks' training units
with at least MIN_CYCLES real cycles, padded as served, against copies of them stitched at
random: a block of k consecutive real cycles of another training window (from anywhere in that
engine's life) put at the window's end, in its middle or at its first real cycle, k
log-uniform from 1 to half the shorter history. Its threshold is the largest score of the
validation units' windows (OUTLIER_GAP), so no validation window is flagged but those of a
unit with a step of its own.
"""

from pathlib import Path

import numpy as np
import torch

from training.order_check import EPOCHS, HIDDEN, OrderFit, scores, train_detector

MIN_CYCLES = 10  # real cycles: shorter histories are not judged (nor trained on)
# The threshold is the largest score of a validation window, leaving out the one validation unit
# whose windows score highest when it stands more than OUTLIER_GAP logits above every other
# unit: such a unit has a step of its own (fd004's unit 71 scores 21.8, the next unit 6.7; the
# step checks leave it out by a quantile: training/quality_fit.py STEP_QUANTILE), and would blind
# the check (fd004, the last 5 of another engine's cycles: 42 % flagged against 77 %). Chosen
# after seeing the validation scores of fd004 (the next gaps: fd002 1.8, fd003 0.6, fd001 0.1).
OUTLIER_GAP = 5.0
STITCH_FAULTS = ("another engine's last cycles", "another engine's cycles in the middle",
                 "another engine's cycles first")  # fmt: skip
STITCH_CHECK_FILE = "stitch_check.pt"  # beside the checkpoints it was trained for


def beside(checkpoint: str | Path) -> Path:
    """Where rul-train keeps the learned stitch check of a checkpoint and rul-export reads it."""
    return Path(checkpoint).parent / STITCH_CHECK_FILE


def stitched(
    z: torch.Tensor, n: torch.Tensor, donors: torch.Tensor, donor_n: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Copies of the windows z (B, W, C) with n (B,) real cycles, each with a block of k
    consecutive real cycles of the donor window beside it (donors (B, W, C), donor_n (B,)) at
    its end, in its middle or at its first real cycle (one of STITCH_FAULTS at random); the
    padding rows refilled with the first real row, as the graph fills them."""
    b, w, c = z.shape
    kind = torch.randint(0, len(STITCH_FAULTS), (b, 1), generator=generator)
    most = (torch.minimum(n, donor_n) // 2).clamp(min=1).float().unsqueeze(1)  # (B, 1)
    k = torch.exp(torch.rand(b, 1, generator=generator) * most.log()).round().long().clamp(min=1)
    t = torch.arange(w).unsqueeze(0)  # (1, W)
    first = (w - n).unsqueeze(1)  # (B, 1) the first real row
    room = (n.unsqueeze(1) - k - 1).clamp(min=0)
    middle = first + 1 + (torch.rand(b, 1, generator=generator) * room).long()
    start = torch.where(kind == 0, w - k, torch.where(kind == 1, middle, first))
    block = (t >= start) & (t < start + k)  # (B, W)
    donor_end = w - (torch.rand(b, 1, generator=generator) * (donor_n.unsqueeze(1) - k).clamp(min=0)).long()
    rows = (donor_end - k + t - start).clamp(0, w - 1)  # (B, W) the donor's row for each block row
    out = torch.where(block.unsqueeze(-1), donors.gather(1, rows.unsqueeze(-1).expand(-1, -1, c)), z)
    first_row = out.gather(1, first.unsqueeze(-1).expand(-1, 1, c))
    return torch.where((t < first).unsqueeze(-1), first_row, out)


def stitched_training_windows(x: torch.Tensor, share: float, generator: torch.Generator) -> torch.Tensor:
    """Training windows x (B, W, C) of raw readings, edge-padded as the networks train (the first
    real cycle repeated in front), a `share` of them stitched as `stitched` does: a block of
    another window of the batch at the end, in the middle or at the first real cycle, k
    log-uniform up to half the shorter history, the padding refilled from the new first row.
    For `--stitch-prob` (training/fit.py): labelled as the window they went into, they teach
    the network that a few cycles out of line with the rest of a history must not move its
    answer (docs/results/continuity.md, "Networks trained against stitched windows")."""
    if share <= 0 or len(x) < 2:  # draws nothing: runs without it stay as they were
        return x
    chosen = torch.rand(len(x), generator=generator) < share
    if not chosen.any():
        return x
    # real cycles: the window less its leading rows equal to the row after them (edge padding)
    same = (x[:, 1:] == x[:, :-1]).all(dim=2).int()
    n = x.shape[1] - same.cumprod(dim=1).sum(dim=1)
    # each chosen window's donor: another window of the batch (the next in a random order)
    order = torch.randperm(len(x), generator=generator)
    donor = torch.empty_like(order)
    donor[order] = order.roll(1)
    host, give = chosen.nonzero().squeeze(1), donor[chosen]
    out = x.clone()
    out[host] = stitched(x[host], n[host], x[give], n[give], generator)
    return out


def threshold_of(val_scores: np.ndarray, owners: np.ndarray) -> tuple[float, str]:
    """The largest of `val_scores` (N,), the validation windows', where `owners` (N,) names each
    window's unit: without the highest unit's windows when that unit stands OUTLIER_GAP above
    the others (see above). Returns the threshold and how it was chosen."""
    tops = sorted(((float(val_scores[owners == u].max()), str(u)) for u in np.unique(owners)), reverse=True)
    if len(tops) > 1 and tops[0][0] - tops[1][0] > OUTLIER_GAP:
        left_out = f"unit {tops[0][1]}'s ({tops[0][0]:.3g}, more than {OUTLIER_GAP:g} above every other)"
        return tops[1][0], f"the largest score of the validation units' windows but {left_out}"
    return tops[0][0], "the largest score of the validation units' windows"


def fit_stitch_detector(
    z_train: torch.Tensor, n_train: torch.Tensor, z_val: torch.Tensor, val_owners: np.ndarray, seed: int = 0
) -> OrderFit:
    """Train on z_train (N, W, C), every window of the training units with n_train (N,) >=
    MIN_CYCLES real cycles, against stitched copies of them; threshold on z_val, the validation
    units' windows, val_owners (N,) their units (`threshold_of`)."""

    def with_foreign_cycles(pick: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        donor = torch.randint(0, len(z_train), (len(pick),), generator=generator)
        return stitched(z_train[pick], n_train[pick], z_train[donor], n_train[donor], generator)

    detector, steps = train_detector(z_train, with_foreign_cycles, seed)
    threshold, how = threshold_of(scores(detector, z_val), val_owners)
    state = {k: v.tolist() for k, v in detector.state_dict().items()}
    note = (f"trained on {len(z_train)} windows (at least {MIN_CYCLES} real cycles) of the training units "
            f"against copies stitched with another training window's cycles ({EPOCHS} passes, {steps} "
            f"steps, seed {seed}); threshold: {how}, {len(z_val)} windows")  # fmt: skip
    return OrderFit(HIDDEN, state, threshold, note, list(STITCH_FAULTS))
