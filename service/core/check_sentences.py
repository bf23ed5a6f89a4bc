"""How far to trust each answer: the graph's input-quality outputs (`quality_flags`, a bit set
per cycle and column; `window_flags`, a bit set per window; `ood_score`) and the cycle numbers
the client sent, turned into the `quality` of a prediction, with one sentence per flag that
gives the values involved.

The graph decides (training/input_checks.py: what is flagged, what is masked); this module only
explains, with the statistics in the model card, and applies the card's status rule (the
status and flag types: service/core/window_quality.py):
- out_of_distribution if ood_score > 1, more than max_masked sensor columns are flagged, or the
  window's cycles run backwards in wear (`direction`), jump back and forth in it
  (`out_of_order`), repeat whole (`repeated_cycles`) or step from one engine's wear to
  another's (`discontinuity`); the graph answers a window of the first two for its cycles
  taken in order of wear (training/wear_order.py), and the flag says so;
- degraded if a sensor column is flagged (it was masked), the history is shorter than the
  model's window (`short_history`: its interval is that history's own), or the client's cycle
  numbers skip cycles (`cycle_gap`);
- ok otherwise: every reading within what training shows, per cycle and across sensors, the
  cycles in time order with none repeated or missing, a full window of history.
"""

import numpy as np

from service.core import continuity_sentences
from service.core.model_card import QualityChecks
from service.core.window_quality import DEGRADED, OK, OUT_OF_DISTRIBUTION, Flag, WindowQuality

# A column's checks in the order they are named: the first that fired is its `check`.
CHECK_ORDER = ("out_of_range", "spike", "stuck", "noisy", "unknown_condition", "drifting", "inconsistent")
# The whole window's checks: the graph's window_flags bits, then the client's cycle numbers.
WINDOW_CHECK_ORDER = ("direction", "out_of_order", "repeated_cycles", "discontinuity", "short_history")
CYCLE_GAP = "cycle_gap"
OUT_OF_DISTRIBUTION_CHECKS = {"direction", "out_of_order", "repeated_cycles", "discontinuity"}
# what the graph answers for a window whose order is in doubt (training/wear_order.py)
WEAR_ORDER_NOTE = (" The answer is the model's for these cycles taken in order of wear (their health "
                   "index), not in the order sent")  # fmt: skip
DEGRADED_CHECKS = {"short_history", CYCLE_GAP}


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def _cycle_span(labels: list[int]) -> str:
    return f"cycle {labels[0]}" if len(labels) == 1 else f"cycles {labels[0]} to {labels[-1]}"


class QualityExplainer:
    """One model's checks, as its card states them."""

    def __init__(self, checks: QualityChecks, input_features: list[str]):
        self.checks = checks
        self.features = input_features
        self.n_settings = len(checks.settings_scale)
        self.scaled_centroids = np.asarray(checks.centroids)  # (K, 3)
        self.centroids = self.scaled_centroids * np.asarray(checks.settings_scale)  # raw units
        self.center, self.scale = np.asarray(checks.center), np.asarray(checks.scale)  # (K, C)
        self.checked = {index: c for c, index in enumerate(checks.column_index)}  # raw column -> c
        self.window_bits = checks.window_bits

    def _condition(self, row: np.ndarray) -> int:
        scaled = row[: self.n_settings] / np.asarray(self.checks.settings_scale)
        return int(np.argmin(((scaled - self.scaled_centroids) ** 2).sum(-1)))

    def _conditions(self, rows: np.ndarray) -> np.ndarray:
        """(T, 24) real rows -> (T,) the operating condition of each, as the graph assigns it."""
        scaled = rows[:, : self.n_settings] / np.asarray(self.checks.settings_scale)
        return np.argmin(((scaled[:, None, :] - self.scaled_centroids) ** 2).sum(-1), axis=1)

    def _z(self, rows: np.ndarray) -> np.ndarray:
        """(T, 24) real rows -> (T, C) robust z-scores of the checked columns, as the graph has them."""
        condition = self._conditions(rows)
        values = rows[:, self.checks.column_index]
        return (values - self.center[condition]) / self.scale[condition]

    def _residual(self, real_window: np.ndarray, c: int) -> np.ndarray:
        """(n,) checked column c minus its estimate from the other sensors, per real cycle."""
        z = self._z(real_window.astype(np.float64))
        return (z - z @ np.asarray(self.checks.imputation).T)[:, c]

    def reads(self, windows: np.ndarray, real: np.ndarray) -> np.ndarray:
        """(N, W, C) windows, (N, W) real rows -> (N, K) each checked column's mean residual from
        its estimate from the other sensors over the real cycles, in robust s.d. (> 0: reads
        high); the drivers' `reads` (service/core/drivers.py)."""
        out = np.zeros((len(windows), len(self.checked)))
        for i, (window, rows) in enumerate(zip(windows, real, strict=True)):
            z = self._z(window[rows].astype(np.float64))
            out[i] = (z - z @ np.asarray(self.checks.imputation).T).mean(axis=0)
        return out

    def _inconsistent(self, real_window: np.ndarray, column: int) -> str:
        c = self.checked[column]
        residual = float(self._residual(real_window, c).mean())
        n, full = len(real_window), self.checks.window_length or len(real_window)
        allowed = (self.checks.consistency_z or [0.0] * (c + 1))[c] * np.sqrt(full / n)
        side = "above" if residual > 0 else "below"
        return (f"reads {abs(residual):.2g} robust s.d. {side} its estimate from the other sensors over all "
                f"{n} cycles; training windows differ by at most {allowed:.2g}")  # fmt: skip

    def _noisy(self, real_window: np.ndarray, column: int) -> str:
        c = self.checked[column]
        residual = self._residual(real_window, c)
        n = len(real_window)
        rms = float(np.sqrt(np.mean(np.diff(residual) ** 2))) if n > 1 else 0.0
        thresholds = self.checks.noise_mssd or [[float("nan")] * (c + 1)]
        allowed = float(np.sqrt(thresholds[min(n, len(thresholds) - 1)][c]))
        return (f"is noisy: its difference from its estimate from the other sensors changes by {rms:.2g} "
                f"robust s.d. between consecutive cycles (root mean square over {n} cycles), where "
                f"training windows change by at most {allowed:.2g}; a loose or failing sensor?")  # fmt: skip

    def _problem(self, check: str, window: np.ndarray, rows: np.ndarray, column: int, real: int) -> str:
        """The sentence for one check of one column; `rows` are the flagged rows of `window`."""
        values = window[rows, column]
        if check == "unknown_condition":
            known = ", ".join(_fmt(v) for v in sorted(set(np.round(self.centroids[:, column], 4))))
            return (f"reads {_fmt(values.min())}" + (f" to {_fmt(values.max())}" if np.ptp(values) else "")
                    + f" in {len(rows)} of {real} cycles, far from every training operating condition "
                    f"(training values of {self.features[column]}: {known})")  # fmt: skip
        if check == "inconsistent":
            return self._inconsistent(window[len(window) - real :], column)
        if check == "noisy":
            return self._noisy(window[len(window) - real :], column)
        if check == "drifting":
            c = self.checked[column]
            return continuity_sentences.drifting(
                self.checks, self._residual(window[len(window) - real :], c), c
            )
        c, k = self.checked[column], self._condition(window[rows[0]])
        center, scale = self.center[k, c], self.scale[k, c]
        if check == "out_of_range":
            low, high = center - self.checks.range_z[c] * scale, center + self.checks.range_z[c] * scale
            seen = _fmt(values[0]) if not np.ptp(values) else f"{_fmt(values.min())} to {_fmt(values.max())}"
            count = f"all {real}" if len(rows) == real else f"{len(rows)} of {real}"
            return (
                f"reads {seen} in {count} cycles; training range for this condition {_fmt(low)}–{_fmt(high)}"
            )
        if check == "spike":
            return self._spike(window, rows, column, c)
        return (f"reads {_fmt(values[0])} in {len(rows)} consecutive cycles; in training it never repeats "
                f"the same value {self.checks.stuck_run[c]} times in a row")  # fmt: skip

    def _filled_z(self, real_window: np.ndarray, masked: list[int]) -> np.ndarray:
        """(n, C) the window's z-scores as the graph's window checks read them: the masked
        (flagged) checked columns replaced by their estimate from the others."""
        z = self._z(real_window.astype(np.float64))
        if masked:
            z[:, masked] = 0.0
            z[:, masked] = (z @ np.asarray(self.checks.imputation).T)[:, masked]
        return z

    def _spike(self, window: np.ndarray, rows: np.ndarray, column: int, c: int) -> str:
        """The first flagged jump, in the sensor's units where both cycles are in one operating
        condition; else in robust s.d., as the graph compares them (each cycle against its own
        condition: a setting off its condition moves every sensor's z-score)."""
        first = int(rows[0])
        before, after = window[first - 1, column], window[first, column]
        more = f" ({len(rows)} such jumps)" if len(rows) > 1 else ""
        k_before, k = self._condition(window[first - 1]), self._condition(window[first])
        if k_before == k:
            allowed = self.checks.jump_z[c] * self.scale[k, c]
            return (f"jumps from {_fmt(before)} to {_fmt(after)} between consecutive cycles{more}; "
                    f"training jumps at most {_fmt(allowed)} in this condition")  # fmt: skip
        z_before = (before - self.center[k_before, c]) / self.scale[k_before, c]
        z_after = (after - self.center[k, c]) / self.scale[k, c]
        apart, allowed = abs(z_after - z_before), self.checks.jump_z[c]
        return (f"jumps from {_fmt(before)} to {_fmt(after)} between consecutive cycles{more}, read in "
                f"operating conditions {k_before} and {k}: {apart:.3g} robust s.d. apart, where training "
                f"jumps at most {allowed:.3g}; are the settings right?")  # fmt: skip

    def _window_flag(
        self, check: str, real_window: np.ndarray, labels: np.ndarray, masked: list[int]
    ) -> Flag:
        """The whole window's flag `check` (a window_flags bit); real_window (n, 24) its real
        rows, labels (n,) their cycle labels, masked: the checked columns the graph masked."""
        n = len(real_window)
        z = self._filled_z(real_window, masked)
        h = z @ np.asarray(self.checks.wear or [0.0] * len(self.checked))  # the health index
        if check == "out_of_order":
            rms = float(np.sqrt(np.mean(np.diff(h) ** 2))) if n > 1 else 0.0
            thresholds = self.checks.successive_difference or [float("nan")]
            allowed = float(np.sqrt(thresholds[min(n, len(thresholds) - 1)]))
            if rms > allowed or not self.checks.order_detector:
                problem = (f"the sensors' wear jumps back and forth from cycle to cycle: their health index "
                           f"changes by {rms:.2g} cycles of RUL between consecutive cycles (root mean "
                           f"square), where training windows change by at most {allowed:.2g}; are the "
                           "cycles out of order?")  # fmt: skip
            else:  # the graph's learned order check fired (a full window)
                problem = (f"the {n} cycles do not follow each other as an engine's do: the learned order "
                           "check (trained against reordered windows) scores this window as reordered, "
                           "above every validation window in order, though its health index changes by "
                           f"only {rms:.2g} cycles of RUL between consecutive cycles; are the cycles out "
                           "of order?")  # fmt: skip
            return Flag(None, check, problem + WEAR_ORDER_NOTE, ())
        if check == "direction":
            t = np.arange(n) - (n - 1) / 2
            slope = float(h @ t / (t @ t))
            thresholds = self.checks.direction_slope or [float("nan")]
            allowed = thresholds[min(n, len(thresholds) - 1)]
            problem = (f"the sensors' wear runs backwards in time: their health index rises {slope:.2g} "
                       f"cycles of RUL per cycle over the {n} cycles, where training windows rise at most "
                       f"{allowed:.2g}; are the cycles newest first or out of order?")  # fmt: skip
            return Flag(None, check, problem + WEAR_ORDER_NOTE, ())
        if check == "repeated_cycles":
            same = np.flatnonzero((real_window[1:] == real_window[:-1]).all(axis=1)) + 1
            repeated = [int(labels[i]) for i in same]
            problem = (f"{len(repeated)} cycles ({_cycle_span(repeated)}) are identical in all "
                       f"{real_window.shape[1]} columns to the cycle before them; training units repeat a "
                       f"whole cycle at most {self.checks.repeated_allowed} times: a reading copied to fill "
                       "the window?")  # fmt: skip
            return Flag(None, check, problem, tuple(repeated))
        if check == "discontinuity":
            condition = self._conditions(real_window.astype(np.float64))
            problem, junction = continuity_sentences.discontinuity(self.checks, z, condition, labels)
            return Flag(None, check, problem, (junction,))
        full = self.checks.window_length or n
        problem = (f"uses {n} cycles of history; the model reads {full}: the answer rests on less, and its "
                   "interval is the one calibrated for histories of this length")  # fmt: skip
        return Flag(None, check, problem, ())

    @staticmethod
    def _gap_flag(labels: np.ndarray) -> Flag | None:
        """cycle_gap when the cycle labels of the real rows skip numbers (the client's cycle numbers)."""
        steps = np.diff(labels)
        gaps = np.flatnonzero(steps > 1)
        if not len(gaps):
            return None
        first = int(gaps[0])
        missing = int((steps[gaps] - 1).sum())
        more = f"; {len(gaps)} gaps in all" if len(gaps) > 1 else ""
        problem = (f"{missing} cycles missing: the cycles jump from {int(labels[first])} to "
                   f"{int(labels[first + 1])}{more}; the model reads consecutive cycles")  # fmt: skip
        return Flag(None, CYCLE_GAP, problem, tuple(int(labels[g + 1]) for g in gaps))

    def assess(
        self,
        window: np.ndarray,
        flags: np.ndarray,
        ood_score: float,
        positions: np.ndarray,
        window_flags: int = 0,
    ) -> WindowQuality:
        """window (W, 24) as the graph read it, flags (W, 24) int, positions (W,): the label of
        each row in the caller's terms (its cycle numbers, or positions), -1 for the front
        padding (never reported); window_flags: the graph's bits for the whole window."""
        real_rows = positions >= 0
        real = int(real_rows.sum())
        result: list[Flag] = []
        sensors_flagged = 0
        for column in np.flatnonzero((flags != 0).any(axis=0)):
            column_flags = np.where(real_rows, flags[:, column], 0)
            if column >= self.n_settings and column_flags.any():
                sensors_flagged += 1
            fired = [c for c in CHECK_ORDER if (column_flags & self.checks.bits.get(c, 0)).any()]
            if not fired:
                continue
            problems = []
            for check in fired:
                rows = np.flatnonzero(column_flags & self.checks.bits[check])
                problems.append(self._problem(check, window, rows, int(column), real))
            rows = np.flatnonzero(column_flags)
            cycles = tuple(int(p) for p in positions[rows])
            problem = "; ".join(problems)
            result.append(Flag(self.features[column], fired[0], problem, cycles))
        labels = positions[real_rows]
        flagged = np.flatnonzero((flags[real_rows] != 0).any(axis=0)).tolist()
        masked = [self.checked[j] for j in flagged if j in self.checked]
        for check in WINDOW_CHECK_ORDER:
            if window_flags & self.window_bits.get(check, 0):
                result.append(self._window_flag(check, window[real_rows], labels, masked))
        gap = self._gap_flag(labels)
        if gap is not None:
            result.append(gap)
        checks = {f.check for f in result if f.column is None}
        score = float(ood_score)
        if score > 1.0 or sensors_flagged > self.checks.max_masked or checks & OUT_OF_DISTRIBUTION_CHECKS:
            status = OUT_OF_DISTRIBUTION
        else:
            status = DEGRADED if sensors_flagged or checks & DEGRADED_CHECKS else OK
        return WindowQuality(status, tuple(tuple(flag) for flag in result), round(score, 4))

    def assess_batch(
        self,
        windows: np.ndarray,
        flags: np.ndarray,
        ood_scores: np.ndarray,
        positions: np.ndarray,
        window_flags: np.ndarray | None = None,
    ) -> list[WindowQuality]:
        """`assess` for a batch: windows (N, W, 24), flags (N, W, 24), ood_scores (N,), positions
        (N, W), window_flags (N,). A window with no flag at all and consecutive labels (the
        common case) is settled by its score alone."""
        per_window = np.zeros(len(windows), np.int64) if window_flags is None else np.asarray(window_flags)
        steps = np.diff(positions, axis=1)
        gapped = ((steps > 1) & (positions[:, :-1] >= 0)).any(axis=1)
        flagged = ((flags != 0).any(axis=(1, 2)) | (per_window != 0) | gapped).tolist()
        scores, bits = ood_scores.tolist(), per_window.tolist()
        return [
            self.assess(windows[i], flags[i], scores[i], positions[i], bits[i])
            if flagged[i]
            else WindowQuality(OUT_OF_DISTRIBUTION if scores[i] > 1.0 else OK, (), round(scores[i], 4))
            for i in range(len(scores))
        ]
