"""A window as the client sent it, checked before the model sees it: how errors name a
window, the readings' width and the client's cycle numbers (service/core/predictor.py shapes it)."""

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np


def window_label(index: int, window_id: str | int | None) -> str:
    """How errors name a window: "window 3 (id 'engine-17')", or "window 3" without an id."""
    return f"window {index}" + (f" (id {window_id!r})" if window_id is not None else "")


class WindowError(ValueError):
    """A window the model cannot take; the message names the window and the problem."""

    def __init__(self, index: int, window_id: str | int | None, problem: str):
        super().__init__(f"{window_label(index, window_id)}: {problem}")


def _kind(value: Any) -> str:
    """What a value is, without echoing a container: the offending scalar itself, bounded."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return f"{value!r:.40}"


def first_non_list(value: Any) -> str | None:
    """The first place where `value` is not a list of cycles, each a list, described; None
    when it is one (what is in the cycles is `first_non_number`'s)."""
    if not isinstance(value, list):
        return f"Input should be a valid list of cycles, or an object of named columns (got {_kind(value)})"
    for cycle, row in enumerate(value):
        if not isinstance(row, list):
            return f"cycle {cycle}: Input should be a valid list (got {_kind(row)})"
    return None


def _column(column: int, features: Sequence[str]) -> str:
    return f"column {column} ({features[column]})" if column < len(features) else f"column {column}"


def first_non_number(value: Any, features: Sequence[str]) -> str | None:
    """The first place where `value` is not a list of lists of numbers, described (columns
    named by `features` where known); None when it is one. Stops at the first problem: a
    million bad values cost one error, not a million."""
    if not isinstance(value, list):
        return f"Input should be a valid list of cycles, or an object of named columns (got {_kind(value)})"
    for cycle, row in enumerate(value):
        if not isinstance(row, list):
            return f"cycle {cycle}: Input should be a valid list (got {_kind(row)})"
        for column, x in enumerate(row):
            where = f"cycle {cycle}, {_column(column, features)}: Input should be a valid number"
            if isinstance(x, bool) or not isinstance(x, str | int | float):
                return f"{where} (got {_kind(x)})"
            try:
                float(x)
            except ValueError:
                return f"{where}, unable to parse string as a number (got {x!r:.40})"
            except OverflowError:
                return f"{where}, too large for a float (got {str(x)[:20]}...)"
    return None


def describe_features(features: Sequence[str]) -> str:
    """The features in a few words: runs of numbered names collapsed ("setting_1..setting_3 and
    s_1..s_21"), else the names, bounded."""
    runs: list[list[str]] = []
    for name in features:
        stem, _, number = name.rpartition("_")
        last = runs[-1][-1] if runs else ""
        last_stem, _, last_number = last.rpartition("_")
        if (
            runs
            and number.isdigit()
            and last_number.isdigit()
            and stem == last_stem
            and int(number) == int(last_number) + 1
        ):
            runs[-1].append(name)
        else:
            runs.append([name])
    parts = [f"{run[0]}..{run[-1]}" if len(run) > 2 else ", ".join(run) for run in runs]
    text = ", ".join(parts[:-1]) + f" and {parts[-1]}" if len(parts) > 1 else parts[0]
    return text if len(text) <= 300 else text[:300] + " ..."


def _by_name(names: list[str], features: Sequence[str]) -> dict[str, int]:
    """{feature: its position in `names`} ('S_1 ' and 's_1' alike), or ValueError naming the
    unknown, repeated and missing columns."""
    wanted = [f.lower() for f in features]
    known = set(wanted)
    normal = [str(n).strip().lower() for n in names]
    counts = Counter(normal)  # one pass: 20 000 names cost milliseconds, not seconds (quadratic before)
    unknown = [n for n, m in zip(names, normal, strict=True) if m not in known]
    repeated = sorted(n for n, count in counts.items() if count > 1)
    missing = [f for f, w in zip(features, wanted, strict=True) if w not in counts]
    more = " ..." if len(missing) > 6 else ""
    problems = [f"unknown {', '.join(repr(str(n)[:30]) for n in unknown[:5])}" if unknown else "",
                f"repeated {', '.join(repeated[:5])}" if repeated else "",
                f"missing {', '.join(missing[:6])}{more}" if missing else ""]  # fmt: skip
    if any(problems):
        raise ValueError(f"named columns: {'; '.join(p for p in problems if p)}; expected each of "
                         f"{describe_features(features)} once")  # fmt: skip
    first = {m: i for i, m in reversed(list(enumerate(normal)))}
    return {feature: first[w] for feature, w in zip(features, wanted, strict=True)}


def named_columns(value: dict[str, Any] | list[Any], features: Sequence[str]) -> list[list[Any]]:
    """Readings sent by name -> cycles of values in the model's feature order. Two shapes, any
    column order, names case-insensitive: an object of columns {"setting_1": [v, ...], ...,
    "s_21": [...]} (each one value per cycle, oldest first) or a list of cycles
    [{"setting_1": v, ...}]. ValueError names what is wrong."""
    if isinstance(value, dict):
        position = _by_name(list(value), features)
        columns = list(value.values())
        lengths = {}
        for feature, i in position.items():
            if not isinstance(columns[i], list):
                raise ValueError(f"named column {feature}: Input should be a valid list of values, one "
                                 f"per cycle (got {_kind(columns[i])})")  # fmt: skip
            lengths[feature] = len(columns[i])
        if len(set(lengths.values())) > 1:
            first = features[0]
            odd = next(f for f in features if lengths[f] != lengths[first])
            raise ValueError(f"named columns differ in length: {odd} has {lengths[odd]} values, "
                             f"{first} has {lengths[first]}; send one value per cycle in each")  # fmt: skip
        ordered = [columns[position[f]] for f in features]
        return [list(cycle) for cycle in zip(*ordered, strict=True)]
    rows = []
    for cycle, row in enumerate(value):
        if not isinstance(row, dict):
            raise ValueError(f"cycle {cycle}: Input should be an object of named values like cycle 0 "
                             f"(got {_kind(row)})")  # fmt: skip
        try:
            position = _by_name(list(row), features)
        except ValueError as exc:
            raise ValueError(f"cycle {cycle}: {exc}") from None
        values = list(row.values())
        rows.append([values[position[f]] for f in features])
    return rows


class NamedReadings:
    """Readings sent by column name (either shape of `named_columns`), as they came: only the
    model knows its feature names, so the predictor puts them in its order and checks them."""

    def __init__(self, value: dict[str, Any] | list[Any]):
        self.value = value

    def __len__(self) -> int:
        """Cycles sent (of the first column, for an object of columns)."""
        if isinstance(self.value, dict):
            first: Any = next(iter(self.value.values()), [])
            return len(first) if isinstance(first, list) else 0
        return len(self.value)

    def ordered(self, features: Sequence[str]) -> list[list[Any]]:
        """The readings as cycles of values in `features` order (ValueError: what is wrong)."""
        rows = named_columns(self.value, features)
        problem = first_non_number(rows, features)
        if problem:
            raise ValueError(problem)
        return rows


def column_problem(readings: Any, features: list[str]) -> str | None:
    """The first cycle whose width differs from the card's input features, described."""
    if isinstance(readings, np.ndarray) and readings.ndim == 2:
        readings = readings[:1]  # a table (schemas.py): every cycle has the first one's width
    for cycle, row in enumerate(readings):
        if len(row) != len(features):
            return (
                f"cycle {cycle} has {len(row)} columns; expected {len(features)}: "
                f"{features[0]} ... {features[-1]} (3 operational settings, then sensors 1-21)"
            )
    return None


def check_cycle_numbers(
    index: int, window_id: str | int | None, cycles: Sequence[int] | np.ndarray, n_cycles: int
) -> None:
    """WindowError unless `cycles` has one number per reading, each larger than the one before
    (oldest first): a decrease or a repeat names its position and both numbers."""
    if len(cycles) != n_cycles:
        raise WindowError(index, window_id, f"cycles has {len(cycles)} numbers for {n_cycles} cycles of "
                                            "readings; send one cycle number per reading")  # fmt: skip
    numbers = np.asarray(cycles, dtype=np.int64)
    bad = np.flatnonzero(np.diff(numbers) <= 0)
    if len(bad):
        at = int(bad[0]) + 1
        how = "repeats" if numbers[at] == numbers[at - 1] else "is lower than"
        problem = (f"cycles[{at}] = {numbers[at]} {how} cycles[{at - 1}] = {numbers[at - 1]}; cycle "
                   "numbers must increase (readings oldest first, each cycle once)")  # fmt: skip
        raise WindowError(index, window_id, problem)


FLOAT32_MAX = float(np.finfo(np.float32).max)  # 3.4e38


def not_finite(value: float, sent: Any = None) -> str:
    """How an error names a value that is not a finite float32 ("nan", "inf"), saying so when the
    number sent was finite but beyond float32's range (1e300 is read as inf)."""
    try:
        overflowed = sent is not None and np.isfinite(float(sent)) and np.isinf(value)
    except (TypeError, ValueError):
        overflowed = False
    if overflowed:
        return f"{value} ({float(sent):g} is beyond float32's ±{FLOAT32_MAX:.1e}: the model reads float32)"
    return str(value)
