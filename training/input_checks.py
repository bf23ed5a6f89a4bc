"""Input-quality checks that live inside the exported graph, so every runtime that serves the
file (the service, rul-score, Triton) flags a faulty or foreign window the same way.

The graph is told which rows are real (leading NaN rows are padding: training/padding.py), so
no check guesses padding from repeated rows and every statistic is taken over real cycles.

Per checked sensor column (the sensors the model reads), per cycle:
- out_of_range: robust z-score |x - median| / (1.4826 MAD) of its operating condition beyond
  the column's threshold (a dead sensor reading 0.0, a spike x10, a wrong unit);
- spike: a jump of the robust z-score between consecutive cycles beyond the column's threshold;
- stuck: the same value repeated over more consecutive cycles than the training units ever
  show for that column (all the checked sensors vary from cycle to cycle in C-MAPSS).
Per checked sensor column, over the window:
- noisy: the column's residual from its estimate from the other sensors (`imputation`)
  varies from cycle to cycle more than in any validation window: its mean squared successive
  difference over the real cycles above NOISE_MARGIN (quality_fit.py) x the largest of the
  validation windows with as many real cycles (a loose connector or a failing sensor whose
  noise stays within range and under the jump threshold in every cycle). The residual, not
  the reading: the wear, which every sensor shares, cancels in it and a column's own noise
  does not. The column blamed is, as for `inconsistent`, the one whose signature (noise in
  column c adds along the squared column c of I - imputation) best explains the excess. It is
  checked only when no per-cycle check fired (a column dead or stuck leaves in its partners'
  residuals the wear it shared with them);
- inconsistent: the column disagrees with its estimate from the other sensors (least-squares
  weights, `imputation`) by more, on average over the real cycles, than any validation window
  (a constant offset or a small gain error that stays within range). Which column is to blame
  is decided by a matched filter: an offset in column c moves every residual along column c of
  (I - imputation), and the column whose signature best explains the residuals is flagged. It
  is checked only when no per-cycle or noisy check fired and no cycle is repeated (their
  faults would move every residual).
- drifting: the column's residual from its estimate from the others trends across the window
  (calibration drift, fouling; training/continuity.py); blamed like inconsistent and masked,
  after which `inconsistent` is not checked.
Per settings column, per cycle:
- unknown_condition: the operational setting far from every training operating condition
  (another flight regime or engine type, e.g. FD002 windows sent to fd001).
Per window (the `window_flags` output):
- direction: the wear seen in the window runs backwards in time. A linear health index (RUL
  regressed on the sensor z-scores of the training rows) falls over real windows; the
  least-squares slope of the index over the window's real cycles, in cycles of RUL per cycle,
  above MARGIN x the 99.5th percentile of the validation windows' slopes with as many real
  cycles (DIRECTION_QUANTILE) means newest-first or shuffled cycles;
- out_of_order: the health index jumps from cycle to cycle: its mean squared successive
  difference over the real cycles above MARGIN x the 99.5th percentile of the validation
  windows' with as many real cycles. In order, successive cycles differ by the index's noise;
  shuffled, by the spread of the wear across the window (a worn engine's cycles shuffled,
  which the direction slope, near 0, does not see); or, on a full window, the learned order
  check (training/order_check.py, a small network trained against reordered windows) scores
  it above every validation window in order;
- repeated_cycles: more consecutive real cycles identical in all 24 columns than any training
  window has (a latest cycle repeated to fill the window);
- short_history: fewer real cycles than the window (the interval is that history's own);
- discontinuity: another engine's cycles inside the window: the health index or the sensors'
  levels step against their own trend more than validation windows do (training/continuity.py),
  or, on a history of at least 10 cycles, the learned stitch check (training/stitch_check.py, the
  order check's network trained against windows stitched from two engines) scores it above
  every validation window;
A window flagged `direction` or `out_of_order` is read by the networks in order of wear
(training/wear_order.py), so its answer errs on the early side instead of calling a worn engine
healthy.
A column flagged by any check is masked (replaced by its estimate from the others).
One out-of-distribution score per window: the largest of the settings' distance, the mean
per-cycle Mahalanobis distance of the (masked, imputed) sensor z-scores over the real cycles,
the direction slope, the successive differences (or exp(learned order score - its threshold)),
the repeated-cycle count and the discontinuity statistic (or exp(learned stitch score - its
threshold)), each divided by
its threshold, so a score above 1 means "not like the training data". The health index of the
window-level checks is taken with flagged columns imputed, so one faulty sensor (already
masked) does not make the whole window look out of order.

Statistics come from the training units of one 80/20 split of the subset (split seed 0;
training/quality_fit.py fits them);
every threshold is MARGIN times the largest value seen on its validation units, so no
validation window is flagged and the rule is fixed before any test unit is looked at.
"""

import torch
from torch import nn

from training.continuity import ContinuityCheck, blame_signature
from training.order_check import ORDER_CHECK_FILE, LearnedCheck
from training.padding import fill_padding, real_rows
from training.quality_stats import (
    DIRECTION,
    DISCONTINUITY,
    DRIFTING,
    INCONSISTENT,
    NOISY,
    OUT_OF_ORDER,
    OUT_OF_RANGE,
    REPEATED_CYCLES,
    SHORT_HISTORY,
    SPIKE,
    STUCK,
    UNKNOWN_CONDITION,
    QualityStats,
)
from training.stitch_check import MIN_CYCLES as STITCH_MIN_CYCLES
from training.stitch_check import STITCH_CHECK_FILE
from training.stuck_runs import StuckRuns, shift_in_zero
from training.wear_order import WearOrder


class QualityCheck(nn.Module):
    """Raw readings (B, W, 24), padding filled, and real (B, W) bool -> flags (B, W, 24) int32
    bit set per cycle and column, column_mask (B, 24) bool of sensor columns to mask,
    ood_score (B,) float32, window_flags (B,) int32 bit set, and the readings the networks read
    (B, W, 24): the window's, its real cycles in order of wear where its order is in doubt."""

    def __init__(self, stats: QualityStats, window_length: int):
        super().__init__()
        self.stats = stats
        self.n_settings = stats.n_settings
        self.window_length = window_length
        self._per_cycle_statistics(stats)
        self._window_statistics(stats, window_length)
        self.continuity = ContinuityCheck(stats, window_length, self.imputation)
        n_checked = len(stats.column_index)  # the learned checks: the order check judges full windows
        self.order = LearnedCheck.fitted(stats.order_detector, n_checked, window_length, window_length,
                                         "order check", ORDER_CHECK_FILE)  # fmt: skip
        self.stitch = LearnedCheck.fitted(stats.stitch_detector, n_checked, window_length, STITCH_MIN_CYCLES,
                                          "stitch check", STITCH_CHECK_FILE)  # fmt: skip
        self._raw_column_maps(stats)
        self.stuck_runs = StuckRuns(stats.stuck_run, window_length)
        self.wear_order = WearOrder(window_length)

    def _per_cycle_statistics(self, stats: QualityStats) -> None:
        """Operating conditions, robust scales and the per-cycle thresholds; the sensors'
        covariance and the estimate of each from the others."""
        self.register_buffer("column_index", torch.tensor(stats.column_index, dtype=torch.long))
        self.register_buffer("settings_scale", torch.tensor(stats.settings_scale, dtype=torch.float32))
        self.register_buffer("centroids", torch.tensor(stats.centroids, dtype=torch.float32))  # (K, 3)
        self.register_buffer("center", torch.tensor(stats.center, dtype=torch.float32))  # (K, C)
        self.register_buffer("scale", torch.tensor(stats.scale, dtype=torch.float32))  # (K, C)
        self.register_buffer("range_z", torch.tensor(stats.range_z, dtype=torch.float32))  # (C,)
        self.register_buffer("jump_z", torch.tensor(stats.jump_z, dtype=torch.float32))  # (C,)
        self.register_buffer("settings_z", torch.tensor(stats.settings_z, dtype=torch.float32))  # (3,)
        self.register_buffer("precision", torch.tensor(stats.precision, dtype=torch.float32))  # (C, C)
        self.register_buffer("imputation", torch.tensor(stats.imputation, dtype=torch.float32))  # (C, C)
        self.mahalanobis_threshold = float(stats.mahalanobis_threshold) or 1.0
        self.repeated_allowed = float(stats.repeated_allowed)

    def _window_statistics(self, stats: QualityStats, window_length: int) -> None:
        """The window-level checks' index and thresholds (absent from statistics fitted before
        them: never fire) and the signatures that blame one column."""
        n_checked = len(stats.column_index)
        never = [float("inf")] * (window_length + 1)
        self.register_buffer(
            "wear", torch.tensor(stats.wear or [0.0] * n_checked, dtype=torch.float32)
        )  # (C,)
        self.register_buffer("direction_slope", torch.tensor(stats.direction_slope or never))  # (W + 1,)
        self.register_buffer("successive_difference", torch.tensor(stats.successive_difference or never))
        no_noise = [[float("inf")] * n_checked] * (window_length + 1)
        noise = torch.tensor(stats.noise_mssd or no_noise, dtype=torch.float32)
        self.register_buffer("noise_mssd", noise)  # (W + 1, C)
        consistency = torch.tensor(stats.consistency_z or [float("inf")] * n_checked, dtype=torch.float32)
        self.register_buffer("consistency_z", consistency)  # (C,)
        # an offset in column c moves the residuals' means; noise adds to their successive
        # differences along the squared column (over the full-window thresholds)
        self.register_buffer("signature", blame_signature(self.imputation, consistency))  # (C, C)
        self.register_buffer("noise_signature", blame_signature(self.imputation, noise[window_length], 2))
        self.register_buffer("cycle", torch.arange(window_length, dtype=torch.float32))  # (W,)

    def _raw_column_maps(self, stats: QualityStats) -> None:
        """Scatter the checked columns and the settings into the raw columns (one-hot maps)."""
        n_checked = len(stats.column_index)
        to_raw = torch.zeros(n_checked, stats.n_columns)
        to_raw[torch.arange(n_checked), torch.tensor(stats.column_index)] = 1.0
        self.register_buffer("to_raw", to_raw)  # (C, 24)
        settings_to_raw = torch.zeros(self.n_settings, stats.n_columns)
        settings_to_raw[torch.arange(self.n_settings), torch.arange(self.n_settings)] = 1.0
        self.register_buffer("settings_to_raw", settings_to_raw)  # (3, 24)

    def _conditions(self, readings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.n_settings:  # no setting columns: one operating condition, never unknown
            condition = (readings[..., 0] > float("inf")).long()  # (B, W) zeros, with no shape op
            return condition, (readings[..., :1] > float("inf")).float()  # (B, W, 1): no deviation
        settings = readings[..., : self.n_settings] / self.settings_scale  # (B, W, 3)
        dist = ((settings.unsqueeze(-2) - self.centroids) ** 2).sum(-1)  # (B, W, K)
        condition = dist.argmin(dim=-1)  # (B, W)
        deviation = (settings - self.centroids[condition]).abs() / self.settings_z  # (B, W, 3)
        return condition, deviation

    def _robust_z(self, readings: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        values = readings.index_select(-1, self.column_index)  # (B, W, C)
        return (values - self.center[condition]) / self.scale[condition]  # (B, W, C)

    def _impute(self, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """z (B, W, C) with the columns of mask (B, C) replaced by their estimate from the others."""
        keep = (~mask).unsqueeze(1)  # (B, 1, C)
        z = torch.where(keep, z, 0.0)
        return torch.where(keep, z, z @ self.imputation.T)  # (B, W, C)

    def _mean_d2(self, z: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Mean over real cycles of the squared Mahalanobis distance / C; weight (B, W): 1 / real
        cycles on real rows, 0 on padding."""
        d2 = ((z @ self.precision) * z).sum(-1) / z.shape[-1]  # (B, W)
        return (d2 * weight).sum(dim=1)  # (B,)

    @staticmethod
    def _mssd(h: torch.Tensor, real: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        """Mean squared successive difference over the real rows of h (B, W) -> (B,), or of
        each column of h (B, W, C) -> (B, C)."""
        pairs = real[:, :-1].float()  # both rows real (padding only leads)
        count = (n - 1.0).clamp(min=1.0)
        if h.dim() == 3:
            pairs, count = pairs.unsqueeze(-1), count.unsqueeze(-1)
        return ((h[:, 1:] - h[:, :-1]) ** 2 * pairs).sum(dim=1) / count

    def _history(self, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """real (B, W) -> real cycles n (B,), per-row mean weights (B, W), and the factor
        sqrt(W / n) by which a window mean's noise exceeds a full window's."""
        n = real.float().sum(dim=1).clamp(min=1.0)  # (B,)
        weight = real.float() / n.unsqueeze(1)
        return n, weight, torch.sqrt(self.window_length / n)

    def _slope(self, h: torch.Tensor, real: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        """Least-squares slope over the real rows of h (B, W) -> (B,), or of each column of
        h (B, W, C) -> (B, C)."""
        r = real.float()
        t_mean = (self.cycle * r).sum(dim=1, keepdim=True) / n.unsqueeze(1)  # (B, 1)
        dt = (self.cycle - t_mean) * r  # (B, W)
        spread = (dt**2).sum(dim=1).clamp(min=1e-6)  # (B,)
        if h.dim() == 3:
            return (dt.unsqueeze(-1) * h).sum(dim=1) / spread.unsqueeze(-1)
        return (dt * h).sum(dim=1) / spread

    def _residual(self, z: torch.Tensor) -> torch.Tensor:
        """Each column minus its estimate from the others, per cycle (B, W, C)."""
        return z - z @ self.imputation.T

    @staticmethod
    def _window_mean(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Mean of x (B, W, C) over the real cycles (weight (B, W), `_history`) -> (B, C)."""
        return (x * weight.unsqueeze(-1)).sum(dim=1)

    def window_statistics(self, readings: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(health index (B, W), real cycles (B,), mean residuals (B, C), Mahalanobis term (B,),
        sensor z-scores (B, W, C), operating conditions (B, W)) with no column masked, for
        windows padded as served (calibration)."""
        real = real_rows(readings)
        readings = fill_padding(readings, real)
        condition, _ = self._conditions(readings)
        z = self._robust_z(readings, condition)
        n, weight, _ = self._history(real)
        residual = self._window_mean(self._residual(z), weight)
        return z @ self.wear, n, residual, self._mean_d2(z, weight), z, condition

    @staticmethod
    def _repeated(readings: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """(B, W-1): real cycle t + 1 equals cycle t in all 24 columns."""
        return (readings[:, 1:] == readings[:, :-1]).all(dim=-1) & real[:, :-1]

    def _stuck(self, readings: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """A whole cycle repeated (every column equal) is `repeated_cycles`, not a stuck sensor."""
        values = readings.index_select(-1, self.column_index)  # (B, W, C)
        counted = real[:, :-1] & ~self._repeated(readings, real)  # (B, W-1)
        return self.stuck_runs((values[:, 1:] == values[:, :-1]) & counted.unsqueeze(-1))

    def forward(
        self, readings: torch.Tensor, real: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        condition, deviation = self._conditions(readings)
        z = self._robust_z(readings, condition)  # (B, W, C)
        n, weight, noise = self._history(real)
        real_c = real.unsqueeze(-1)  # (B, W, 1)
        out_of_range = (z.abs() > self.range_z) & real_c
        jump = (z[:, 1:] - z[:, :-1]).abs() > self.jump_z  # (B, W-1, C) the jump into cycle t
        spike = shift_in_zero((jump & real[:, :-1].unsqueeze(-1)).float())
        stuck = self._stuck(readings, real)
        bits = OUT_OF_RANGE * out_of_range.float() + SPIKE * spike + STUCK * stuck.float()  # (B, W, C)
        per_cycle = bits.amax(dim=1) > 0  # (B, C)
        # noisy: the residuals' successive differences (the wear, shared by the sensors, cancels
        # in a residual; a column's own noise does not); blamed like inconsistent, below. Only
        # where no per-cycle check fired: a dead or stuck column leaves its partners' residuals
        # with the wear it shared with them (fd003's s_8 and s_13), which is not noise.
        residual = self._residual(z)  # (B, W, C)
        noise_ratio = self._mssd(residual, real, n) / self.noise_mssd[n.long()]  # (B, C)
        noise_fit = noise_ratio @ self.noise_signature  # (B, C)
        noisy = (
            (noise_fit >= noise_fit.amax(dim=1, keepdim=True))
            & (noise_ratio.amax(dim=1, keepdim=True) > 1.0)
            & ~per_cycle.any(dim=1, keepdim=True)
        )
        bits = bits + NOISY * noisy.float().unsqueeze(1) * real_c.float()
        repeated = self._repeated(readings, real).float().sum(dim=1)  # (B,)
        repeated_term = repeated / (self.repeated_allowed + 0.5)  # (B,) above 1: more than training
        clean_otherwise = ~(per_cycle | noisy).any(dim=1, keepdim=True) & (repeated_term <= 1.0).unsqueeze(1)
        drifting = self.continuity.drifting(self._slope(residual, real, n), n) & clean_otherwise  # (B, C)
        bits = bits + DRIFTING * drifting.float().unsqueeze(1) * real_c.float()
        # inconsistent: only where no per-cycle, noisy or drifting check fired and no cycle is
        # repeated (each moves every residual); the column that best explains the residuals
        ratio = self._window_mean(residual, weight) / (self.consistency_z * noise.unsqueeze(1))  # (B, C)
        fit = (ratio @ self.signature).abs()  # (B, C)
        blamed = fit >= fit.amax(dim=1, keepdim=True)
        clean_otherwise = clean_otherwise & ~drifting.any(dim=1, keepdim=True)
        detected = (ratio.abs().amax(dim=1, keepdim=True) > 1.0) & clean_otherwise
        inconsistent = (blamed & detected).float()  # (B, C)
        bits = bits + INCONSISTENT * inconsistent.unsqueeze(1) * real_c.float()
        flags = bits @ self.to_raw  # (B, W, 24)
        if self.n_settings:
            unknown = UNKNOWN_CONDITION * ((deviation > 1.0) & real_c).float()  # (B, W, 3)
            flags = flags + unknown @ self.settings_to_raw
        flags = flags.to(torch.int32)
        flagged = (bits.amax(dim=1) > 0).float()  # (B, C)
        column_mask = (flagged @ self.to_raw) > 0  # (B, 24)
        z_filled = self._impute(z, flagged > 0)  # one faulty column (masked) moves no window check
        mahalanobis = self._mean_d2(z_filled, weight) / self.mahalanobis_threshold  # (B,)
        settings_term = (deviation * real_c.float()).amax(dim=(1, 2))  # (B,) 0 without settings
        h = z_filled @ self.wear  # (B, W) health index
        direction = self._slope(h, real, n) / self.direction_slope[n.long()]  # (B,)
        jumps = self._mssd(h, real, n) / self.successive_difference[n.long()]  # (B,)
        if self.order is not None:  # learned order check, full windows only: above 1 flags
            jumps = torch.maximum(jumps, self.order(z_filled, n))
        backwards, jumbled = direction > 1.0, jumps > 1.0  # (B,) either: read in order of wear
        discontinuity = self.continuity.discontinuity(h, z_filled, condition, n)  # (B,)
        if self.stitch is not None:  # learned stitch check, histories of MIN_CYCLES on: above 1 flags
            discontinuity = torch.maximum(discontinuity, self.stitch(z_filled, n))
        window_flags = (
            DIRECTION * backwards.float()
            + REPEATED_CYCLES * (repeated_term > 1.0).float()
            + SHORT_HISTORY * (n < self.window_length).float()
            + OUT_OF_ORDER * jumbled.float()
            + DISCONTINUITY * (discontinuity > 1.0).float()
        ).to(torch.int32)
        ood = torch.maximum(
            torch.maximum(torch.maximum(mahalanobis, settings_term), discontinuity),
            torch.maximum(torch.maximum(direction, jumps), repeated_term),
        )
        return flags, column_mask, ood, window_flags, self.wear_order(readings, h, real, backwards | jumbled)
