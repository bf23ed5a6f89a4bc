"""The ONNX Runtime predictor: one loaded model, which validates a raw sensor window against
its card and runs the graph; the steps around it (batching windows, explaining, answering)
are service/core/pipeline.py's. Knows nothing of FastAPI.
"""

import hashlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from service.core.check_sentences import QualityExplainer
from service.core.memory import give_back_arena
from service.core.model_card import GRAPH_OUTPUTS, ModelCard
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


def _sent(readings: Any, cycle: int, column: int) -> Any:
    """The value the client sent at (cycle, column), for an error message (None if unknown)."""
    try:
        return readings[cycle][column]
    except (IndexError, KeyError, TypeError):
        return None


class ModelLoadError(RuntimeError):
    """A model file that cannot be served: missing, altered, unreadable or wrong shape."""


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
    ) -> tuple[np.ndarray, int]:
        """Validate one window -> (its last W readings or fewer (n, C) float32, cycles sent),
        to be batched by `stack`;
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
        with np.errstate(over="ignore"):  # beyond float32 becomes inf, refused below with why
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
        window = array[-self.window_length :]  # padded by pipeline.stack
        return window, n_cycles

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
        give_back_arena(self.session, self.card.input_name, (self.window_length, self.n_columns))

    def warm_up(self) -> None:
        """One run at batch 1 and one at a larger batch, so the first request pays no setup."""
        for batch in (1, 64):
            self.run(np.zeros((batch, self.window_length, self.n_columns), dtype=np.float32))
