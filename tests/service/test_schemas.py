"""Window readings: a table of finite numbers takes numpy's fast path; everything else is
validated element by element with a message naming the cycle and column."""

import numpy as np
import pytest
from pydantic import ValidationError

from service.schemas import Window


def test_a_table_of_numbers_becomes_a_float32_array():
    readings = Window.model_validate({"readings": [[1.5, 2, "3.25"]] * 4}).readings
    assert isinstance(readings, np.ndarray) and readings.dtype == np.float32 and readings.shape == (4, 3)
    assert readings[0].tolist() == [1.5, 2.0, 3.25]


@pytest.mark.parametrize(
    ("readings", "message"),
    [
        ([[1.0, None]], "cycle 0, column 1: Input should be a valid number (got None)"),
        ([[1.0], [2.0, "x"]], "cycle 1, column 1: Input should be a valid number, unable to parse string"),
        ([1.0, 2.0], "cycle 0: Input should be a valid list (got 1.0)"),
        ([[10**400]], "cycle 0, column 0: Input should be a valid number"),
        ("abc", "Input should be a valid list"),
    ],
)
def test_what_is_not_a_number_is_named_by_cycle_and_column(readings, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Window.model_validate({"readings": readings})


def test_uneven_rows_and_non_finite_values_go_on_to_the_predictor():
    """The predictor knows the model's columns and names these problems (tests/service/test_app.py):
    uneven rows go on as lists, a table with NaN or infinite values as a float32 array."""
    assert Window.model_validate({"readings": [[1.0, 2.0], [1.0]]}).readings == [[1.0, 2.0], [1.0]]
    nan = Window.model_validate({"readings": [["NaN", 1.0]]}).readings
    assert nan.dtype == np.float32 and np.isnan(nan[0, 0])
    huge = Window.model_validate({"readings": [[1e300, 1.0]]}).readings
    np.testing.assert_array_equal(huge, np.array([[np.inf, 1.0]], dtype=np.float32))


def test_a_flat_list_of_millions_of_numbers_fails_at_once_with_one_error():
    with pytest.raises(ValidationError, match=r"cycle 0: Input should be a valid list \(got 1\)") as info:
        Window.model_validate({"readings": [1] * 4_000_000})
    assert info.value.error_count() == 1
