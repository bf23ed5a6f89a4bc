"""The ONNX Runtime predictor: validates raw sensor windows against a model card, pads or
trims them to the model's window, runs the graph and shapes the answer. Knows nothing of
FastAPI; `load_models` loads a whole models directory.
"""

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from service.core.answers import Answers
from service.core.c_heap import trim_c_heap
from service.core.check_sentences import QualityExplainer, cycle_labels, row_positions
from service.core.model_card import GRAPH_OUTPUTS, ModelCard
from service.core.planning import DEFAULT_PLANNING, Planning
from service.core.providers import SessionConfig, create_session
from service.core.window_input import (
    NamedReadings,
    WindowError,
    check_cycle_numbers,
    column_problem,
    first_non_number,
    not_finite,
)

QUALITY_OUTPUTS = ("quality_flags", "ood_score", "window_flags")
# ONNX Runtime keeps the memory of its largest run in its arena: one run of 5 000 fd001
# windows raised the process's peak by 2.5 GB, the same windows in runs of 256 by 114 MB
# (python one-off, 2026-11-30, CPU). Larger batches are run in pieces of this many windows,
# where ONNX Runtime is already at its batch throughput (bench/README.md, "Model compute").
MAX_RUN_WINDOWS = 256
# ONNX Runtime's arena keeps the memory of a run for the next: ~0.5 MB per window of fd001
# (+50 MB after a run of 100 windows, +135 MB after 256; one-off, CPU, 2026-11-30). After a
# run of more than GIVE_BACK_ABOVE windows the predictor gives it back (`give_back_memory`: a
# run of one window with arena shrinkage, once the big run's outputs are copied out, since
# numpy arrays of outputs live in the arena and pin its regions). Shrinking costs the next
# run its re-growth (+15 % at 100 windows, +48 % at 8, measured back to back), so the
# batcher gives back only when no request is waiting; small runs keep the arena warm.
GIVE_BACK_ABOVE = 64

SHRINK_ARENA = ort.RunOptions()
SHRINK_ARENA.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")


def _sent(readings: Any, cycle: int, column: int) -> Any:
    """The value the client sent at (cycle, column), for an error message (None if unknown)."""
    try:
        return readings[cycle][column]
    except (IndexError, KeyError, TypeError):
        return None


class ModelLoadError(RuntimeError):
    """A model file that cannot be served: missing, altered, unreadable or wrong shape."""


@dataclass(frozen=True)
class PreparedBatch:
    """Windows validated and shaped for the model, with what the answers need to know of them."""

    ids: list[str | int | None]  # the caller's label of each window
    windows: np.ndarray  # (N, W, C) float32, front-padded with NaN rows where shorter than W
    cycles_sent: np.ndarray  # (N,) int: readings each window had
    cycle_numbers: list[np.ndarray | None]  # the caller's cycle number of each reading, if sent

    def __len__(self) -> int:
        return len(self.ids)


def front_padded(rows: Sequence[np.ndarray], shape: tuple[int, ...], fill: float, dtype: type) -> np.ndarray:
    """Arrays of shape (n <= shape[0], *shape[1:]) -> one (N, *shape) array, each right-aligned
    with `fill` in front: a batch made in one allocation, not array by array (padding 20 000
    windows one by one stalled the event loop: bench/README.md, "Abuse, second round")."""
    out: np.ndarray = np.full((len(rows), *shape), fill, dtype=dtype)
    for row, values in zip(out, rows, strict=True):
        row[shape[0] - len(values) :] = values
    return out


class Predictor:
    """One loaded model: its card, its ONNX Runtime session and the provider actually used."""

    def __init__(self, card: ModelCard, session: ort.InferenceSession):
        self.card = card
        self.session = session
        self.provider: str = session.get_providers()[0]
        self.window_length = card.window_length
        self.n_columns = len(card.input_features)
        # rul, health_probs and the quality outputs always; rul_lower and rul_upper when the
        # model has an interval
        self.output_names = [o.name for o in session.get_outputs() if o.name in GRAPH_OUTPUTS]
        # called after every run with (model name, windows, seconds): the app's metrics hook
        self.on_run: Callable[[str, int, float], None] | None = None
        self._check_signature()

    @classmethod
    def load(cls, onnx_path: Path, config: SessionConfig) -> "Predictor":
        """Load `<name>.onnx` after checking it against the sha256 in `<name>.json`."""
        card_path = onnx_path.with_suffix(".json")
        if not card_path.exists():
            raise ModelLoadError(f"{onnx_path.name} has no model card {card_path.name}")
        try:
            card = ModelCard.model_validate_json(card_path.read_bytes())
        except ValueError as exc:
            raise ModelLoadError(f"model card {card_path.name} is invalid: {exc}") from exc
        digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
        if digest != card.sha256:
            raise ModelLoadError(
                f"{onnx_path.name} has sha256 {digest} but its card says {card.sha256}: the file "
                "was altered or the card belongs to another export; refusing to load it"
            )
        return cls(card, create_session(onnx_path, config))

    def _check_signature(self) -> None:
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].name != self.card.input_name:
            raise ModelLoadError(
                f"model {self.card.name} must have one input {self.card.input_name!r}; "
                f"it has {[i.name for i in inputs]}"
            )
        missing = {"rul", "health_probs"} - set(self.output_names)
        if missing:
            raise ModelLoadError(f"model {self.card.name} lacks outputs {sorted(missing)}")
        if not set(QUALITY_OUTPUTS) <= set(self.output_names) or self.card.quality is None:
            raise ModelLoadError(
                f"model {self.card.name} has no input-quality checks (outputs {list(QUALITY_OUTPUTS)} and "
                "the card's 'quality'): it was exported before them, and its answers could not say how "
                "far to trust them (a short history, cycles out of order or repeated); re-export it with "
                "rul-export"
            )
        if "rul_quantiles" not in self.output_names or self.card.distribution is None:
            raise ModelLoadError(
                f"model {self.card.name} has no predictive distribution (output 'rul_quantiles' and the "
                "card's 'distribution'): it was exported before it, and could not answer failure "
                "probabilities or a RUL at risk; re-export it with rul-export"
            )
        if self.card.padding.rule != "nan":
            raise ModelLoadError(
                f"model {self.card.name} takes short windows padded by repeating their first cycle "
                f"(padding rule {self.card.padding.rule!r}): its graph cannot tell padding from a repeated "
                "cycle; re-export it with rul-export (padding rule 'nan')"
            )
        self.explainer = QualityExplainer(self.card.quality, self.card.input_features)

    def prepare(
        self,
        index: int,
        window_id: str | int | None,
        readings: Any,
        cycles: Sequence[int] | np.ndarray | None = None,
    ) -> tuple[np.ndarray, int, bool, int]:
        """Validate one window -> (its last W readings or fewer (n, C) float32, cycles used,
        padded?, cycles sent), to be batched by `stack`;
        `cycles`: the caller's cycle number of each reading, which must increase
        (`check_cycle_numbers`). Readings sent by name are put in the card's feature order."""
        if isinstance(readings, NamedReadings):
            try:
                readings = readings.ordered(self.card.input_features)
            except ValueError as exc:
                raise WindowError(index, window_id, f"readings: {exc}") from None
        if len(readings) == 0:
            raise WindowError(
                index,
                window_id,
                "readings are empty; send at least "
                f"{self.card.padding.min_cycles} cycles of {self.n_columns} values",
            )
        problem = column_problem(readings, self.card.input_features)
        if problem is None and not isinstance(readings, np.ndarray):
            problem = first_non_number(readings, self.card.input_features)
        if problem:
            raise WindowError(index, window_id, problem)
        array = np.asarray(readings, dtype=np.float32)  # (T, C)
        bad = np.argwhere(~np.isfinite(array))
        if len(bad):
            cycle, column = (int(v) for v in bad[0])
            raise WindowError(
                index,
                window_id,
                f"cycle {cycle}, column {column} "
                f"({self.card.input_features[column]}) is "
                f"{not_finite(float(array[cycle, column]), _sent(readings, cycle, column))}; "
                f"every reading must be a finite number ({len(bad)} such values)",
            )
        n_cycles = len(array)
        if cycles is not None:
            check_cycle_numbers(index, window_id, cycles, n_cycles)
        if n_cycles < self.card.padding.min_cycles:
            raise WindowError(
                index,
                window_id,
                f"has {n_cycles} cycles; model {self.card.name} "
                f"needs at least {self.card.padding.min_cycles} (windows shorter than "
                f"{self.window_length} are padded)",
            )
        window = array[-self.window_length :]  # padded by `stack`
        return window, min(n_cycles, self.window_length), n_cycles < self.window_length, n_cycles

    def stack(self, windows: Sequence[np.ndarray]) -> np.ndarray:
        """Windows of at most W cycles (`prepare`) -> one (N, W, C) float32 batch, a shorter one
        padded as the card's rule 'nan' says: rows of NaN at the front, which the graph counts
        and fills (`front_padded`)."""
        return front_padded(windows, (self.window_length, self.n_columns), np.nan, np.float32)

    def run(self, batch: np.ndarray, give_back: bool | None = None) -> dict[str, np.ndarray]:
        """(B, W, C) float32 -> the model's outputs by name ({"rul": (B,), ...}), run in pieces
        of MAX_RUN_WINDOWS windows; `give_back`: end by giving the arena back (default: when
        B > GIVE_BACK_ABOVE). Blocking: keep it off the event loop."""
        started = time.perf_counter()
        feed = self.card.input_name
        starts = range(0, max(len(batch), 1), MAX_RUN_WINDOWS)
        pieces = [self.session.run(self.output_names, {feed: batch[s : s + MAX_RUN_WINDOWS]}) for s in starts]
        if self.on_run:
            self.on_run(self.card.name, len(batch), time.perf_counter() - started)
        if give_back is None:
            give_back = len(batch) > GIVE_BACK_ABOVE
        if len(pieces) == 1 and not give_back:
            return dict(zip(self.output_names, pieces[0], strict=True))
        # copies, so that no output pins the arena (and one array per output for a split batch)
        outputs = {name: np.concatenate([p[i] for p in pieces]) for i, name in enumerate(self.output_names)}
        del pieces
        if give_back:
            self.give_back_memory()
        return outputs

    def give_back_memory(self) -> None:
        """Return the arena regions that no run is using to the system (a one-window run with
        arena shrinkage; ~3 ms on the CPU), and the C heap's free pages (`trim_c_heap`)."""
        window = np.zeros((1, self.window_length, self.n_columns), dtype=np.float32)
        self.session.run(self.output_names, {self.card.input_name: window}, SHRINK_ARENA)
        trim_c_heap()

    def prepare_batch(
        self, windows: list[tuple[str | int | None, Any]], cycles: list[list[int] | None] | None = None
    ) -> PreparedBatch:
        """Validate and shape [(id, readings (T, C))], with each window's cycle numbers (T,) or
        None. Raises WindowError naming the first bad window."""
        numbers = cycles if cycles is not None else [None] * len(windows)
        prepared = [
            self.prepare(i, wid, readings, n)
            for i, ((wid, readings), n) in enumerate(zip(windows, numbers, strict=True))
        ]
        return PreparedBatch(
            [wid for wid, _ in windows],
            self.stack([p[0] for p in prepared]),
            np.array([p[3] for p in prepared], dtype=np.int64),
            [None if n is None else np.asarray(n, np.int64) for n in numbers],
        )

    def answers(
        self,
        windows: np.ndarray,
        outputs: dict[str, np.ndarray],
        positions: np.ndarray,
        planning: Planning = DEFAULT_PLANNING,
    ) -> Answers:
        """The graph's outputs for windows (N, W, C) -> their answers. positions (N, W): each row's
        label in the caller's terms (-1: front padding), as quality flags name cycles; planning:
        the horizons and risk asked (checked first: `planning_problem`)."""
        used = (positions >= 0).sum(axis=1)
        quality = self.explainer.assess_batch(
            windows, outputs["quality_flags"], outputs["ood_score"], positions, outputs["window_flags"]
        )
        return self._answers(outputs, used, quality, planning)

    def _answers(
        self, outputs: dict[str, np.ndarray], used: np.ndarray, quality: list, planning: Planning
    ) -> Answers:
        levels = tuple(self.card.distribution.levels) if self.card.distribution else ()
        states = tuple(self.card.health_states)
        return Answers(states, outputs, used, quality, levels, self.card.rul_cap, planning)

    def no_answers(self, planning: Planning = DEFAULT_PLANNING) -> Answers:
        """The answers of no window (a fleet whose every unit was skipped)."""
        shapes = {
            "health_probs": (0, len(self.card.health_states)),
            "quality_flags": (0, self.window_length, self.n_columns),
            "rul_quantiles": (0, len(self.card.distribution.levels) if self.card.distribution else 0),
        }
        outputs = {name: np.zeros(shapes.get(name, (0,)), np.float32) for name in self.output_names}
        return self._answers(outputs, np.zeros(0, np.int64), [], planning)

    def answer_batch(
        self, batch: PreparedBatch, outputs: dict[str, np.ndarray], planning: Planning = DEFAULT_PLANNING
    ) -> Answers:
        """A prepared batch's answers; a quality flag's cycles are the cycle numbers sent, or
        positions in the readings sent."""
        w = self.window_length
        positions = np.stack([
            row_positions(w, int(n)) if cycles is None else cycle_labels(cycles, w, int(n))
            for n, cycles in zip(batch.cycles_sent, batch.cycle_numbers, strict=True)
        ])  # fmt: skip
        return self.answers(batch.windows, outputs, positions, planning)

    def warm_up(self) -> None:
        """One run at batch 1 and one at a larger batch, so the first request pays no setup."""
        for batch in (1, 64):
            self.run(np.zeros((batch, self.window_length, self.n_columns), dtype=np.float32))
