"""Window readings: a table of finite numbers takes numpy's fast path; anything that is not a
list of cycles is refused by the schema; a value that is not a number, and readings sent by
name, are checked against the model's columns (core/window_input.py), with a message naming
the cycle and column."""

import numpy as np
import pytest
from pydantic import ValidationError

from service.core.window_input import NamedReadings, first_non_number
from service.transport.schemas import Window

FEATURES = ["setting_1", "setting_2", "setting_3", *(f"s_{i}" for i in range(1, 22))]


def test_a_table_of_numbers_becomes_a_float32_array():
    readings = Window.model_validate({"readings": [[1.5, 2, "3.25"]] * 4}).readings
    assert isinstance(readings, np.ndarray) and readings.dtype == np.float32 and readings.shape == (4, 3)
    assert readings[0].tolist() == [1.5, 2.0, 3.25]


@pytest.mark.parametrize(
    ("readings", "message"),
    [
        ([[1.0, None]], "cycle 0, column 1 (setting_2): Input should be a valid number (got None)"),
        ([[1.0] * 7 + [None]], "cycle 0, column 7 (s_5): Input should be a valid number (got None)"),
        (
            [[1.0], [2.0, "x"]],
            "cycle 1, column 1 (setting_2): Input should be a valid number, unable to parse",
        ),
        ([[1.0] * 24 + [None]], "cycle 0, column 24: Input should be a valid number (got None)"),
        ([[1.0, {"a": 1}]], "cycle 0, column 1 (setting_2): Input should be a valid number (got an object)"),
        ([1.0, 2.0], "cycle 0: Input should be a valid list (got 1.0)"),
        ([[10**400]], "cycle 0, column 0 (setting_1): Input should be a valid number"),
        ("abc", "Input should be a valid list"),
    ],
)
def test_what_is_not_a_number_is_named_by_cycle_and_column(readings, message):
    try:  # not a list of cycles: the schema; a value in a cycle: against the model's columns
        sent = Window.model_validate({"readings": readings}).readings
    except ValidationError as exc:
        problem = str(exc.errors()[0]["msg"])
    else:
        problem = first_non_number(sent, FEATURES) or ""
    assert message in problem


def test_uneven_rows_and_non_finite_values_go_on_to_the_predictor():
    """The predictor knows the model's columns and names these problems (tests/service/test_app.py):
    uneven rows go on as lists, a table with NaN or infinite values as a float32 array."""
    assert Window.model_validate({"readings": [[1.0, 2.0], [1.0]]}).readings == [[1.0, 2.0], [1.0]]
    nan = Window.model_validate({"readings": [["NaN", 1.0]]}).readings
    assert nan.dtype == np.float32 and np.isnan(nan[0, 0])
    # a finite number beyond float32 goes on as sent, so that the predictor can say it overflowed
    assert Window.model_validate({"readings": [[1e300, 1.0]]}).readings == [[1e300, 1.0]]


def test_a_flat_list_of_millions_of_numbers_fails_at_once_with_one_error():
    with pytest.raises(ValidationError, match=r"cycle 0: Input should be a valid list \(got 1\)") as info:
        Window.model_validate({"readings": [1] * 4_000_000})
    assert info.value.error_count() == 1


TABLE = (np.arange(3 * 24, dtype=np.float32).reshape(3, 24) / 7).tolist()  # 3 cycles


def test_named_columns_in_any_order_and_case_equal_the_table():
    columns = {name.upper() if i % 2 else name: [row[i] for row in TABLE] for i, name in enumerate(FEATURES)}
    shuffled = dict(reversed(list(columns.items())))
    by_column = Window.model_validate({"readings": shuffled}).readings.ordered(FEATURES)
    by_cycle = Window.model_validate({"readings": [dict(zip(reversed(FEATURES), reversed(row), strict=True))
                                                   for row in TABLE]}).readings.ordered(FEATURES)  # fmt: skip
    expected = Window.model_validate({"readings": TABLE}).readings
    np.testing.assert_array_equal(by_column, expected)
    np.testing.assert_array_equal(by_cycle, expected)


def _columns(**changes):
    columns = {name: [row[i] for row in TABLE] for i, name in enumerate(FEATURES)}
    columns.update(changes)
    return {k: v for k, v in columns.items() if v is not None}


@pytest.mark.parametrize(
    ("readings", "message"),
    [
        (
            _columns(s_3=None, s_7=None),
            "named columns: missing s_3, s_7; expected each of setting_1..setting_3",
        ),
        (_columns(s_22=[1.0, 2.0, 3.0]), "named columns: unknown 's_22'; expected each of"),
        ({**_columns(), "S_1 ": [1.0, 2.0, 3.0]}, "named columns: repeated s_1;"),
        (_columns(s_4=[1.0, 2.0]), "named columns differ in length: s_4 has 2 values, setting_1 has 3"),
        (
            _columns(s_4=5.0),
            "named column s_4: Input should be a valid list of values, one per cycle (got 5.0)",
        ),
        (
            _columns(s_4=[1.0, None, 2.0]),
            "cycle 1, column 6 (s_4): Input should be a valid number (got None)",
        ),
        (
            [dict(zip(FEATURES, TABLE[0], strict=True)), [1.0] * 24],
            "cycle 1: Input should be an object of named",
        ),
        ([dict(zip(FEATURES[1:], TABLE[0][1:], strict=True))], "cycle 0: named columns: missing setting_1;"),
        ({"secret-looking-key": "x" * 500}, "named columns: unknown 'secret-looking-key'"),
    ],
)
def test_named_columns_name_what_is_wrong_without_echoing_the_input(readings, message):
    with pytest.raises(ValueError) as info:
        NamedReadings(readings).ordered(FEATURES)
    text = str(info.value)
    assert message in text and "xxxxxxxxxx" not in text


def test_named_columns_follow_the_models_own_names():
    features = ["alt", "mach", "T24_C", "T30_C"]
    rows = NamedReadings({"t30_c": [3.0, 7.0], "ALT": [0.0, 4.0], "mach": [1.0, 5.0], "T24_C": [2.0, 6.0]})
    assert rows.ordered(features) == [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]]
    with pytest.raises(ValueError, match="missing T30_C; expected each of alt, mach, T24_C and T30_C once"):
        NamedReadings({"alt": [1.0], "mach": [1.0], "T24_C": [1.0]}).ordered(features)
